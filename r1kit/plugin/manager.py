"""Builds the pluggy plugin manager and the registry of everything plugins register.

Built-in plugins are registered from ``BUILTIN_PLUGINS`` through exactly the path a third-party
package takes (their hooks are called the same way); third-party packages are found through the
``r1kit`` entry-point group.
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib import metadata

import pluggy

import r1kit
from r1kit.plugin import hookspecs
from r1kit.plugin.registry import KINDS, Registry

#: Set to 1/true to skip loading third-party plugins from the ``r1kit`` entry-point group.
AUTOLOAD_ENV = "R1KIT_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated plugin names (entry-point names or built-in module paths) to block.
BLOCK_ENV = "R1KIT_BLOCK_PLUGINS"

BUILTIN_PLUGINS = (
    "r1kit.rewards.accuracy",
    "r1kit.rewards.format",
    "r1kit.rewards.language",
    "r1kit.rewards.code.plugin",
    "r1kit.rewards.reward_model",
    "r1kit.rewards.judge.reward",
    "r1kit.rewards.judge.backends.hf",
    "r1kit.rewards.judge.backends.vllm",
    "r1kit.rewards.judge.backends.openai_http",
    "r1kit.samplers.hf",
    "r1kit.samplers.vllm",
    "r1kit.algo.advantages",
    "r1kit.filters.rl",
    "r1kit.filters.rejection",
    "r1kit.data.builtin",
)

_REGISTER_HOOKS = {kind: f"r1kit_register_{kind}s" for kind in KINDS}  # e.g. r1kit_register_code_runners


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _blocked_from_env() -> list[str]:
    return [n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()]


def create_plugin_manager(*, autoload: bool | None = None, blocked: list[str] | tuple = (),
                          extra_plugins: tuple = ()) -> pluggy.PluginManager:
    """A plugin manager with the built-ins, entry-point plugins and ``extra_plugins`` loaded.

    ``autoload=None`` reads ``R1KIT_DISABLE_PLUGIN_AUTOLOAD``; ``blocked`` adds to the names in
    ``R1KIT_BLOCK_PLUGINS``. ``extra_plugins`` are module objects or ``(name, module)`` pairs
    (used by tests and by embedding applications).
    """
    pm = pluggy.PluginManager("r1kit")
    pm.add_hookspecs(hookspecs)
    for name in [*_blocked_from_env(), *blocked]:
        pm.set_blocked(name)
    for module_name in BUILTIN_PLUGINS:
        if not pm.is_blocked(module_name):
            pm.register(importlib.import_module(module_name), name=module_name)
    if autoload is None:
        autoload = not _env_flag(AUTOLOAD_ENV)
    if autoload:
        pm.load_setuptools_entrypoints("r1kit")
    for plugin in extra_plugins:
        name, module = plugin if isinstance(plugin, tuple) else (plugin.__name__, plugin)
        if not pm.is_blocked(name):
            pm.register(module, name=name)
    _check_hook_names(pm)
    return pm


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """A hook implementation whose name matches no spec (``r1kit_register_reward``) would
    never be called; fail at load, naming the plugin and the nearest spec."""
    from r1kit.plugin.registry import PluginError, nearest

    specs = [name for name in dir(hookspecs) if name.startswith("r1kit_")]
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        plugin = pm.get_name(err.plugin) or repr(err.plugin)
        bad = [name for name in dir(err.plugin)
               if name.startswith("r1kit_") and name not in specs
               and getattr(getattr(err.plugin, name), "r1kit_impl", None) is not None]
        hint = ""
        for name in bad:
            close = nearest(name, specs)
            hint += f"; '{name}' is no r1kit hook"
            hint += f" (did you mean '{close}'?)" if close else ""
        raise PluginError(f"plugin {plugin}: {err}{hint}") from None


def _provider(pm: pluggy.PluginManager, plugin: object) -> str:
    for loaded, dist in pm.list_plugin_distinfo():
        if loaded is plugin:
            return f"{dist.project_name} {dist.version}"
    name = getattr(plugin, "__name__", "")
    if name == "r1kit" or name.startswith("r1kit."):
        return f"r1kit {r1kit.__version__}"
    return name or repr(plugin)


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook, one plugin at a time so each name knows its provider."""
    registry = Registry()
    for kind, hook_name in _REGISTER_HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            provider = _provider(pm, impl.plugin)

            def register(name, obj, schema=None, *, _kind=kind, _provider=provider,
                         _plugin=impl.plugin_name):
                registry.add(_kind, name, obj, schema, provider=_provider, plugin=_plugin)

            impl.function(register=register)
    return registry


_installed: list[tuple[pluggy.PluginManager, Registry]] = []


@functools.lru_cache(maxsize=1)
def _default() -> tuple[pluggy.PluginManager, Registry]:
    if _installed:
        return _installed[-1]
    pm = create_plugin_manager()
    return pm, build_registry(pm)


def install(**kwargs) -> Registry:
    """Make a manager built with ``create_plugin_manager(**kwargs)`` the process-wide one
    (applications embedding r1kit, and tests, use it to add plugins without packaging them)."""
    pm = create_plugin_manager(**kwargs)
    _installed[:] = [(pm, build_registry(pm))]
    _default.cache_clear()
    return _installed[0][1]


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first use)."""
    return _default()[0]


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return _default()[1]


def reset() -> None:
    """Forget the process-wide manager (tests that change the environment call this)."""
    _installed.clear()
    _default.cache_clear()


def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
