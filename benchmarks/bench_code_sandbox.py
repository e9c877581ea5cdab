"""Throughput of the ``code`` reward: programs per second, sandboxed vs unsandboxed.

    python benchmarks/bench_code_sandbox.py [--programs 48] [--tests 2] [--workers N]

Scores the same batch of completions (a mix of correct and wrong solutions of a small
stdin/stdout problem, as a GRPO group would hold) through the real reward, once with
``isolation=none`` as the baseline and once per isolating backend that works here, and prints
programs/s for each and the sandboxed/unsandboxed ratio. The median of ``--repeat`` rounds is
reported, after one warm-up round each (probing, page cache).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

from r1kit.rewards.code.isolation import SANDBOX_PATH, available
from r1kit.rewards.code.reward import code_reward
from r1kit.api import plugin_options

SOLUTIONS = [
    "n = int(input())\nprint(sum(int(x) for x in input().split()[:n]))",  # correct
    "input()\nprint(sum(map(int, input().split())))",  # correct
    "input()\nxs = list(map(int, input().split()))\nprint(max(xs))",  # wrong
    "import sys\ndata = sys.stdin.read().split()\nprint(sum(map(int, data[1:])))",  # correct
]


def batch(programs: int, tests: int) -> tuple[list[str], list[dict]]:
    rows = [{"tests": [{"input": f"{k + 3}\n{' '.join(str(i * (k + 1)) for i in range(k + 3))}\n",
                        "output": str(sum(i * (k + 1) for i in range(k + 3)))}
                       for k in range(tests)]}]
    completions = [f"<think>sum them</think><answer>\n```python\n{SOLUTIONS[i % len(SOLUTIONS)]}"
                   "\n```\n</answer>" for i in range(programs)]
    return completions, rows * programs


def measure(isolation: str, completions, examples, workers: int, repeat: int) -> float:
    """Median seconds to score the batch."""
    code_reward(completions[:workers], examples[:workers],
                plugin_options("reward", "code", isolation=isolation, workers=workers))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        code_reward(completions, examples,
                    plugin_options("reward", "code", isolation=isolation, workers=workers))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=48)
    parser.add_argument("--tests", type=int, default=2, help="tests per program (runs each)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    completions, examples = batch(args.programs, args.tests)
    probes = available()
    backends = [name for name, why in probes.items() if why is None]
    program_python = shutil.which("python3", path=SANDBOX_PATH)
    print(f"code reward: {args.programs} programs x {args.tests} tests, {args.workers} workers, "
          f"{os.cpu_count()} CPUs; trainer python {sys.version.split()[0]}, "
          f"programs run {program_python}")
    for name, why in probes.items():
        if why is not None:
            print(f"  {name}: unavailable ({why})")
    print(f"{'isolation':<10} {'seconds':>8} {'programs/s':>11} {'runs/s':>8}")
    results = {}
    for isolation in ["none", *backends]:
        seconds = measure(isolation, completions, examples, args.workers, args.repeat)
        results[isolation] = args.programs / seconds
        print(f"{isolation:<10} {seconds:>8.2f} {results[isolation]:>11.1f} "
              f"{results[isolation] * args.tests:>8.1f}")
    for name in backends:
        print(f"ratio {name}/none (sandboxed / unsandboxed programs per second): "
              f"{results[name] / results['none']:.2f}")
    if not backends:
        print("no isolating backend works here; only the unsandboxed baseline was measured")


if __name__ == "__main__":
    main()
