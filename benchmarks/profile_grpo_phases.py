"""Where r1kit's GRPO step time goes: wall seconds per step in each phase.

    python benchmarks/profile_grpo_phases.py --model medium --set precision=bf16

Runs the r1kit worker of ``bench_grpo_vs_trl.py`` (same model, work and settings) with timers
wrapped around the phases of a step, and averages them over the steps after ``--skip`` warm-up
steps. Phases: ``generate`` (the sampler), ``reference`` (the reference model's log-probs,
computed while the rewards are scored), ``reward_wait`` (time still spent waiting for the
rewards after that), ``update`` (forward and backward passes of the policy), ``optimizer``
(clipping and the AdamW step), ``rest`` (the step's remaining time: packing, advantages,
metrics, logging).

``--memory`` also reports where the resident memory peaks: a thread reads the process's RSS
every 10 ms and keeps each phase's highest reading (the innermost phase running at the time),
with ``between`` (RSS at the start of a counted step), ``checkpoint`` (the save) and ``export``
(the final model), and the process's true peak (``VmHWM``):

    python benchmarks/profile_grpo_phases.py --model qwen2.5-0.5b-2l --memory --steps 2 --skip 1 \
        --set prompts=1 --set group_size=4 --set micro_batch_size=4 --set max_new_tokens=512
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_grpo_vs_trl as bench  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted([*bench.MODELS, *bench.REAL_MODELS]),
                        default="tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"change the work ({', '.join(bench.SPEED_WORK)})")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=3, help="warm-up steps left out")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/r1kit-phases"))
    parser.add_argument("--memory", action="store_true", help="also each phase's peak RSS")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override for the r1kit run (e.g. model.reference_offload=true)")
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

    memory = RssByPhase() if args.memory else None

    def timed(owner, name, phase):
        original = getattr(owner, name)

        def wrapper(*a, **k):
            start = time.perf_counter()
            if memory is not None:
                memory.enter(phase)
            try:
                return original(*a, **k)
            finally:
                if memory is not None:
                    memory.leave(phase)
                if inside[0]:
                    totals[phase] += time.perf_counter() - start
        setattr(owner, name, wrapper)

    timed(HFSampler, "generate", "generate")
    timed(grpo.GRPOModule, "_reference_while_scoring", "reference")
    timed(harness.PendingRewards, "result", "reward_wait")
    timed(grpo, "accumulate_gradients", "update")
    timed(grpo.GRPOModule, "_clip_and_step", "optimizer")
    if memory is not None:
        from r1kit.pipeline import runner
        from r1kit.run.checkpoint_io import StreamingCheckpointIO

        timed(StreamingCheckpointIO, "save_checkpoint", "checkpoint")
        timed(runner.StageContext, "save_model", "export")
    step = grpo.GRPOModule.training_step

    def counted_step(*a, **k):
        steps[0] += 1
        if steps[0] == args.skip + 1:
            totals.clear()  # start counting after the warm-up steps
        if memory is not None and steps[0] > args.skip:
            memory.peaks["between"] = max(memory.peaks.get("between", 0), rss_mib())
            memory.between.append(rss_parts_mib())
            memory.enter("step")
        start, inside[0] = time.perf_counter(), True
        try:
            return step(*a, **k)
        finally:
            inside[0] = False
            totals["step"] += time.perf_counter() - start
            if memory is not None and steps[0] > args.skip:
                memory.leave("step")
    grpo.GRPOModule.training_step = counted_step

    model_dir = bench._build_model(args.work_dir, args.model)
    spec = {"model_dir": str(model_dir), "work": work, "steps": [args.skip, args.steps],
            "threads": args.threads, "reward": "r1",
            "run_dir": str(args.work_dir / f"run-{time.time_ns()}"),
            "r1kit_overrides": args.override}
    if memory is not None:
        memory.start()
    bench.run_r1kit(spec)
    n = args.steps - args.skip
    phases = {k: v / n for k, v in totals.items()}
    phases["rest"] = phases["step"] - sum(v for k, v in phases.items() if k != "step")
    print(f"{args.model}, {work}: seconds per step over steps {args.skip + 1}-{args.steps}")
    for name in ("generate", "reference", "reward_wait", "update", "optimizer", "rest", "step"):
        print(f"  {name:<12} {phases.get(name, 0.0):7.3f}")
    if memory is not None:
        memory.stop()
        print("peak RSS MiB in each phase (counted steps; checkpoint and export: the run's)")
        for name in ("between", "generate", "reference", "reward_wait", "update", "optimizer",
                     "step", "checkpoint", "export"):
            if name in memory.peaks:
                print(f"  {name:<12} {memory.peaks[name]:7.0f}")
        print(f"  {'process':<12} {hwm_mib():7.0f}  (VmHWM: the whole run)")
        print(f"  at each counted step's start: {memory.between}")
        phases["memory"] = dict(memory.peaks, process=hwm_mib())
    return phases


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_parts_mib() -> dict:
    """Resident memory by kind: anonymous (tensors, the heap) and file-backed (mapped files:
    libraries, and weights transformers maps straight from safetensors)."""
    with open("/proc/self/status") as f:
        return {line.split(":")[0]: int(line.split()[1]) // 1024 for line in f
                if line.startswith(("RssAnon", "RssFile"))}


def hwm_mib() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


class RssByPhase:
    """The highest RSS sampled while each phase ran, credited to the innermost running phase
    (phases run in threads too: the reference pass runs beside the reward scoring)."""

    def __init__(self, every_s: float = 0.01):
        self.every_s, self.running, self.peaks, self.between = every_s, [], {}, []
        self.lock, self.done = threading.Lock(), threading.Event()

    def enter(self, phase):
        with self.lock:
            self.running.append(phase)

    def leave(self, phase):
        with self.lock:
            self.running.remove(phase)

    def start(self):
        threading.Thread(target=self._sample, daemon=True).start()

    def stop(self):
        self.done.set()

    def _sample(self):
        while not self.done.wait(self.every_s):
            rss = rss_mib()
            with self.lock:
                if self.running:
                    phase = self.running[-1]
                    self.peaks[phase] = max(self.peaks.get(phase, 0.0), rss)


if __name__ == "__main__":
    main()
