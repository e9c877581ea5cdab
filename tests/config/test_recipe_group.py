"""``+recipe=<name>``: a published recipe as the whole of what defines it (the loss's algo
values, the advantage estimator, the filters), where ``algo=<name>`` sets the loss alone."""

import pytest

from r1kit.config.validate import validate
from r1kit.plugin.manager import get_registry
from tests.conftest import compose_config

#: recipe -> (algo.name, advantage, filters, aggregation, policy_loss)
RECIPES = {
    "grpo": ("grpo", "grpo", [], "grpo", "ppo_clip"),
    "dr_grpo": ("dr_grpo", "dr_grpo", [], "constant", "ppo_clip"),
    "dapo": ("dapo", "grpo", ["zero_variance"], "token_mean", "ppo_clip"),
    "gspo": ("gspo", "grpo", [], "grpo", "ppo_clip"),
    "cispo": ("cispo", "grpo", [], "token_mean", "cispo"),
    "sapo": ("sapo", "grpo", [], "grpo", "sapo"),
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_a_recipe_sets_its_loss_advantage_and_filters(recipe):
    cfg = compose_config([f"+recipe={recipe}", "pipeline=grpo", "data=arithmetic"],
                         run_dir="/tmp/r1kit-recipes")
    plan = validate(cfg, get_registry())
    algo = plan.stage("rl").config.algo
    expected = RECIPES[recipe]
    assert (algo.name, cfg.advantage.name, list(cfg.filter), algo.aggregation,
            algo.policy_loss) == expected


def test_dr_grpo_as_a_recipe_drops_the_std_which_algo_alone_keeps():
    alone = compose_config(["algo=dr_grpo", "pipeline=grpo"])
    assert alone.advantage.name == "grpo"  # algo=dr_grpo: the constant normaliser only
    assert compose_config(["+recipe=dr_grpo", "pipeline=grpo"]).advantage.name == "dr_grpo"


def test_the_command_line_still_wins_over_a_recipe():
    cfg = compose_config(["+recipe=dapo", "pipeline=grpo", "data=arithmetic",
                          "filter=[zero_variance,overlong]", "+filter.overlong.max_length=48",
                          "+filter.overlong.buffer=8", "algo.epsilon_high=0.3"],
                         run_dir="/tmp/r1kit-recipes")
    plan = validate(cfg, get_registry())
    assert list(cfg.filter) == ["zero_variance", "overlong"]
    assert cfg.filter.overlong.buffer == 8
    assert plan.stage("rl").config.algo.epsilon_high == 0.3


def test_an_unknown_recipe_is_refused_naming_the_group():
    with pytest.raises(Exception, match="recipe"):
        compose_config(["+recipe=ppo_but_better"])
