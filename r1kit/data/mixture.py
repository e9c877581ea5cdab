"""The ``mixture`` dataset: the rows of several sources together, each tagged with its task.

R1's last stage ("RL for all scenarios") learns from reasoning prompts, scored by rule rewards,
and general prompts, scored by a reward model; rewards pick their rows by ``task``
(``reward.<name>.applies_to``). A mixture is how one stage gets both:

    data: {name: mixture, sources: [{name: hub, path: ..., task: reasoning},
                                     {name: jsonl, path: general.jsonl, task: general}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from r1kit.config.schema import ConfigError


@dataclass
class MixtureSource:
    """One source of a mixture: its dataset plugin, that plugin's typed options, its tag."""

    name: str
    options: Any
    task: Optional[str] = None


@dataclass
class MixtureOptions:
    #: Data nodes (``{name: <dataset>, <its options>..., task: <tag>}``); ``task``, when
    #: given, is written into every row of that source that has none. Validation turns each
    #: into a ``MixtureSource``.
    sources: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("data.sources: a mixture needs at least one source")
        self.sources = [source if isinstance(source, MixtureSource)
                        else _typed_source(source, f"data.sources[{i}]")
                        for i, source in enumerate(self.sources)]


def _typed_source(source: Any, key: str) -> MixtureSource:
    """A source node as a ``MixtureSource``; a malformed node, an unknown dataset, an unknown
    key or a bad value fails naming ``key``."""
    from r1kit.config.options import typed
    from r1kit.config.store import schema_fields
    from r1kit.plugin.manager import get_registry
    from r1kit.plugin.registry import UnknownPluginError

    if not isinstance(source, dict) or "name" not in source:
        raise ConfigError(f"{key}: must be a data node with a 'name' (e.g. {{name: jsonl, "
                         f"path: general.jsonl, task: general}})")
    try:
        entry = get_registry().get("dataset", source["name"])
    except UnknownPluginError as err:
        raise ConfigError(f"{key}.name: {err}") from None
    own = schema_fields(entry.schema)
    unknown = sorted(set(source) - own - {"name", "task"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key for dataset '{source['name']}'; "
                         f"valid keys: {', '.join(sorted(own | {'name', 'task'}))}")
    values = {k: v for k, v in source.items() if k in own}
    options = typed(entry.schema, values, key) if entry.schema is not None else None
    return MixtureSource(source["name"], options, source.get("task"))


def mixture_dataset(split: str, seed: int, options: MixtureOptions) -> list[dict]:
    from r1kit.plugin.manager import get_registry

    rows: list[dict] = []
    for source in options.sources:
        for row in get_registry().get("dataset", source.name).obj(split, seed, source.options):
            if source.task is not None:
                row = {"task": source.task, **row}
            rows.append(row)
    return rows
