"""Stage overrides: fixed groups merge, plugin groups named by a stage replace the selection."""

import pytest

from r1kit.config.schema import ConfigError
from r1kit.config.validate import stage_config, validate
from r1kit.plugin.manager import get_registry
from tests.conftest import compose_config


def test_r1_full_stages_get_their_own_rewards_filters_and_data():
    registry = get_registry()
    cfg = compose_config(["+experiment=r1_full", "model=tiny", "data=arithmetic"],
                         run_dir="/tmp/r1kit-stages")
    validate(cfg, registry)
    assert list(cfg.pipeline.stages) == ["cold_start", "reasoning_rl", "rejection_sampling",
                                         "sft", "rl_all", "eval"]
    rs = stage_config(cfg, "rejection_sampling", registry)
    assert list(rs.filter) == ["correct", "well_formatted", "language_consistent", "length",
                               "dedupe", "max_per_prompt"]
    assert rs.filter.max_per_prompt.n == 2
    sft = stage_config(cfg, "sft", registry)
    # switching dataset plugin starts from its defaults: no arithmetic option leaks in
    assert sft.data.name == "stage_output" and "digits" not in sft.data
    assert sft.data.run_dir == "/tmp/r1kit-stages"
    rl_all = stage_config(cfg, "rl_all", registry)
    assert list(rl_all.reward) == ["accuracy", "format", "language", "reward_model"]
    assert list(rl_all.reward.reward_model.applies_to) == ["general"]
    assert rl_all.reward.accuracy.weight == 1.0  # defaults filled in from the registry
    # a fixed group merges key by key
    cold = stage_config(cfg, "cold_start", registry)
    assert cold.optim.lr == 1e-5 and cold.optim.warmup_steps == cfg.optim.warmup_steps


def test_a_bad_stage_override_is_named():
    with pytest.raises(ConfigError, match="pipeline.stages.rl.overrides.*algo.epsilon"):
        validate(compose_config(["pipeline=grpo",
                                 "+pipeline.stages.rl.overrides.algo.epsilon=2"],
                                run_dir="/tmp/x"), get_registry())
    with pytest.raises(ConfigError, match="kind"):
        validate(compose_config(["pipeline=grpo", "pipeline.stages.rl.kind=ppo"],
                                run_dir="/tmp/x"), get_registry())
