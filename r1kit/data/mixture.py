"""The ``mixture`` dataset: the rows of several sources together, each tagged with its task.

R1's last stage ("RL for all scenarios") learns from reasoning prompts, scored by rule rewards,
and general prompts, scored by a reward model; rewards pick their rows by ``task``
(``reward.<name>.applies_to``). A mixture is how one stage gets both:

    data: {name: mixture, sources: [{name: hub, path: ..., task: reasoning},
                                     {name: jsonl, path: general.jsonl, task: general}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MixtureOptions:
    #: Data nodes (``{name: <dataset>, <its options>..., task: <tag>}``); ``task``, when
    #: given, is written into every row of that source that has none.
    sources: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("data.sources: a mixture needs at least one source")
        for i, source in enumerate(self.sources):
            entry, options = _source_options(source, f"data.sources[{i}]")
            if entry.schema is not None:
                entry.schema(**options)  # the source's own checks (a missing file, ...)


def _source_options(source: Any, key: str) -> tuple[Any, dict]:
    """The registry entry and options of one source; a malformed node or an unknown dataset or
    key fails naming ``key`` (the source's own value checks run in ``MixtureOptions``)."""
    from r1kit.config.store import schema_fields
    from r1kit.plugin.manager import get_registry

    if not isinstance(source, dict) or "name" not in source:
        raise ValueError(f"{key}: must be a data node with a 'name' (e.g. {{name: jsonl, "
                         f"path: general.jsonl, task: general}})")
    from r1kit.plugin.registry import UnknownPluginError

    try:
        entry = get_registry().get("dataset", source["name"])
    except UnknownPluginError as err:
        raise ValueError(f"{key}.name: {err}") from None
    own = schema_fields(entry.schema)
    unknown = sorted(set(source) - own - {"name", "task"})
    if unknown:
        raise ValueError(f"{key}.{unknown[0]}: unknown key for dataset '{source['name']}'; "
                         f"valid keys: {', '.join(sorted(own | {'name', 'task'}))}")
    return entry, {k: v for k, v in source.items() if k in own}


def mixture_dataset(split: str, seed: int, *, sources: list) -> list[dict]:
    rows: list[dict] = []
    for i, source in enumerate(sources):
        entry, options = _source_options(source, f"data.sources[{i}]")
        for row in entry.obj(split, seed, **options):
            if source.get("task") is not None:
                row = {"task": source["task"], **row}
            rows.append(row)
    return rows
