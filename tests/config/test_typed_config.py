"""``validate`` returns the typed config the run uses: fixed groups as their schemas, every plugin's
node as one instance of its schema joined with its group's common fields, every stage typed."""

from dataclasses import dataclass, fields

import pytest

from r1kit.api import plugin_options
from r1kit.config.options import options_class
from r1kit.config.schema import (AlgoConfig, ConfigError, DataCommon, RewardCommon, RootConfig,
                                 SamplerCommon, StageInfo)
from r1kit.config.validate import validate
from r1kit.data.arithmetic import ArithmeticOptions
from r1kit.filters.rejection import CorrectOptions
from r1kit.plugin.manager import get_registry
from r1kit.rewards.accuracy import AccuracyOptions
from r1kit.samplers.hf import HFSamplerOptions
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def plan():
    cfg = compose_config(["+experiment=r1_full", "model=tiny", "data=arithmetic", "data.digits=2",
                          "reward.accuracy.sample_timeout=7", "algo.beta=0.01"],
                         run_dir="/tmp/r1kit-typed")
    return validate(cfg, get_registry())


def test_root_is_typed_and_plugins_are_instances_of_their_schemas(plan):
    root = plan.config
    assert isinstance(root, RootConfig) and isinstance(root.algo, AlgoConfig)
    assert root.algo.beta == 0.01
    assert isinstance(root.data, ArithmeticOptions) and isinstance(root.data, DataCommon)
    assert root.data.digits == 2 and root.data.name == "arithmetic"
    accuracy = root.reward["accuracy"]
    assert isinstance(accuracy, AccuracyOptions) and isinstance(accuracy, RewardCommon)
    assert accuracy.sample_timeout == 7 and accuracy.weight == 1.0
    assert isinstance(root.sampler, HFSamplerOptions) and isinstance(root.sampler, SamplerCommon)
    assert root.stage is None


def test_every_stage_is_typed_with_its_overrides(plan):
    kinds = [stage.kind for stage in plan.stages]
    assert kinds[0] == "sft" and "rejection_sampling" in kinds and kinds.count("grpo") >= 2
    for stage in plan.stages:
        assert isinstance(stage.config, RootConfig)
        assert stage.config.stage == StageInfo(name=stage.name, kind=stage.kind)
    rs = next(s for s in plan.stages if s.kind == "rejection_sampling").config
    assert isinstance(rs.filter["correct"], CorrectOptions)  # r1_full's RS filters, typed
    assert plan.stage(plan.stages[-1].name) is plan.stages[-1]
    with pytest.raises(KeyError, match="no stage 'nope'"):
        plan.stage("nope")


def test_defaults_are_written_once_in_the_schema():
    defaults = plugin_options("data", "arithmetic")
    for f in fields(ArithmeticOptions):
        assert getattr(defaults, f.name) == f.default, f.name
    assert defaults.batch_size == DataCommon.batch_size  # the group's common default


def test_both_checks_run_and_name_the_key():
    with pytest.raises(ConfigError, match=r"data.digits"):
        plugin_options("data", "arithmetic", digits=12)  # the plugin's own check
    with pytest.raises(ConfigError, match=r"data.batch_size"):
        plugin_options("data", "arithmetic", batch_size=0)  # the group's common check
    with pytest.raises(ConfigError, match=r"reward.accuracy.sample_timeuot: unknown key"):
        plugin_options("reward", "accuracy", sample_timeuot=3)


def test_a_schema_may_give_a_common_field_its_own_default():
    @dataclass
    class ShortOptions:
        max_new_tokens: int = 3  # SamplerCommon's default is 256
        beams: int = 1

    joined = options_class(SamplerCommon, ShortOptions)
    instance = joined()
    assert instance.max_new_tokens == 3 and instance.temperature == 1.0 and instance.beams == 1
    with pytest.raises(ConfigError, match="sampler.temperature"):
        joined(temperature=0)  # SamplerCommon's check still runs
