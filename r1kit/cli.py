"""Shared start-up for r1kit's command-line entry points.

Plugins are loaded before Hydra composes anything, because registered names are config options.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from omegaconf import OmegaConf

from r1kit.config.schema import ConfigError
from r1kit.config.store import store_plugin_options
from r1kit.pluginmanager import get_registry
from r1kit.registry import PluginError

CONF_DIR = str(Path(__file__).resolve().parent / "conf")


MAX_NAME = 120  # file systems reject names over 255 bytes


def _run_name(override_dirname: str) -> str:
    """The run directory's name: the command's overrides, or a prefix plus a hash when long."""
    name = override_dirname.replace("/", "_").replace("+", "") or "default"
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 11]}-{digest}"
    return name


def prepare() -> None:
    """Load plugins and feed their config nodes to Hydra; safe to call more than once."""
    if not OmegaConf.has_resolver("r1kit_run_name"):
        OmegaConf.register_new_resolver("r1kit_run_name", _run_name)
    try:
        store_plugin_options(get_registry())
    except PluginError as err:
        fail(str(err))


def fail(message: str, code: int = 2) -> None:
    print(f"r1kit: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def guarded(fn):
    """Run ``fn`` turning configuration and plugin errors into a one-line message and exit 2."""
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, PluginError) as err:
            fail(str(err))
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper
