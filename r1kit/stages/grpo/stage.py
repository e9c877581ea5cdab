"""The ``grpo`` stage: reinforcement learning with GRPO (or a variant) from the previous model."""

from __future__ import annotations

import copy

from r1kit.models.loading import load_model
from r1kit.rollout.pipelined import PipelinedRollouts, PolicyCopy
from r1kit.samplers.base import sampler_capabilities
from r1kit.stages.parts import build_advantage, build_sampler
from r1kit.stages.training import TrainingStage, run_training_stage
from r1kit.run.samples import SampleWriter
from r1kit.stages.grpo.module import GRPOModule
from r1kit.stages.grpo.reference import FrozenReference


def _module(cfg, ctx, parts, stream, evaluator) -> GRPOModule:
    # the frozen reference is the model the stage starts from; β = 0 needs none, and a LoRA
    # policy is its own reference with the adapters off (no second copy of the weights)
    reference = FrozenReference(
        lambda: load_model(ctx.model_source, cfg.model, trainable=False),
        offload=cfg.model.reference_offload) \
        if cfg.algo.beta > 0 and cfg.model.lora.rank == 0 else None
    return GRPOModule(
        policy=parts.policy, reference=reference, tokenizer=parts.tokenizer,
        collector=parts.collector, stream=stream, advantage=build_advantage(cfg, ctx.registry),
        cfg=cfg, evaluator=evaluator,
        sample_writer=SampleWriter(ctx.stage_dir / "samples.jsonl", cfg.logger.samples_every),
        hooks=ctx.hooks, pipelined=_pipelined(cfg, ctx, parts))


def _pipelined(cfg, ctx, parts) -> PipelinedRollouts | None:
    """``algo.async_rollouts``: the background collector, with a sampler of its own (over a copy
    of the weights when the stage's sampler generates with the policy's own tensors)."""
    if not cfg.algo.async_rollouts:
        return None
    weights = None
    if sampler_capabilities(parts.sampler).samples_policy_in_place:
        # its own copy of the weights, and its own random source
        weights = PolicyCopy(parts.policy)
        sampler = build_sampler(cfg, ctx.registry, weights.model, parts.tokenizer)

        def sync(policy):
            weights.sync(policy)
            sampler.generator = weights.generator
    else:  # an engine with weights of its own: synced before each launch
        sampler, sync = parts.sampler, parts.sampler.sync_weights
    if sampler_capabilities(sampler).exact_logprobs:
        sampler.request_logprobs(True)  # π_old is the sampling policy's own log-probs
    collector = copy.copy(parts.collector)  # same rewards, filters and error counts
    collector.sampler = sampler
    return PipelinedRollouts(collector, sync, weights)


def run(cfg, ctx) -> dict:
    return run_training_stage(cfg, ctx, TrainingStage(
        train_rows=lambda cfg, ctx, parts: parts.train_rows, module=_module))
