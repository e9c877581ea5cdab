"""Named registries of plugin objects, one per plugin kind, filled by the registration hooks."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Callable

KINDS = ("reward", "sampler", "advantage", "filter", "dataset", "code_runner", "judge_backend")


class PluginError(Exception):
    """Base class of plugin registration and lookup errors."""


class DuplicatePluginError(PluginError):
    """A name was registered twice for the same kind."""


class UnknownPluginError(PluginError, KeyError):
    """A config named a plugin nobody registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Callable[..., Any]
    schema: type | None
    provider: str  # "distribution version" of the package that registered it
    plugin: str  # the pluggy plugin name (module path or entry-point name)


class Registry:
    """All registered plugin objects, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, name: str, obj: Callable[..., Any], schema: type | None = None,
            *, provider: str, plugin: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(f"{kind} name {name!r} from {provider} must be a Python identifier "
                              "(it becomes a config key)")
        if not callable(obj):
            raise PluginError(f"{kind} '{name}' from {provider}: {obj!r} is not callable")
        if schema is not None and not dataclasses.is_dataclass(schema):
            raise PluginError(f"{kind} '{name}' from {provider}: schema must be a dataclass, "
                              f"got {schema!r}")
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise DuplicatePluginError(
                f"{kind} '{name}' is registered twice: by {existing.provider} "
                f"(plugin {existing.plugin}) and by {provider} (plugin {plugin}); "
                f"block one with R1KIT_BLOCK_PLUGINS")
        self._entries[kind][name] = Entry(kind, name, obj, schema, provider, plugin)

    def get(self, kind: str, name: str) -> Entry:
        entries = self._entries[kind]
        if name not in entries:
            valid = ", ".join(f"{e.name} ({e.provider})" for e in sorted(
                entries.values(), key=lambda e: e.name)) or "none"
            hint = nearest(name, entries)
            hint = f" (did you mean '{hint}'?)" if hint else ""
            raise UnknownPluginError(f"unknown {kind} '{name}'{hint}; registered {kind}s: {valid}")
        return entries[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = KINDS if kind is None else (kind,)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]


def nearest(name: str, names) -> str | None:
    """The registered name closest to a misspelled ``name``, if any is close."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return close[0] if close else None
