"""Turn the ``reward`` config node into the harness's reward specs."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from r1kit.config.schema import RewardCommon
from r1kit.config.store import schema_fields
from r1kit.registry import Registry
from r1kit.rewards.harness import RewardSpec

_COMMON = schema_fields(RewardCommon)


def reward_specs(reward_cfg: DictConfig, registry: Registry) -> list[RewardSpec]:
    specs = []
    for name, node in OmegaConf.to_container(reward_cfg, resolve=True).items():
        entry = registry.get("reward", name)
        # the config store filled every common field in, so all three keys are present
        specs.append(RewardSpec(
            name=name, fn=entry.obj, weight=node["weight"],
            options={k: v for k, v in node.items() if k not in _COMMON},
            timeout=node["timeout"], on_error=node["on_error"]))
    return specs
