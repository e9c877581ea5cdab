"""Peak memory of one GRPO step (β > 0), full fine-tuning vs LoRA, on a real-shaped model.

    python benchmarks/bench_lora_memory.py [--layers 2] [--tokens 128] [--rank 16]

The model is Qwen2.5-0.5B's shape (vocabulary 151,936, width 896, 14 heads / 2 KV heads,
MLP 4,864, tied embeddings) with fewer layers and random weights. Each configuration runs in
a fresh process (its peak RSS is its own): the same one-step ``pipeline=grpo`` run, one prompt
× G=4, fp32. Full fine-tuning loads a second copy of the weights as the frozen reference and
keeps AdamW state for every weight; LoRA's reference is the policy with its adapters off and
its optimizer state covers the adapters only. Reported: peak RSS, the parameters the run
holds (policy + reference) and trains, and the step's wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_shapes import build_qwen25_05b  # noqa: E402


def child(model_dir: str, run_dir: str, tokens: int, rank: int) -> None:
    """One GRPO step in this process; prints a JSON line with what it measured."""
    from hydra import compose, initialize_config_dir

    from r1kit.cli.startup import CONF_DIR, prepare
    from r1kit.config.validate import validate
    from r1kit.pipeline.runner import run_pipeline
    from r1kit.plugin.manager import get_registry
    from r1kit.stages.grpo import stage as grpo_stage

    prepare()
    overrides = ["pipeline=grpo", f"model.path={model_dir}", "data=arithmetic", "logger=csv",
                 "trainer.max_steps=1", "data.batch_size=1", "algo.group_size=4",
                 f"sampler.max_new_tokens={tokens}", "algo.beta=0.04", "eval.every=0",
                 "data.val_size=1", "eval.k=1", "trainer.enable_progress_bar=false",
                 "checkpoint_every=1000", f"model.lora.rank={rank}", f"run_dir={run_dir}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=overrides)
    plan = validate(cfg, get_registry())
    built = {}
    original = grpo_stage._module

    def spy(*args):  # counted as built: the stage's export merges the adapters away
        module = original(*args)
        models = [module.policy] + ([module.reference] if module.reference is not None else [])
        built.update(held=sum(p.numel() for m in models for p in m.parameters()),
                     trained=sum(p.numel() for p in module.policy.parameters()
                                 if p.requires_grad),
                     reference_copy=module.reference is not None)
        return module

    grpo_stage._module = spy
    start = time.perf_counter()
    run_pipeline(plan)
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "params_held": built["held"], "params_trained": built["trained"],
                      "reference_copy": built["reference_copy"], "run_s": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per completion")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model_dir, run_dir, tokens, rank = args.child
        child(model_dir, run_dir, int(tokens), int(rank))
        return
    with tempfile.TemporaryDirectory() as work:
        model_dir = build_qwen25_05b(Path(work) / "model", args.layers)
        rows = {}
        for name, rank in (("full", 0), (f"lora r={args.rank}", args.rank)):
            out = subprocess.run([sys.executable, __file__, "--child", str(model_dir),
                                  str(Path(work) / f"run{rank}"), str(args.tokens),
                                  str(rank)], cwd=ROOT, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
            rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"Qwen2.5-0.5B shape, {args.layers} layers, 1 prompt x G=4 x {args.tokens} tokens, "
          "beta=0.04, fp32, one GRPO step per fresh process")
    print(f"{'run':<12} {'peak RSS':>10} {'params held':>12} {'trained':>12} {'reference':>10} "
          f"{'run s':>7}")
    for name, row in rows.items():
        print(f"{name:<12} {row['peak_rss_mb']:>8.0f}MB {row['params_held'] / 1e6:>11.1f}M "
              f"{row['params_trained'] / 1e6:>11.2f}M "
              f"{'copy' if row['reference_copy'] else 'adapters off':>10} {row['run_s']:>7.1f}")
    full, lora = rows["full"], rows[f"lora r={args.rank}"]
    print(f"LoRA / full: peak RSS {lora['peak_rss_mb'] / full['peak_rss_mb']:.2f}x, "
          f"params held {lora['params_held'] / full['params_held']:.2f}x")


if __name__ == "__main__":
    main()
