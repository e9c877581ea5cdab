"""Typed options: one config node as one validated dataclass instance.

A plugin registers a schema (a dataclass of its own options); its config node also holds the
fields every member of its group has (``schema.RewardCommon`` for rewards: weight, timeout, ...).
``options_class`` joins the two into one dataclass that subclasses both, so the instance a
plugin receives is an instance of its own schema (``isinstance(options, AccuracyOptions)``)
and also carries the group's fields; both ``__post_init__`` checks run when it is built.
The schema is the one place a plugin's defaults and checks are written.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from r1kit.config.schema import ConfigError


def typed(cls: type, values: dict, key: str) -> Any:
    """An instance of ``cls`` from ``values``: a wrong type or a failed value check raises
    ``ConfigError`` naming ``key`` (and the field)."""
    try:
        node = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(node)
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        bad = f"{key}.{err.full_key}" if getattr(err, "full_key", None) else key
        raise ConfigError(f"{bad}: {err.msg if hasattr(err, 'msg') else err}") from None
    except (ValueError, TypeError) as err:
        # a plugin's own check in its options' __post_init__: usually names its key already
        message = str(err)
        raise ConfigError(message if message.startswith(key) else f"{key}: {message}") from None


@functools.cache
def options_class(common: type, schema: type | None) -> type:
    """The dataclass of a plugin's whole config node: ``common``'s fields, then ``schema``'s.
    A schema may declare a common field again to give it its own default (a sampler that
    samples 3 tokens unless told otherwise)."""
    if schema is None:
        return common
    checks = [c for c in (getattr(common, "__post_init__", None),
                          getattr(schema, "__post_init__", None)) if c is not None]

    def __post_init__(self) -> None:
        for check in checks:
            check(self)

    try:
        return dataclasses.make_dataclass(
            schema.__name__, [], bases=(schema, common),
            namespace={"__post_init__": __post_init__, "__module__": schema.__module__,
                       "__doc__": schema.__doc__})
    except TypeError as err:  # a field without a default after the group's defaulted ones
        raise ConfigError(f"{schema.__name__}: every option needs a default (use "
                          f"omegaconf.MISSING for a required one): {err}") from None
