"""Every shipped experiment composes and builds its stages with any choice of rewards: each
built-in alone, a third-party reward alone or added, or is refused at compose time naming the
option that has no selected plugin."""

import types

import pytest

from r1kit import hookimpl
from r1kit.plugin import manager as pluginmanager
from r1kit.config.schema import ConfigError
from r1kit.config.validate import validate
from r1kit.models.loading import model_source
from r1kit.stages.parts import build_parts
from tests.conftest import compose_config
from tests.recipes import oracle_sampler
from tests.recipes.conftest import SHRINK, data_overrides


def _probe(completions, examples, options):
    return [float(len(c) > 3) for c in completions]


probe_plugin = types.ModuleType("r1kit_probe")
probe_plugin.r1kit_register_rewards = hookimpl(lambda register: register("probe", _probe))

CHOICES = ["[accuracy]", "[format]", "[language]", "[code]", "[probe]", "[accuracy,probe]",
           "[accuracy,format,language]", "[reward_model]"]


@pytest.fixture
def registry():
    yield pluginmanager.install(extra_plugins=(oracle_sampler, probe_plugin))
    pluginmanager.reset()


@pytest.mark.parametrize("experiment", ["r1_zero", "r1_full"])
@pytest.mark.parametrize("choice", CHOICES)
def test_experiment_starts_with_any_reward_choice(experiment, choice, shaped, registry,
                                                  tmp_path):
    extra = [f"reward.reward_model.path={tmp_path}"] if "reward_model" in choice else []
    cfg = compose_config([f"+experiment={experiment}", *SHRINK,
                          *data_overrides("math", shaped["math"]), f"reward={choice}", *extra],
                         run_dir=str(tmp_path))
    selected = set(choice.strip("[]").split(","))
    for stage in validate(cfg, registry).stages:
        scfg = stage.config
        if stage.kind in ("grpo", "rejection_sampling") and "reward" not in (
                cfg.pipeline.stages[stage.name].get("overrides") or {}):
            assert set(scfg.reward) == selected
        if stage.kind == "grpo" and "reward_model" not in scfg.reward:
            parts = build_parts(scfg, registry, model_source(scfg.model, tmp_path))
            assert [spec.name for spec in parts.collector.rewards] == list(scfg.reward)
            break  # one stage built is enough: the others share the path


def test_a_filter_that_needs_an_unselected_reward_is_refused_naming_it(registry):
    cfg = compose_config(["pipeline=grpo", "reward=[accuracy]", "filter=[well_formatted]"],
                         run_dir="/tmp/x")
    with pytest.raises(ConfigError, match=r"filter\.well_formatted\.reward: filter "
                                          r"'well_formatted' keeps samples by the reward "
                                          r"'format', which is not selected"):
        validate(cfg, registry)


def test_options_of_a_reward_that_is_not_selected_are_refused_naming_it(registry, shaped):
    cfg = compose_config(["+experiment=r1_zero", *SHRINK, *data_overrides("math", shaped["math"]),
                          "reward=[accuracy]", "+reward.format.weight=2"], run_dir="/tmp/x")
    with pytest.raises(ConfigError, match=r"reward\.format: options are set for reward "
                                          r"'format', which is not selected"):
        validate(cfg, registry)
