"""Rejection-sampling wall time on 1 vs 2 CPU processes: same prompts, samples and tokens.

    python benchmarks/bench_rejection_sampling_ranks.py          # 512 prompts x 8 x 64 tokens
    python benchmarks/bench_rejection_sampling_ranks.py --prompts 64 --repeats 1

Setups: 1 process x 1 torch thread, 1 process x 2 threads, 2 processes (DDP over gloo) x 1
thread each. Every run is a fresh worker process on the untrained tiny model (built once);
with 2 processes the stage itself starts rank 1, as in a real run. Rank 0 times the
``rejection_sampling`` stage once every rank has joined: sampling, scoring, filtering, writing
the shards and merging them. Joining (for 2 processes: rank 1 starting, importing and reaching
the process group) is timed on its own. The setups take turns, ``--repeats`` rounds; the
table gives the median and every run, when each rank wrote its last shard, the load average
before and after each run, and whether the merged dataset is the 1 x 1 one byte for byte (each
shard is seeded by its number).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name -> (processes, torch threads per process)
SETUPS = {"1 process x 1 thread": (1, 1), "1 process x 2 threads": (1, 2),
          "2 processes x 1 thread": (2, 1)}


def _overrides(args, processes: int, run_dir: Path, model: str) -> list[str]:
    return ["pipeline=grpo", "~pipeline.stages.rl",
            "+pipeline.stages.rs={kind: rejection_sampling}", "model=tiny", f"model.path={model}",
            "data=arithmetic", "data.val_size=4", f"rejection.num_prompts={args.prompts}",
            f"rejection.samples_per_prompt={args.samples}",
            f"rejection.shard_size={args.shard_size}", f"sampler.max_new_tokens={args.tokens}",
            "sampler.temperature=1.0", "filter=[dedupe,max_per_prompt]",
            "filter.max_per_prompt.n=1", f"trainer.devices={processes}",
            "trainer.accelerator=cpu", f"trainer.strategy={'ddp' if processes > 1 else 'auto'}",
            f"run_dir={run_dir}"]


def worker(overrides: list[str], threads: int, out: Path) -> None:
    """One run, in every rank (Fabric's launcher re-runs this command for rank 1)."""
    import lightning as L
    import torch
    from hydra import compose, initialize_config_dir

    from r1kit.cli.startup import CONF_DIR, prepare
    from r1kit.config.validate import validate
    from r1kit.pipeline.runner import StageContext
    from r1kit.stages.rejection_sampling import stage as rejection_sampling
    from r1kit.plugin.manager import get_plugin_manager, get_registry
    from r1kit.run.distributed import join_ranks

    torch.set_num_threads(threads)
    prepare()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=overrides)
    registry = get_registry()
    scfg = validate(cfg, registry).stage("rs").config
    start = time.perf_counter()
    ranks = join_ranks(scfg.trainer)
    joined, joined_wall = time.perf_counter(), time.time()
    stage_dir = Path(cfg.run_dir) / "rs"
    stage_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, verbose=False)
    ctx = StageContext("rs", stage_dir, Path(cfg.run_dir), scfg.model.path, registry,
                       get_plugin_manager().hook)
    outputs = rejection_sampling.run(scfg, ctx)  # joins again: a no-op once joined
    end = time.perf_counter()
    if ranks.is_global_zero:
        digest = hashlib.sha256((stage_dir / "dataset.jsonl").read_bytes()).hexdigest()
        out.write_text(json.dumps({
            "join_s": joined - start, "stage_s": end - joined, "world_size": ranks.world_size,
            "threads": torch.get_num_threads(), "metrics": outputs["metrics"],
            "rank_done_s": _rank_done(stage_dir / "shards", joined_wall),
            "dataset_sha256": digest}))


def _rank_done(shard_dir: Path, start: float) -> dict[int, float]:
    """Per rank, seconds from the join to its last shard on disk (from the shard records and
    file times): how evenly the ranks shared the work."""
    done: dict[int, float] = {}
    for record in shard_dir.glob("shard-*.meta.json"):
        rank = json.loads(record.read_text())["rank"]
        finished = record.with_name(record.name.replace(".meta.json", ".jsonl")).stat().st_mtime
        done[rank] = max(done.get(rank, 0.0), finished - start)
    return dict(sorted(done.items()))


def _run(args, name: str, root: Path, model: str, round_: int) -> dict:
    processes, threads = SETUPS[name]
    run_dir = root / f"{processes}p{threads}t-{round_}"
    out = run_dir.with_suffix(".json")
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads),
               "--out", str(out), "--", *_overrides(args, processes, run_dir, model)]
    load_before = os.getloadavg()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    return {**result, "load_before": load_before, "load_after": os.getloadavg()}


def _seconds(runs: list[dict], key: str) -> list[str]:
    return [f"{run[key]:.2f}" for run in runs]


def _table(runs: dict[str, list[dict]]) -> str:
    base = statistics.median(r["stage_s"] for r in runs["1 process x 1 thread"])
    reference = runs["1 process x 1 thread"][0]["dataset_sha256"]
    lines = ["| setup | stage s (median) | runs | join s | speed-up vs 1x1 | same dataset as 1x1 "
             "| ranks done at s | load avg (1 min) before/after |", "|---" * 8 + "|"]
    for name, rs in runs.items():
        median = statistics.median(r["stage_s"] for r in rs)
        same = "yes" if all(r["dataset_sha256"] == reference for r in rs) else "no"
        loads = ", ".join(f"{r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}" for r in rs)
        done = ", ".join("/".join(f"{t:.1f}" for t in r["rank_done_s"].values()) for r in rs)
        lines.append(f"| {name} | {median:.2f} | {', '.join(_seconds(rs, 'stage_s'))} | "
                     f"{statistics.median(r['join_s'] for r in rs):.2f} | {base / median:.2f}x | "
                     f"{same} | {done} | {loads} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.overrides, args.threads, args.out)
        return {}

    from r1kit.models.tiny import ensure_tiny_model

    with tempfile.TemporaryDirectory(prefix="r1kit-bench-rs-") as tmp:
        root = Path(tmp)
        model = str(ensure_tiny_model(root / "tiny_model", seed=0, hidden_size=128,
                                      num_layers=4, num_heads=4, intermediate_size=512,
                                      max_position_embeddings=256))
        runs = {name: [] for name in SETUPS}
        for round_ in range(args.repeats):
            for name in SETUPS:
                runs[name].append(_run(args, name, root, model, round_))
    print(f"{args.prompts} prompts x {args.samples} samples x {args.tokens} new tokens, "
          f"shards of {args.shard_size} prompts")
    print(_table(runs))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return runs


if __name__ == "__main__":
    main()
