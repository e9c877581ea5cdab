"""Turn the ``reward`` config node into the harness's reward specs."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from r1kit.config.schema import RewardCommon
from r1kit.config.store import schema_fields
from r1kit.plugin.registry import Registry
from r1kit.rewards.harness import RewardSpec

_COMMON = schema_fields(RewardCommon)


def reward_specs(reward_cfg: DictConfig, registry: Registry) -> list[RewardSpec]:
    specs = []
    for name, node in OmegaConf.to_container(reward_cfg, resolve=True).items():
        entry = registry.get("reward", name)
        fn = entry.obj if node["applies_to"] is None else routed(entry.obj, node["applies_to"])
        # the config store filled every common field in, so these keys are present
        specs.append(RewardSpec(
            name=name, fn=fn, weight=node["weight"],
            options={k: v for k, v in node.items() if k not in _COMMON},
            timeout=node["timeout"], on_error=node["on_error"]))
    return specs


def routed(fn, tasks):
    """``fn`` restricted to rows whose ``task`` is in ``tasks``; other rows get None."""
    tasks = set(tasks)

    def route(completions, examples, **options):
        picked = [i for i, row in enumerate(examples) if row.get("task") in tasks]
        out = [None] * len(completions)
        if picked:
            values = fn([completions[i] for i in picked], [examples[i] for i in picked],
                        **options)
            for i, value in zip(picked, values):
                out[i] = value
        return out

    route.__name__ = getattr(fn, "__name__", "reward")
    route.__module__ = getattr(fn, "__module__", None)
    return route
