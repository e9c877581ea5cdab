"""The ``countdown`` reward: scores, its option, and that an answer is never run as code."""

import doctest

import pytest

from r1kit.api import ConfigError
from r1kit_countdown import game, reward
from r1kit_countdown.reward import answer_expression, countdown_reward
from r1kit.api import plugin_options

EXAMPLE = {"prompt": "...", "numbers": [3, 7, 25], "target": 46, "answer": "7 * 3 + 25"}


@pytest.mark.parametrize("completion, score, with_format_score", [
    ("<think>7*3=21, 21+25=46</think><answer>7 * 3 + 25</answer>", 1.0, 1.0),
    ("<answer>(7*3)+25 = 46</answer>", 1.0, 1.0),  # an equation: its left side counts
    ("<answer>7 × 3 + 25</answer>", 1.0, 1.0),  # printed operators
    ("<answer>25 − 3 × 7</answer>", 0.0, 0.1),  # valid, wrong value
    ("<answer>7 * 3 + 26</answer>", 0.0, 0.1),  # valid, a number not given
    ("<answer>25 + 7 * 3 + 3</answer>", 0.0, 0.1),  # valid, 3 used twice
    ("<answer>3 + 7</answer> no, <answer>7 * 3 + 25</answer>", 1.0, 1.0),  # last block wins
    ("<answer>7 * 3 + 25</answer> no, <answer>3 + 7</answer>", 0.0, 0.1),
    ("<answer>7 * 3 + 25 is 46</answer>", 0.0, 0.0),  # not an expression: not well formed
    ("<answer>7 ** 3 + 25</answer>", 0.0, 0.0),
    ("<answer></answer>", 0.0, 0.0),
    ("7 * 3 + 25", 0.0, 0.0),  # no answer block
])
def test_reward(completion, score, with_format_score):
    assert countdown_reward([completion], [EXAMPLE],
                            plugin_options("reward", "countdown")) == [score]
    assert countdown_reward([completion], [EXAMPLE],
                            plugin_options("reward", "countdown", format_score=0.1)) == [with_format_score]


def test_reward_does_not_apply_without_a_target():
    completions = ["<answer>1 + 1</answer>", "<answer>7 * 3 + 25</answer>"]
    assert countdown_reward(completions, [{"prompt": "1+1", "answer": "2"}, EXAMPLE],
                            plugin_options("reward", "countdown")) == [None, 1.0]


def test_reward_option_is_checked():
    with pytest.raises(ConfigError, match=r"reward\.countdown\.format_score"):
        countdown_reward(["<answer>1</answer>"], [EXAMPLE],
                         plugin_options("reward", "countdown", format_score=2.0))


def test_answer_expression():
    assert answer_expression("<think>x</think>") is None
    assert answer_expression("<answer>\n (25 − 7) ÷ 3 = 6 \n</answer>") == "(25 - 7) / 3"


def test_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    attack = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    assert not game.solves(attack, [3, 7, 25], 46)
    assert countdown_reward([f"<answer>{attack}</answer>"], [EXAMPLE],
                            plugin_options("reward", "countdown", format_score=0.5)) == [0.0]
    assert not marker.exists()


def test_docstring_examples():
    result = doctest.testmod(reward)
    assert result.attempted and not result.failed
