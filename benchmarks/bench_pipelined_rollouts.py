"""Pipelined (``algo.async_rollouts=true``) vs synchronous rollouts on the embedded task's RL stage.

    python benchmarks/bench_pipelined_rollouts.py COLD_START_MODEL_DIR [--seeds 0 1 2]

COLD_START_MODEL_DIR is the embedded default's cold-start export (``python -m r1kit`` writes it
to ``runs/default/cold_start/model``); every run starts from it, with the embedded default's
GRPO settings (16 prompts × G=8, β=0.04, lr 3e-5) for ``--steps`` steps, held-out accuracy
every ``--eval-every`` steps. Three ways to spend a 2-core CPU, one run each per seed, one
after another:

- ``sync x1``: synchronous, torch on 1 thread (the embedded default's own setting);
- ``sync x2``: synchronous, torch on 2 threads (each op split over both cores);
- ``async x1``: pipelined, torch on 1 thread per Python thread (sampling on one core while
  training runs on the other).

Reported per way: the median step time (``time/step_s``; the first step, which samples in
the step itself, left out), the median time a step spends getting its rollout
(``time/sample_s``: all of the sampling when synchronous, the wait when pipelined), its ratio to ``sync x1`` and ``sync x2``, the held-out accuracy at
the end, and the wall time at which held-out accuracy first reached ``--target``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAYS = {"sync x1": (False, 1), "sync x2": (False, 2), "async x1": (True, 1)}


def run(model: str, run_dir: Path, seed: int, pipelined: bool, threads: int, steps: int,
        eval_every: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "r1kit", "pipeline=grpo", f"model.path={model}",
               "data=arithmetic", "data.batch_size=16", "algo.group_size=8", "algo.beta=0.04",
               "optim.lr=3e-5", f"trainer.max_steps={steps}", f"eval.every={eval_every}",
               f"algo.async_rollouts={str(pipelined).lower()}", f"seed={seed}",
               "logger=csv", "trainer.enable_progress_bar=false", "checkpoint_every=1000",
               f"run_dir={run_dir}"]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    with (run_dir / "rl" / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def summarise(rows: list[dict], target: float) -> dict:
    steps = [r for r in rows if r.get("time/step_s")]
    times = [float(r["time/step_s"]) for r in steps]
    # the part of a step spent getting its rollout: all of the sampling when synchronous,
    # the wait for the background thread when pipelined
    waits = [float(r["time/sample_s"]) for r in steps if r.get("time/sample_s")]
    wall, reached = 0.0, None
    evals = {}
    for r in rows:
        if r.get("time/step_s"):
            wall += float(r["time/step_s"])
        if r.get("val/accuracy"):
            accuracy = float(r["val/accuracy"])
            evals[int(r["step"])] = accuracy
            if reached is None and accuracy >= target:
                reached = wall
    return {"step_s": statistics.median(times[1:]), "sample_s": statistics.median(waits[1:]),
            "final": evals[max(evals)] if evals else None, "reached_s": reached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.55)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            for way, (pipelined, threads) in WAYS.items():
                rows = run(args.model, Path(work) / f"{way.replace(' ', '_')}-{seed}", seed,
                           pipelined, threads, args.steps, args.eval_every)
                results[way].append(summarise(rows, args.target))
                print(f"seed {seed} {way}: {results[way][-1]}", flush=True)
    base1 = statistics.mean(r["step_s"] for r in results["sync x1"])
    base2 = statistics.mean(r["step_s"] for r in results["sync x2"])
    print(f"\n{args.steps} steps from {args.model}, seeds {args.seeds}, target held-out accuracy "
          f"{args.target:.0%}")
    print(f"{'way':<9} {'step s':>7} {'rollout s':>10} {'/sync x1':>9} {'/sync x2':>9} "
          f"{'final acc':>10} {'time to target (s, per seed)':>30}")
    for way, rs in results.items():
        step = statistics.mean(r["step_s"] for r in rs)
        final = statistics.mean(r["final"] for r in rs)
        reached = ", ".join("-" if r["reached_s"] is None else f"{r['reached_s']:.0f}" for r in rs)
        wait = statistics.mean(r["sample_s"] for r in rs)
        print(f"{way:<9} {step:>7.3f} {wait:>10.3f} {step / base1:>9.2f} {step / base2:>9.2f} "
              f"{final:>10.1%} {reached:>30}")


if __name__ == "__main__":
    main()
