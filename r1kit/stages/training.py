"""The shell every training stage (``sft``, ``grpo``) runs in: build the stage's parts, its
Trainer and prompt stream, train (resuming from the stage's last checkpoint), evaluate on the
whole held-out set and save the model. A stage module says only what differs (``TrainingStage``):
which rows it trains on and which LightningModule learns from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from r1kit.data.stream import PromptStream
from r1kit.stages.eval.evaluation import Evaluator
from r1kit.stages.parts import build_parts
from r1kit.run.distributed import sum_over_ranks
from r1kit.run.loggers import close_loggers
from r1kit.run.progress import Progress, progress_enabled
from r1kit.run.trainer import build_trainer, resume_checkpoint


@dataclass
class TrainingStage:
    """What a training stage adds to the shell."""

    #: ``fn(cfg, ctx, parts) -> rows`` the stage trains on (raises on unusable data)
    train_rows: Callable[..., list]
    #: ``fn(cfg, ctx, parts, stream, evaluator) -> LightningModule``
    module: Callable[..., object]
    #: whether the collector applies the configured filters (only RL steps filter rollouts)
    filters: bool = True


def run_training_stage(cfg, ctx, stage: TrainingStage) -> dict:
    parts = build_parts(cfg, ctx.registry, ctx.model_source, filters=stage.filters)
    rows = stage.train_rows(cfg, ctx, parts)
    trainer = build_trainer(cfg, ctx.stage_dir, ctx.callbacks(cfg))
    stream = PromptStream(rows, seed=cfg.seed, rank=trainer.global_rank,
                          world_size=trainer.world_size)
    val_rows = parts.val_rows[trainer.global_rank::trainer.world_size]
    # its greedy completions go to val_samples.jsonl and the trackers' val/samples table
    evaluator = Evaluator(parts.collector, val_rows, every=cfg.eval.every, k=cfg.eval.k,
                          reduce=sum_over_ranks, batch_size=cfg.eval.batch_size,
                          keep_samples=True)
    module = stage.module(cfg, ctx, parts, stream, evaluator)
    trainer.fit(module, ckpt_path=resume_checkpoint(ctx.stage_dir))
    # every rank evaluates its share of the held-out set; the manifest gets the whole set's
    share = f" (rank 0's share of {trainer.world_size} ranks)" if trainer.world_size > 1 else ""
    with Progress(len(val_rows), label=f"r1kit {ctx.name} final eval{share}",
                  unit="held-out rows", enabled=progress_enabled(
                      cfg.trainer, is_global_zero=trainer.is_global_zero)) as progress:
        final = Evaluator(parts.collector, val_rows, every=1, k=cfg.eval.k,
                          reduce=sum_over_ranks, batch_size=cfg.eval.batch_size,
                          progress=progress).run()
    outputs = ctx.save_model(trainer, parts.policy, parts.tokenizer, metrics=final)
    close_loggers(trainer.loggers)  # the next stage opens its own tracker runs
    return outputs
