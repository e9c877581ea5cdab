"""The plugin manager: entry-point discovery, autoload and blocking, registration errors, and a
plugin's names becoming config options with no YAML file."""

import re
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass

import pytest

import r1kit
from r1kit import hookimpl
from r1kit.plugin import manager as pluginmanager
from r1kit.config.schema import ConfigError
from r1kit.plugin.manager import (AUTOLOAD_ENV, BLOCK_ENV, BUILTIN_PLUGINS, build_registry,
                                 create_plugin_manager)
from r1kit.plugin.registry import DuplicatePluginError, PluginError, UnknownPluginError

R1KIT = f"r1kit {r1kit.__version__}"
DEMO_DIST, DEMO_VERSION, DEMO_EP, DEMO_MODULE = "r1kit-demo-plugin", "1.2.3", "demo", "r1kit_demo_plugin"
DEMO = f"{DEMO_DIST} {DEMO_VERSION}"

DEMO_SOURCE = '''
from dataclasses import dataclass

from r1kit import hookimpl


@dataclass
class ShoutOptions:
    factor: float = 1.0


def shout_reward(completions, examples, options):
    return [options.factor * float(c.isupper()) for c in completions]


@hookimpl
def r1kit_register_rewards(register):
    register("shout", shout_reward, schema=ShoutOptions)
'''


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch):
    """No plugin settings from the caller's environment, and no process-wide manager leaks."""
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(BLOCK_ENV, raising=False)
    pluginmanager.reset()
    yield
    pluginmanager.reset()


@pytest.fixture
def make_dist(tmp_path, monkeypatch):
    """Install a plugin distribution the cheap way: a module and a ``*.dist-info`` directory
    (METADATA + entry_points.txt) in a directory on ``sys.path``, where importlib.metadata
    finds it exactly as it finds a pip-installed package."""

    def make(source=DEMO_SOURCE, *, dist=DEMO_DIST, version=DEMO_VERSION, ep=DEMO_EP,
             module=DEMO_MODULE):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[r1kit]\n{ep} = {module}\n")
        monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates importlib's caches
        made.append(module)
        return module

    made = []
    yield make
    for module in made:  # the next test writes its own module of the same name
        sys.modules.pop(module, None)


def _plugin(name, **hooks):
    """A plugin module named ``name`` implementing ``hooks`` (hook name -> function)."""
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


# ---------------------------------------------------------------------------------------------
# Discovery through the r1kit entry-point group
# ---------------------------------------------------------------------------------------------


def test_entry_point_plugin_is_loaded_and_attributed_to_its_distribution(make_dist):
    make_dist()
    pm = create_plugin_manager()
    assert pm.get_plugin(DEMO_EP) is sys.modules[DEMO_MODULE]
    registry = build_registry(pm)
    shout = registry.get("reward", "shout")
    assert (shout.provider, shout.plugin) == (DEMO, DEMO_EP)
    assert shout.schema.__name__ == "ShoutOptions"
    assert shout.obj(["HI", "hi"], [{}, {}], shout.schema(factor=2.0)) == [2.0, 0.0]
    accuracy = registry.get("reward", "accuracy")
    assert (accuracy.provider, accuracy.plugin) == (R1KIT, "r1kit.rewards.accuracy")


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_autoload_switched_off_by_env(make_dist, monkeypatch, value):
    make_dist()
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    pm = create_plugin_manager()
    assert pm.get_plugin(DEMO_EP) is None
    names = build_registry(pm).names("reward")
    assert "shout" not in names and "accuracy" in names  # built-ins are not autoloaded


def test_autoload_argument_overrides_env(make_dist, monkeypatch):
    make_dist()
    assert create_plugin_manager(autoload=False).get_plugin(DEMO_EP) is None
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert create_plugin_manager(autoload=True).get_plugin(DEMO_EP) is not None


def test_block_entry_point_plugin_by_env(make_dist, monkeypatch):
    make_dist()
    monkeypatch.setenv(BLOCK_ENV, f" r1kit.rewards.language , {DEMO_EP} ")
    pm = create_plugin_manager()
    assert pm.get_plugin(DEMO_EP) is None and pm.is_blocked(DEMO_EP)
    names = build_registry(pm).names("reward")
    assert "shout" not in names and "language" not in names and "accuracy" in names


