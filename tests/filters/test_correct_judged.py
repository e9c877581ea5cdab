"""The ``correct`` filter keeps judged-correct samples where no rule applies (``also=[judge]``)."""

import math

import pytest

from r1kit.api import plugin_options
from r1kit.config.schema import ConfigError
from r1kit.config.validate import validate
from r1kit.filters.rejection import correct
from r1kit.plugin.manager import get_registry
from tests.conftest import compose_config

NAN = math.nan


def test_correct_falls_back_on_the_judge_where_accuracy_does_not_apply(make_rollout):
    rollout = make_rollout(
        ["verified", "wrong", "judged right", "judged wrong", "not judged", "neither"],
        [0, 0, 1, 1, 2, 3],
        reward_parts={"accuracy": [1.0, 0.0, NAN, NAN, NAN, NAN],
                      "judge": [NAN, NAN, 1.0, 0.0, NAN, NAN]})
    kept = correct(rollout, plugin_options("filter", "correct", also=["judge"]))
    assert kept.completions == ["verified", "judged right"]
    # without the fallback only verified samples survive, as before
    assert correct(rollout, plugin_options("filter", "correct")).completions == ["verified"]
    # a judge score in [0, 1] against a threshold
    lenient = plugin_options("filter", "correct", also=["judge"], threshold=0.0)
    assert correct(rollout, lenient).completions == ["verified", "wrong", "judged right",
                                                     "judged wrong"]


def test_correct_also_names_a_missing_reward_at_compose_time():
    cfg = compose_config(["pipeline=grpo", "reward=[accuracy]", "filter=[correct]",
                          "filter.correct.also=[judge]"], run_dir="/tmp/x")
    with pytest.raises(ConfigError, match=r"filter\.correct\.also: .*'judge', which is not "
                                          r"selected"):
        validate(cfg, get_registry())
