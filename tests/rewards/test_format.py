"""The format reward: exactly one think block, then one answer block, then nothing."""

import doctest

import pytest

from r1kit.rewards import format as format_module
from r1kit.rewards.format import format_reward, is_well_formed


@pytest.mark.parametrize("completion", [
    "<think>2+2 is 4</think><answer>4</answer>",
    "<think>\n2+2 is 4\n</think>\n\n<answer>\n4\n</answer>\n",
    "  <think>a</think> <answer>b</answer>  ",
    "<think></think><answer></answer>",  # structure only: empty blocks are still blocks
])
def test_well_formed(completion):
    assert format_reward([completion], [{}]) == [1.0]


@pytest.mark.parametrize("completion", [
    "<think>a</think><answer>4</answer> Hope this helps!",  # text after </answer>
    "Sure! <think>a</think><answer>4</answer>",  # text before <think>
    "<think>a</think> so: <answer>4</answer>",  # text between the blocks
    "<think>a</think><think>b</think><answer>4</answer>",  # two think blocks
    "<think>a</think><answer>4</answer><answer>5</answer>",  # two answer blocks
    "<think>a <think>b</think></think><answer>4</answer>",  # nested
    "<think>a <answer>3</answer></think><answer>4</answer>",  # answer inside think
    "<answer>4</answer>",  # missing think
    "<think>a</think>",  # missing answer
    "<answer>4</answer><think>a</think>",  # wrong order
    "<think>a</think><answer>4",  # truncated
    "a</think><answer>4</answer>",  # the prompt did not open the think block
    "",
])
def test_malformed(completion):
    assert format_reward([completion], [{}]) == [0.0]


def test_prompt_ending_with_think_opens_the_block():
    completion = "2+2 is 4</think>\n<answer>4</answer>"
    assert format_reward([completion], [{}]) == [0.0]
    assert format_reward([completion], [{}], prompt_ends_with_think=True) == [1.0]
    # The prompt opened the block, so opening it again makes two.
    assert format_reward(["<think>a</think><answer>4</answer>"], [{}],
                         prompt_ends_with_think=True) == [0.0]


def test_a_rendered_prompt_ending_with_think_opens_the_block():
    completion = "2+2 is 4</think>\n<answer>4</answer>"
    assert format_reward([completion], [{"prompt": "User: 2+2? Assistant: <think>\n"}]) == [1.0]
    assert format_reward([completion], [{"prompt": "2+2?"}]) == [0.0]


def test_scores_each_completion():
    good, bad = "<think>a</think><answer>1</answer>", "<answer>1</answer>"
    assert format_reward([good, bad, good], [{}] * 3) == [1.0, 0.0, 1.0]


def test_unknown_option_is_an_error():
    with pytest.raises(TypeError):
        format_reward(["x"], [{}], prompt_ends_with_thinking=True)


def test_docstring_examples_hold():
    assert doctest.testmod(format_module).failed == 0
    assert is_well_formed("<think>x</think><answer>y</answer>")
