"""The ``grpo`` stage: reinforcement learning with GRPO (or a variant) from the previous model."""

from __future__ import annotations

from r1kit.models.loading import load_model
from r1kit.stages.parts import build_advantage
from r1kit.stages.training import TrainingStage, run_training_stage
from r1kit.run.samples import SampleWriter
from r1kit.stages.grpo.module import GRPOModule


def _module(cfg, ctx, parts, stream, evaluator) -> GRPOModule:
    # the frozen reference is the model the stage starts from; β = 0 needs none, and a LoRA
    # policy is its own reference with the adapters off (no second copy of the weights)
    reference = load_model(ctx.model_source, cfg.model, trainable=False) \
        if cfg.algo.beta > 0 and cfg.model.lora.rank == 0 else None
    return GRPOModule(
        policy=parts.policy, reference=reference, tokenizer=parts.tokenizer,
        collector=parts.collector, stream=stream, advantage=build_advantage(cfg, ctx.registry),
        cfg=cfg, evaluator=evaluator,
        sample_writer=SampleWriter(ctx.stage_dir / "samples.jsonl", cfg.logger.samples_every),
        hooks=ctx.hooks)


def run(cfg, ctx) -> dict:
    return run_training_stage(cfg, ctx, TrainingStage(
        train_rows=lambda cfg, ctx, parts: parts.train_rows, module=_module))
