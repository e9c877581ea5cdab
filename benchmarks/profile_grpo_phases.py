"""Where r1kit's GRPO step time goes: wall seconds per step in each phase.

    python benchmarks/profile_grpo_phases.py --model medium --set precision=bf16

Runs the r1kit worker of ``bench_grpo_vs_trl.py`` (same model, work and settings) with timers
wrapped around the phases of a step, and averages them over the steps after ``--skip`` warm-up
steps. Phases: ``generate`` (the sampler), ``reference`` (the reference model's log-probs,
computed while the rewards are scored), ``reward_wait`` (time still spent waiting for the
rewards after that), ``update`` (forward and backward passes of the policy), ``optimizer``
(clipping and the AdamW step), ``rest`` (the step's remaining time: packing, advantages,
metrics, logging).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_grpo_vs_trl as bench  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(bench.MODELS), default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"change the work ({', '.join(bench.SPEED_WORK)})")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=3, help="warm-up steps left out")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/r1kit-phases"))
    args = parser.parse_args(argv)

    import torch

    from r1kit.rewards import harness
    from r1kit.samplers.hf import HFSampler
    from r1kit.stages.grpo import module as grpo

    torch.set_num_threads(args.threads)
    work = dict(bench.SPEED_WORK)
    for item in args.set:
        key, value = item.split("=", 1)
        work[key] = type(bench.SPEED_WORK[key])(value)
    totals: dict[str, float] = collections.defaultdict(float)
    steps, inside = [0], [False]  # phases count only inside training steps (not stage-end eval)

    def timed(owner, name, phase):
        original = getattr(owner, name)

        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                if inside[0]:
                    totals[phase] += time.perf_counter() - start
        setattr(owner, name, wrapper)

    timed(HFSampler, "generate", "generate")
    timed(grpo.GRPOModule, "_reference_while_scoring", "reference")
    timed(harness.PendingRewards, "result", "reward_wait")
    timed(grpo, "accumulate_gradients", "update")
    timed(grpo.GRPOModule, "_clip_and_step", "optimizer")
    step = grpo.GRPOModule.training_step

    def counted_step(*a, **k):
        steps[0] += 1
        if steps[0] == args.skip + 1:
            totals.clear()  # start counting after the warm-up steps
        start, inside[0] = time.perf_counter(), True
        try:
            return step(*a, **k)
        finally:
            inside[0] = False
            totals["step"] += time.perf_counter() - start
    grpo.GRPOModule.training_step = counted_step

    model_dir = bench._build_model(args.work_dir, args.model)
    spec = {"model_dir": str(model_dir), "work": work, "steps": [args.skip, args.steps],
            "threads": args.threads, "reward": "r1",
            "run_dir": str(args.work_dir / f"run-{time.time_ns()}")}
    bench.run_r1kit(spec)
    n = args.steps - args.skip
    phases = {k: v / n for k, v in totals.items()}
    phases["rest"] = phases["step"] - sum(v for k, v in phases.items() if k != "step")
    print(f"{args.model}, {work}: seconds per step over steps {args.skip + 1}-{args.steps}")
    for name in ("generate", "reference", "reward_wait", "update", "optimizer", "rest", "step"):
        print(f"  {name:<12} {phases.get(name, 0.0):7.3f}")
    return phases


if __name__ == "__main__":
    main()
