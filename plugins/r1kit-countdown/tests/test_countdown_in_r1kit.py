"""Through r1kit, in process: imports from ``r1kit.api`` only, the entry point, the registered
names, and composing and validating a config with the package's options (with r1kit's own
composition helpers)."""

import ast
from importlib import metadata
from pathlib import Path

import pytest

from r1kit.api import ConfigError
from r1kit_countdown import plugin
from r1kit_countdown.dataset import CountdownOptions, countdown_dataset
from r1kit_countdown.reward import countdown_reward

GROUPS = ("reward", "data")  # the config groups the package adds an option to


@pytest.fixture(scope="module")
def registry():
    from hydra.core.config_store import ConfigStore

    from r1kit.plugin.manager import build_registry, create_plugin_manager

    # Hydra's ConfigStore is process-wide: _compose stores this registry's countdown options
    # in it (over those of the installed package, if something stored them already).
    repo = ConfigStore.instance().repo
    before = {group: repo.get(group, {}).get("countdown.yaml") for group in GROUPS}
    # autoload off: the installed entry point would register the same plugin a second time
    yield build_registry(create_plugin_manager(autoload=False,
                                               extra_plugins=(("countdown", plugin),)))
    for group, node in before.items():
        if node is None:
            repo[group].pop("countdown.yaml", None)
        else:
            repo[group]["countdown.yaml"] = node


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            yield node.module or ""
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_the_package_imports_nothing_of_r1kit_but_the_api():
    package = Path(plugin.__file__).parent
    from_r1kit = {(path.name, module) for path in package.glob("*.py") for module in _imports(path)
                  if module.split(".")[0] == "r1kit"}
    assert from_r1kit == {(name, "r1kit.api") for name in ("dataset.py", "plugin.py", "reward.py")}


def test_entry_point_names_the_plugin_module():
    (entry_point,) = [ep for ep in metadata.entry_points(group="r1kit") if ep.name == "countdown"]
    assert entry_point.value == "r1kit_countdown.plugin" and entry_point.load() is plugin
    assert entry_point.dist.name == "r1kit-countdown"


def test_registers_a_reward_and_a_dataset(registry):
    reward, dataset = registry.get("reward", "countdown"), registry.get("dataset", "countdown")
    assert (reward.obj, dataset.obj) == (countdown_reward, countdown_dataset)
    assert dataset.schema is CountdownOptions
    assert (reward.plugin, dataset.plugin) == ("countdown", "countdown")


def _compose(registry, overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from r1kit.cli.startup import CONF_DIR
    from r1kit.config.store import store_plugin_options

    store_plugin_options(registry)
    GlobalHydra.instance().clear()  # in case a test left Hydra initialized
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        # outside the CLI there is no Hydra runtime to name the run directory: give one
        return compose("config", overrides=[*overrides, "run_dir=/tmp/r1kit-compose"])


def test_composes_and_validates(registry):
    from r1kit.config.validate import validate

    # one GRPO stage: the embedded pipeline's rejection sampling keeps samples by `accuracy`
    cfg = _compose(registry, ["pipeline=grpo", "reward=[countdown,format]", "data=countdown",
                              "reward.countdown.format_score=0.1", "data.num_numbers=4"])
    assert cfg.data.name == "countdown" and cfg.data.num_numbers == 4
    assert set(cfg.reward) == {"countdown", "format"}
    assert cfg.reward.countdown.format_score == 0.1
    validate(cfg, registry)

    bad = _compose(registry, ["reward=[countdown]", "data=countdown", "data.num_numbers=9"])
    with pytest.raises(ConfigError, match=r"data\.num_numbers"):
        validate(bad, registry)
