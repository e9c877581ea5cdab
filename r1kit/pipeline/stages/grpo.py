"""The ``grpo`` stage: reinforcement learning with GRPO (or a variant) from the previous model."""

from __future__ import annotations

from r1kit.evaluation import Evaluator
from r1kit.models.loading import load_model
from r1kit.pipeline.components import build_advantage, build_parts
from r1kit.data.stream import PromptStream
from r1kit.run.samples import SampleWriter
from r1kit.run.trainer import build_trainer, resume_checkpoint
from r1kit.trainers.common import reduce_metrics
from r1kit.trainers.grpo import GRPOModule


def run(cfg, ctx) -> dict:
    parts = build_parts(cfg, ctx.registry, ctx.model_source)
    reference = load_model(ctx.model_source, cfg.model, trainable=False) if cfg.algo.beta > 0 \
        else None
    trainer = build_trainer(cfg, ctx.stage_dir, ctx.callbacks(cfg))
    stream = PromptStream(parts.train_rows, seed=cfg.seed, rank=trainer.global_rank,
                          world_size=trainer.world_size)
    val_rows = parts.val_rows[trainer.global_rank::trainer.world_size]
    module = GRPOModule(
        policy=parts.policy, reference=reference, tokenizer=parts.tokenizer,
        collector=parts.collector, stream=stream, advantage=build_advantage(cfg, ctx.registry),
        cfg=cfg, evaluator=Evaluator(parts.collector, val_rows, every=cfg.eval.every,
                                     k=cfg.eval.k),
        sample_writer=SampleWriter(ctx.stage_dir / "samples.jsonl", cfg.logger.samples_every),
        hooks=ctx.hooks)
    trainer.fit(module, ckpt_path=resume_checkpoint(ctx.stage_dir))
    # every rank evaluates its share of the held-out set; the manifest gets the whole set's
    final = reduce_metrics(Evaluator(parts.collector, val_rows, every=1, k=cfg.eval.k).run(),
                           weight=len(val_rows))
    return ctx.save_model(trainer, parts.policy, parts.tokenizer, metrics=final)
