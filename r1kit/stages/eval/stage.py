"""The ``eval`` stage: held-out greedy accuracy, pass@1 averaged over k samples and maj@k.

Under several processes each rank evaluates every world_size-th held-out row on its own device;
the metrics are summed over ranks, so they are those of the whole held-out set. Rank 0 reports
progress over its own rows (every rank has an equal share), writes the greedy completions of
every rank to ``samples.jsonl`` and sends the metrics and those completions (table
``eval/samples``) to the trackers of ``logger.backends``.
"""

from __future__ import annotations

import json

from r1kit.stages.eval.evaluation import Evaluator
from r1kit.stages.parts import build_parts
from r1kit.run.distributed import join_ranks
from r1kit.run.loggers import build_loggers, close_loggers, log_stage_record
from r1kit.run.progress import Progress, progress_enabled
from r1kit.run.samples import SampleWriter, log_sample_table


def run(cfg, ctx) -> dict:
    ranks = join_ranks(cfg.trainer)
    parts = build_parts(cfg, ctx.registry, ctx.model_source, filters=False)
    if not parts.val_rows:
        raise ValueError(f"stage {ctx.name}: no held-out rows (data.val_size is 0)")
    parts.policy.to(ranks.device)
    rows = parts.val_rows[ranks.rank::ranks.world_size]
    share = f" (rank 0's share of {ranks.world_size} ranks)" if ranks.world_size > 1 else ""
    with Progress(len(rows), label=f"r1kit {ctx.name}{share}", unit="held-out rows",
                  enabled=progress_enabled(cfg.trainer, is_global_zero=ranks.is_global_zero)
                  ) as progress:
        evaluator = Evaluator(parts.collector, rows, every=1, k=cfg.eval.k, reduce=ranks.sum,
                              batch_size=cfg.eval.batch_size, progress=progress,
                              keep_samples=True)
        metrics = evaluator.run()
    samples = [row for part in ranks.gather(evaluator.samples) for row in part]
    if ranks.is_global_zero:
        (ctx.stage_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
        path = ctx.stage_dir / "samples.jsonl"
        path.unlink(missing_ok=True)  # a rerun of an interrupted stage writes them afresh
        SampleWriter(path, every=1).write(samples)
        _log_to_trackers(cfg, ctx, metrics, samples)
    return {"eval": str(ctx.stage_dir / "eval.json"), "metrics": metrics}


def _log_to_trackers(cfg, ctx, metrics: dict, samples: list[dict]) -> None:
    loggers = build_loggers(cfg, ctx.stage_dir, csv=False)  # its results are eval.json
    if not loggers:
        return
    log_stage_record(loggers, cfg, ctx.stage_dir)
    for logger in loggers:
        logger.log_metrics(metrics, step=0)
    log_sample_table(loggers, "eval/samples", samples, step=0)
    close_loggers(loggers)
