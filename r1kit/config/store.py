"""Feed Hydra's ConfigStore from the plugin registry.

Every registered reward, filter, sampler, advantage estimator and dataset becomes an option of
its config group without any YAML file, so ``reward=[my_reward]`` works for a plugin installed
from pip exactly as for a built-in.
"""

from __future__ import annotations

import dataclasses

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from r1kit.config import schema
from r1kit.plugin.registry import Registry

#: group -> (registry kind, common schema, True when the group is a multi-select of named nodes)
PLUGIN_GROUPS = {
    "reward": ("reward", schema.RewardCommon, True),
    "filter": ("filter", schema.FilterCommon, True),
    "sampler": ("sampler", schema.SamplerCommon, False),
    "advantage": ("advantage", schema.AdvantageCommon, False),
    "data": ("dataset", schema.DataCommon, False),
}


def _defaults(cls) -> dict:
    if cls is None:
        return {}
    return OmegaConf.to_container(OmegaConf.structured(cls), resolve=False)


def option_defaults(group: str, entry) -> dict:
    """The config node of one plugin: the group's common fields, then the plugin's options."""
    _, common, named = PLUGIN_GROUPS[group]
    node = _defaults(common)
    if not named:
        node["name"] = entry.name
    for key, value in _defaults(entry.schema).items():
        node[key] = value
    return node


def store_plugin_options(registry: Registry) -> None:
    cs = ConfigStore.instance()
    cs.store(name="r1kit_schema", node=schema.RootConfig)
    for group, (kind, _, named) in PLUGIN_GROUPS.items():
        for entry in registry.entries(kind):
            node = option_defaults(group, entry)
            cs.store(group=group, name=entry.name, node={entry.name: node} if named else node,
                     provider=entry.provider)


def schema_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if cls is not None else set()
