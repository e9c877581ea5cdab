"""The ``eval`` stage: held-out greedy accuracy, pass@1 averaged over k samples and maj@k.

Under several processes each rank evaluates every world_size-th held-out row on its own device;
the metrics are summed over ranks, so they are those of the whole held-out set.
"""

from __future__ import annotations

import json

from r1kit.stages.eval.evaluation import Evaluator
from r1kit.stages.parts import build_parts
from r1kit.run.distributed import join_ranks


def run(cfg, ctx) -> dict:
    ranks = join_ranks(cfg.trainer)
    parts = build_parts(cfg, ctx.registry, ctx.model_source, filters=False)
    if not parts.val_rows:
        raise ValueError(f"stage {ctx.name}: no held-out rows (data.val_size is 0)")
    parts.policy.to(ranks.device)
    rows = parts.val_rows[ranks.rank::ranks.world_size]
    metrics = Evaluator(parts.collector, rows, every=1, k=cfg.eval.k, reduce=ranks.sum).run()
    if ranks.is_global_zero:
        (ctx.stage_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
    return {"eval": str(ctx.stage_dir / "eval.json"), "metrics": metrics}
