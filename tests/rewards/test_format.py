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


R1_ZERO = ("A conversation between User and Assistant. ... The reasoning process and answer are "
           "enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., "
           "<think> reasoning process here </think> <answer> answer here </answer>. "
           "User: 2+2?. Assistant: <think>")


def test_the_rendered_prompt_that_opened_the_block_counts():
    completion = "2+2 is 4</think>\n<answer>4</answer>"
    assert format_reward([completion], [{"rendered_prompt": R1_ZERO}]) == [1.0]
    assert format_reward([completion], [{"rendered_prompt": "2+2?"}]) == [0.0]
    assert format_reward([completion], [{}]) == [0.0]
    # The prompt opened the block, so opening it again makes two.
    assert format_reward(["<think>a</think><answer>4</answer>"],
                         [{"rendered_prompt": R1_ZERO}]) == [0.0]


def test_tags_in_the_instructions_do_not_open_the_response():
    instructions = "Use <think> </think> then <answer> </answer>. User: 2+2? Assistant:"
    assert format_reward(["<think>a</think><answer>4</answer>"],
                         [{"rendered_prompt": instructions}]) == [1.0]


def test_a_prompt_that_wrote_an_empty_think_block_wants_only_the_answer():
    qwen3_no_think = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert format_reward(["<answer>4</answer>"], [{"rendered_prompt": qwen3_no_think}]) == [1.0]
    assert format_reward(["<think>x</think><answer>4</answer>"],
                         [{"rendered_prompt": qwen3_no_think}]) == [0.0]


def test_without_a_rendered_prompt_the_rows_prompt_is_the_context():
    completion = "2+2 is 4</think>\n<answer>4</answer>"
    assert format_reward([completion], [{"prompt": "User: 2+2? Assistant: <think>\n"}]) == [1.0]
    assert format_reward([completion], [{"prompt": "2+2?"}]) == [0.0]


def test_scores_each_completion():
    good, bad = "<think>a</think><answer>1</answer>", "<answer>1</answer>"
    assert format_reward([good, bad, good], [{}] * 3) == [1.0, 0.0, 1.0]


def test_an_option_is_an_error():
    with pytest.raises(TypeError):
        format_reward(["x"], [{}], prompt_ends_with_think=True)


def test_docstring_examples_hold():
    assert doctest.testmod(format_module).failed == 0
    assert is_well_formed("<think>x</think><answer>y</answer>")
