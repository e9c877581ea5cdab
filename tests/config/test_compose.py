"""Every experiment composes; every option of every group composes and validates."""

from pathlib import Path

import pytest

from r1kit.cli.startup import CONF_DIR
from r1kit.config.validate import validate
from r1kit.plugin.manager import get_registry
from tests.conftest import compose_config

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
YAML_GROUPS = ("model", "algo", "trainer", "logger", "pipeline")


def _options(group):
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment):
    cfg = compose_config([f"+experiment={experiment}"], run_dir="/tmp/r1kit-compose")
    validate(cfg, get_registry())
    assert cfg.pipeline.stages, experiment


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_shrinks_to_tiny(experiment):
    cfg = compose_config([f"+experiment={experiment}", "model=tiny", "data=arithmetic"],
                         run_dir="/tmp/r1kit-compose")
    validate(cfg, get_registry())
    assert cfg.model.path is None and cfg.data.name == "arithmetic"


@pytest.mark.parametrize("group,option", [(g, o) for g in YAML_GROUPS for o in _options(g)])
def test_every_yaml_option_validates(group, option):
    cfg = compose_config([f"{group}={option}"], run_dir="/tmp/r1kit-compose")
    validate(cfg, get_registry())


@pytest.mark.parametrize("kind,group", [("sampler", "sampler"), ("advantage", "advantage")])
def test_every_registered_single_select_plugin_validates(kind, group):
    registry = get_registry()
    for name in registry.names(kind):
        cfg = compose_config([f"{group}={name}"], run_dir="/tmp/r1kit-compose")
        validate(cfg, registry)
        assert cfg[group].name == name


def test_every_registered_reward_and_filter_is_selectable():
    registry = get_registry()
    for name in registry.names("reward"):
        cfg = compose_config([f"reward=[{name}]"], run_dir="/tmp/r1kit-compose")
        assert list(cfg.reward) == [name]
    # filters with required options need them set; the rest validate as they are
    for name in registry.names("filter"):
        cfg = compose_config([f"filter=[{name}]"], run_dir="/tmp/r1kit-compose")
        assert list(cfg.filter) == [name]


def test_every_dataset_option_composes():
    for option in ("arithmetic", "math", "gsm8k", "jsonl", "hub"):
        cfg = compose_config([f"data={option}"], run_dir="/tmp/r1kit-compose")
        assert cfg.data.name in get_registry().names("dataset")


def test_reward_weight_and_options_from_the_command_line():
    cfg = compose_config(["reward=[accuracy,format]", "reward.accuracy.weight=2.5",
                          "reward.accuracy.sample_timeout=2"], run_dir="/tmp/x")
    validate(cfg, get_registry())
    assert cfg.reward.accuracy.weight == 2.5
    assert cfg.reward.accuracy.sample_timeout == 2


def test_sweep_knobs_exist_with_the_documented_names():
    cfg = compose_config(["algo.group_size=4", "algo.epsilon=0.1", "algo.epsilon_high=0.3",
                          "algo.beta=0", "algo.iterations=2", "data.batch_size=3",
                          "sampler.max_new_tokens=7", "sampler.temperature=0.5",
                          "trainer.max_steps=9"], run_dir="/tmp/x")
    validate(cfg, get_registry())
    assert (cfg.algo.group_size, cfg.algo.iterations, cfg.data.batch_size) == (4, 2, 3)