def test_block_by_argument_including_a_builtin(make_dist):
    make_dist()
    pm = create_plugin_manager(blocked=[DEMO_EP, "r1kit.rewards.format"])
    assert pm.get_plugin(DEMO_EP) is None and pm.get_plugin("r1kit.rewards.format") is None
    assert sys.modules.get(DEMO_MODULE) is None  # a blocked plugin is not even imported
    registry = build_registry(pm)
    assert "format" not in registry.names("reward")
    assert {"accuracy", "language"} <= set(registry.names("reward"))


def test_block_an_extra_plugin():
    extra = _plugin("r1kit_test_extra",
                    r1kit_register_rewards=lambda register: register("extra", lambda c, e: []))
    assert "extra" in build_registry(create_plugin_manager(
        autoload=False, extra_plugins=(extra,))).names("reward")
    assert "extra" not in build_registry(create_plugin_manager(
        autoload=False, blocked=["r1kit_test_extra"], extra_plugins=(extra,))).names("reward")


def test_install_makes_a_manager_the_process_wide_one():
    plugin = _plugin("r1kit_test_installed",
                     r1kit_register_rewards=lambda register: register("embedded", lambda c, e: []))
    registry = pluginmanager.install(autoload=False, extra_plugins=(plugin,))
    assert pluginmanager.get_registry() is registry
    assert pluginmanager.get_plugin_manager().get_plugin("r1kit_test_installed") is plugin
    assert "embedded" in registry.names("reward")
    pluginmanager.reset()
    assert "embedded" not in pluginmanager.get_registry().names("reward")


def test_builtins_go_through_the_plugin_path():
    pm = create_plugin_manager(autoload=False)
    for module in BUILTIN_PLUGINS:
        assert pm.get_plugin(module) is sys.modules[module]
    registry = build_registry(pm)
    assert {e.provider for e in registry.entries()} == {R1KIT}
    assert {e.plugin for e in registry.entries()} <= set(BUILTIN_PLUGINS)


# ---------------------------------------------------------------------------------------------
# Failing loudly
# ---------------------------------------------------------------------------------------------


def test_duplicate_across_packages_names_both_providers(make_dist):
    make_dist(DEMO_SOURCE.replace('register("shout"', 'register("format"'))
    with pytest.raises(DuplicatePluginError) as err:
        build_registry(create_plugin_manager())
    message = str(err.value)
    assert "reward 'format'" in message
    assert R1KIT in message and "r1kit.rewards.format" in message
    assert DEMO in message and f"plugin {DEMO_EP}" in message


def test_duplicate_within_one_plugin():
    def register_twice(register):
        register("twice", lambda c, e: [])
        register("twice", lambda c, e: [])

    plugin = _plugin("r1kit_test_twice", r1kit_register_filters=register_twice)
    with pytest.raises(DuplicatePluginError, match="filter 'twice' is registered twice"):
        build_registry(create_plugin_manager(autoload=False, extra_plugins=(plugin,)))


def test_same_name_in_different_kinds_is_allowed():
    plugin = _plugin("r1kit_test_kinds",
                     r1kit_register_filters=lambda register: register("accuracy", lambda r: r))
    registry = build_registry(create_plugin_manager(autoload=False, extra_plugins=(plugin,)))
    assert registry.get("filter", "accuracy").plugin == "r1kit_test_kinds"
    assert registry.get("reward", "accuracy").provider == R1KIT


def test_duplicate_makes_the_plugins_command_fail_cleanly(make_dist, capsys):
    from r1kit.cli.plugins import main

    make_dist(DEMO_SOURCE.replace('register("shout"', 'register("accuracy"'))
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1kit: error: reward 'accuracy' is registered twice")
    assert R1KIT in err and DEMO in err


def test_unknown_name_lists_valid_names_and_providers(make_dist):
    make_dist()
    registry = build_registry(create_plugin_manager())
    with pytest.raises(UnknownPluginError) as err:
        registry.get("reward", "shuot")
    message = str(err.value)
    assert message.startswith("unknown reward 'shuot' (did you mean 'shout'?); registered rewards: ")
    assert f"shout ({DEMO})" in message and f"accuracy ({R1KIT})" in message
    assert isinstance(err.value, KeyError)  # callers may treat it as a failed lookup
    with pytest.raises(UnknownPluginError, match=r"unknown sampler 'nope'.*hf \(r1kit "):
        registry.get("sampler", "nope")


class _NotADataclass:
    x: int = 1


