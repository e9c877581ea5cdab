"""The ``eval`` stage: held-out greedy accuracy, pass@1 averaged over k samples and maj@k."""

from __future__ import annotations

import json

import torch

from r1kit.evaluation import Evaluator
from r1kit.pipeline.components import build_parts


def run(cfg, ctx) -> dict:
    parts = build_parts(cfg, ctx.registry, ctx.model_source, filters=False)
    if not parts.val_rows:
        raise ValueError(f"stage {ctx.name}: no held-out rows (data.val_size is 0)")
    parts.policy.to("cuda" if torch.cuda.is_available() else "cpu")
    metrics = Evaluator(parts.collector, parts.val_rows, every=1, k=cfg.eval.k).run()
    (ctx.stage_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
    return {"eval": str(ctx.stage_dir / "eval.json"), "metrics": metrics}
