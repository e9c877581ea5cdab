"""Build a stage's parts from its config: model, tokenizer, sampler, rewards, filters, data."""

from __future__ import annotations

from dataclasses import dataclass

from r1kit.data.loading import load_splits
from r1kit.models.loading import load_model, load_tokenizer
from r1kit.rewards.specs import reward_specs
from r1kit.rollout.collector import FilterStep, RolloutCollector


def build_sampler(cfg, registry, model, tokenizer):
    return registry.get("sampler", cfg.sampler.name).obj(model, tokenizer, cfg.sampler)


def build_filters(cfg, registry) -> list[FilterStep]:
    return [FilterStep(name, registry.get("filter", name).obj, options)
            for name, options in cfg.filter.items()]


def build_advantage(cfg, registry):
    """The advantage estimator and its options (``fn(rewards, group_ids, options)``)."""
    return registry.get("advantage", cfg.advantage.name).obj, cfg.advantage


@dataclass
class Parts:
    policy: object
    tokenizer: object
    sampler: object
    collector: RolloutCollector
    train_rows: list
    val_rows: list


def build_parts(cfg, registry, source: str, *, filters: bool = True) -> Parts:
    tokenizer = load_tokenizer(source, cfg.model)
    policy = load_model(source, cfg.model)
    sampler = build_sampler(cfg, registry, policy, tokenizer)
    collector = RolloutCollector(
        sampler=sampler, tokenizer=tokenizer, model_cfg=cfg.model, template=cfg.data.template,
        rewards=reward_specs(cfg.reward, registry),
        filters=build_filters(cfg, registry) if filters else [])
    train, val = load_splits(cfg.data, registry, cfg.seed)
    return Parts(policy, tokenizer, sampler, collector, train, val)