@pytest.mark.parametrize("name, obj, schema, match", [
    ("my-reward", lambda c, e: [], None, r"reward name 'my-reward' from r1kit_test_bad must be "
                                         r"a Python identifier"),
    ("", lambda c, e: [], None, "must be a Python identifier"),
    (3, lambda c, e: [], None, "must be a Python identifier"),
    ("fine", "not callable", None, r"reward 'fine' from r1kit_test_bad: 'not callable' is not "
                                   r"callable"),
    ("fine", lambda c, e: [], _NotADataclass, r"reward 'fine' from r1kit_test_bad: schema must "
                                              r"be a dataclass"),
])
def test_invalid_registration(name, obj, schema, match):
    plugin = _plugin("r1kit_test_bad",
                     r1kit_register_rewards=lambda register: register(name, obj, schema=schema))
    with pytest.raises(PluginError, match=match):
        build_registry(create_plugin_manager(autoload=False, extra_plugins=(plugin,)))


# ---------------------------------------------------------------------------------------------
# A registered plugin is a config option: no YAML file, options typed by its schema
# ---------------------------------------------------------------------------------------------


@dataclass
class MyRewardOptions:
    threshold: float = 0.5
    mode: str = "strict"


def my_reward(completions, examples, options):
    return [1.0] * len(completions)


@pytest.fixture
def registry_with_my_reward():
    from hydra.core.config_store import ConfigStore

    from r1kit.config.store import store_plugin_options

    plugin = _plugin("r1kit_test_my_reward", r1kit_register_rewards=lambda register: register(
        "my_reward", my_reward, schema=MyRewardOptions))
    # ConfigStore is process-wide: store the built-ins too (the root config selects them), and
    # take our option out again afterwards.
    registry = build_registry(create_plugin_manager(autoload=False, extra_plugins=(plugin,)))
    store_plugin_options(registry)
    yield registry
    ConfigStore.instance().repo["reward"].pop("my_reward.yaml", None)


def _compose(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from r1kit.cli.startup import CONF_DIR

    GlobalHydra.instance().clear()  # in case a test left Hydra initialized
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        # outside the CLI there is no Hydra runtime to name the run directory: give one
        return compose("config", overrides=[*overrides, "run_dir=/tmp/r1kit-compose"])


def test_plugin_is_selectable_from_config(registry_with_my_reward):
    from r1kit.config.validate import validate

    cfg = _compose(["pipeline=grpo", "reward=[my_reward,format]", "reward.my_reward.weight=2",
                    "reward.my_reward.threshold=0.9"])
    assert set(cfg.reward) == {"my_reward", "format"}
    node = cfg.reward.my_reward
    assert (node.weight, node.threshold, node.mode) == (2, 0.9, "strict")
    assert node.on_error == "raise"  # the fields every reward has come along
    validate(cfg, registry_with_my_reward)


@pytest.mark.parametrize("override, key", [
    ("reward.my_reward.threshold=high", "reward.my_reward.threshold"),  # wrong type
    ("+reward.my_reward.thresold=0.9", "reward.my_reward.thresold"),  # unknown key
    ("reward.my_reward.weight=heavy", "reward.my_reward.weight"),  # wrong type, common field
])
def test_plugin_options_are_validated(registry_with_my_reward, override, key):
    from r1kit.config.validate import validate

    cfg = _compose(["reward=[my_reward]", override])
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}\b"):
        validate(cfg, registry_with_my_reward)


def test_unknown_option_without_plus_fails_at_composition(registry_with_my_reward):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"reward\.my_reward\.thresold"):
        _compose(["reward=[my_reward]", "reward.my_reward.thresold=0.9"])


# ---------------------------------------------------------------------------------------------
# python -m r1kit plugins
# ---------------------------------------------------------------------------------------------


def test_plugins_command_lists_every_builtin():
    builtins = build_registry(create_plugin_manager(autoload=False)).entries()
    proc = subprocess.run([sys.executable, "-m", "r1kit", "plugins"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["KIND", "NAME", "PROVIDED BY", "PLUGIN"]
    rows = {tuple(re.split(r"\s{2,}", line.strip())) for line in lines[1:]}
    for entry in builtins:
        assert (entry.kind, entry.name, R1KIT, entry.plugin) in rows, proc.stdout
    # every kind has built-ins, so the check above covers all of them
    assert {e.kind for e in builtins} == set(pluginmanager.KINDS)
