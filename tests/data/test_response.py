"""The response a prompt opened, and what judges and trains on it."""

import pytest

from r1kit.data.response import (completion_target, full_response, opened_response,
                                 r1_response, satisfiable)
from r1kit.rewards.format import is_well_formed

R1_TEMPLATE = ("A conversation between User and Assistant. ... The reasoning process and answer "
               "are enclosed within <think> </think> and <answer> </answer> tags, respectively, "
               "i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
               "User: {prompt}. Assistant: <think>")


@pytest.mark.parametrize("prompt,opened", [
    (R1_TEMPLATE.format(prompt="1+1"), "<think>"),
    ("Question: 1+1\nAnswer:", ""),
    ("Use <think>...</think> then <answer>...</answer>. Q: 1+1", ""),
    ("<|im_start|>assistant\n<think>\n\n</think>\n\n", "<think>\n\n</think>\n\n"),
    ("Q: 1+1 A: <answer>", "<answer>"),
    ("Assistant: <think>\nOkay, so", "<think>\nOkay, so"),  # a prefilled start of reasoning
])
def test_opened_response(prompt, opened):
    assert opened_response(prompt) == opened


def test_full_response_of_a_continuation_is_well_formed():
    prompt = R1_TEMPLATE.format(prompt="1+1")
    assert is_well_formed(full_response(prompt, " 1+1=2 </think> <answer>2</answer>"))
    assert not is_well_formed(full_response(prompt, "<think>1+1=2</think><answer>2</answer>"))


@pytest.mark.parametrize("prompt,response,target", [
    # the template opened <think>: the target continues inside it, no second <think>
    (R1_TEMPLATE, "<think>\n2+2=4\n</think>\n<answer>\n4\n</answer>",
     "\n2+2=4\n</think>\n<answer>\n4\n</answer>"),
    # the prompt opened nothing: the whole response is the target
    ("Q: 2+2?", "<think>2+2=4</think><answer>4</answer>", "<think>2+2=4</think><answer>4</answer>"),
    # a response that does not start the way the prompt did is left alone
    (R1_TEMPLATE, "2+2=4</think><answer>4</answer>", "2+2=4</think><answer>4</answer>"),
    # an empty think block written by the prompt (Qwen3 non-thinking): whitespace may differ
    ("assistant\n<think>\n\n</think>\n\n", "<think></think><answer>4</answer>", "<answer>4</answer>"),
])
def test_completion_target(prompt, response, target):
    assert completion_target(prompt, response) == target


def test_a_target_continues_its_prompt_to_the_full_response():
    prompt = R1_TEMPLATE.format(prompt="2+2")
    response = r1_response("2+2=4", "4")
    assert full_response(prompt, completion_target(prompt, response)) == response
    assert is_well_formed(response)


@pytest.mark.parametrize("opened,ok", [
    ("", True), ("<think>", True), ("<think>\n\n</think>\n\n", True),
    ("<think>x</think><answer>", True), ("<answer>", False), ("<think>x</think> so", False),
    ("<think>x</think><answer>4</answer>", False), ("</think>", False),
])
def test_satisfiable(opened, ok):
    assert satisfiable(opened) is ok
