"""Every algo recipe (r1kit/conf/algo/*.yaml) composes, validates, names its command in its
header, and runs a tiny GRPO step with finite metrics."""

import csv
import math
from pathlib import Path

import pytest

from r1kit.cli.startup import CONF_DIR
from r1kit.config.schema import ConfigError
from r1kit.config.validate import validate
from r1kit.plugin import manager as pluginmanager
from tests.conftest import SHRINK, compose_config
from tests.training import learnable_reward

RECIPES = sorted(p.stem for p in (Path(CONF_DIR) / "algo").glob("*.yaml"))
#: one step of 2 prompts × 2 completions of 4 tokens: seconds on a CPU
TINY = ["pipeline=grpo", "reward=[sevens]", "trainer.max_steps=1", "stage_max_steps=1",
        "data.batch_size=2", "algo.group_size=2", "sampler.max_new_tokens=4",
        "data.val_size=2", "eval.every=0", "model.tiny.hidden_size=32",
        "algo.skip_zero_advantage=false",  # the surrogate runs even if every advantage is 0
        "model.tiny.num_layers=1", "model.tiny.num_heads=1", "model.tiny.intermediate_size=64"]


@pytest.fixture
def registry():
    yield pluginmanager.install(extra_plugins=(learnable_reward,))
    pluginmanager.reset()


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_header_names_its_command(recipe):
    header = (Path(CONF_DIR) / "algo" / f"{recipe}.yaml").read_text().splitlines()[0]
    assert header.startswith(f"# python -m r1kit algo={recipe} "), header


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_a_tiny_grpo_step(recipe, tmp_path, registry):
    from r1kit.pipeline.runner import run_pipeline

    # entropy bonus on too: its gradient path runs in every recipe's step
    cfg = compose_config([*SHRINK, *TINY, f"algo={recipe}", "algo.entropy_coef=0.01"],
                         run_dir=str(tmp_path))
    assert cfg.algo.name == recipe
    run_pipeline(validate(cfg, registry))
    with (tmp_path / "rl" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/loss")]
    assert rows, "no training step logged"
    for key in ("train/loss", "train/clip_low_frac", "train/clip_high_frac", "train/ratio_mean",
                "train/cov_frac", "train/off_policy_masked_frac", "train/entropy"):
        assert math.isfinite(float(rows[0][key])), (key, rows[0][key])


@pytest.mark.parametrize("override, key", [
    ("algo.policy_loss=ppo", "algo.policy_loss"),
    ("algo.kl_estimator=k4", "algo.kl_estimator"),
    ("algo.dual_clip_c=1", "algo.dual_clip_c"),
    ("algo.sapo_tau_neg=0", "algo.sapo_tau_neg"),
    ("algo.cispo_weight_max=0.5", "algo.cispo_weight_max"),
    ("algo.clip_cov_ratio=0", "algo.clip_cov_ratio"),
    ("algo.clip_cov_lb=6", "algo.clip_cov_lb"),
    ("algo.kl_cov_ratio=2", "algo.kl_cov_ratio"),
    ("algo.kl_cov_coef=-1", "algo.kl_cov_coef"),
    ("algo.off_policy_mask_delta=-0.1", "algo.off_policy_mask_delta"),
])
def test_bad_options_fail_at_compose_time_naming_the_field(override, key, registry):
    cfg = compose_config([override], run_dir="/tmp/r1kit-compose")
    with pytest.raises(ConfigError, match=key):
        validate(cfg, registry)


def test_unknown_policy_loss_lists_the_valid_values(registry):
    cfg = compose_config(["algo.policy_loss=ppo"], run_dir="/tmp/r1kit-compose")
    with pytest.raises(ConfigError, match="valid: ppo_clip, dual_clip, cispo, sapo, gmpo"):
        validate(cfg, registry)


def test_gmpo_refuses_a_sequence_ratio(registry):
    cfg = compose_config(["algo=gmpo", "algo.ratio_level=sequence"],
                         run_dir="/tmp/r1kit-compose")
    with pytest.raises(ConfigError, match="algo.ratio_level: gmpo"):
        validate(cfg, registry)


@pytest.mark.parametrize("advantage", [["advantage=gdpo"],
                                       ["advantage=pass_at_k", "advantage.k=2",
                                        "advantage.threshold=0.5",
                                        "advantage.reward=sevens"]])
def test_multi_reward_advantages_run_a_tiny_grpo_step(advantage, tmp_path, registry):
    from r1kit.pipeline.runner import run_pipeline

    cfg = compose_config([*SHRINK, *TINY, "reward=[sevens,format]", *advantage],
                         run_dir=str(tmp_path))
    run_pipeline(validate(cfg, registry))
    with (tmp_path / "rl" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/loss")]
    assert rows and math.isfinite(float(rows[0]["train/loss"]))
