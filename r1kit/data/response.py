"""The R1 response template, ``<think>…</think><answer>…</answer>``, and the part of it a prompt
already wrote.

A prompt template may open the response itself: the R1-Zero template ends with
``Assistant: <think>``, and Qwen3's chat template in non-thinking mode ends with an empty
``<think>\\n\\n</think>``. The completion then continues inside the response, and whatever judges
or trains on the response must see it in context: the format reward judges the opened part plus
the completion, and an SFT target drops what its prompt already wrote (no doubled ``<think>``).
This module is that one rule, used by the format reward, the rejection-sampling stage (which
stores whole responses) and the SFT stage (which trains on the part after the prompt).
"""

from __future__ import annotations

import re

#: The template's tags, in the order a well-formed response has them.
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
TAG = re.compile(r"</?(?:think|answer)>")


def opened_response(prompt: str) -> str:
    """The start of the response that ``prompt`` wrote: its text from the first template tag
    after the last ``</answer>`` (``"<think>"`` for the R1-Zero template), or ``""``.

    Tags in the instructions ("enclosed within <think> </think> and <answer> </answer> tags")
    end with a closing ``</answer>``, so they are not taken for the start of the response.

    >>> opened_response("... <think> </think> <answer> </answer>. User: 1+1. Assistant: <think>")
    '<think>'
    >>> opened_response("Question: 1+1. Answer:")
    ''
    """
    end = prompt.rfind("</answer>")
    tail = prompt if end < 0 else prompt[end + len("</answer>"):]
    first = TAG.search(tail)
    return tail[first.start():] if first else ""


def r1_response(reasoning: str, answer: str) -> str:
    """A worked solution and its final answer written as the R1 template asks."""
    return f"<think>\n{reasoning.strip()}\n</think>\n<answer>\n{answer.strip()}\n</answer>"


def full_response(prompt: str, completion: str) -> str:
    """The whole response the model gave: what the prompt opened, then the completion."""
    return opened_response(prompt) + completion


def completion_target(prompt: str, response: str) -> str:
    """The part of a whole ``response`` that a model prompted with ``prompt`` must write.

    When the prompt opened the response (``...<think>``) and the response starts with the same
    tags, they are dropped from the target, so SFT does not teach the model to open the block
    a second time; the text between them is compared without whitespace.

    >>> completion_target("Assistant: <think>", "<think>\\n2+2=4</think><answer>4</answer>")
    '\\n2+2=4</think><answer>4</answer>'
    >>> completion_target("Question:", "<think>2+2=4</think><answer>4</answer>")
    '<think>2+2=4</think><answer>4</answer>'
    """
    opened = opened_response(prompt)
    if not opened:
        return response
    opened_tags = TAG.findall(opened)
    tags = list(TAG.finditer(response))
    if [t.group() for t in tags[:len(opened_tags)]] != opened_tags:
        return response
    cut = tags[len(opened_tags) - 1].end()
    written_by_prompt = opened[:[m.end() for m in TAG.finditer(opened)][-1]]
    if "".join(response[:cut].split()) != "".join(written_by_prompt.split()):
        return response  # same tags, different text between them: not the prompt's start
    return response[cut:]


def satisfiable(opened: str) -> bool:
    """Whether some completion after ``opened`` (what a prompt wrote of the response) can
    make a well-formed response: its tags must be a proper prefix of :data:`TAGS`, and after
    ``</think>`` only whitespace may come before ``<answer>``.

    >>> satisfiable("<think>"), satisfiable("<think>\\n\\n</think>\\n\\n"), satisfiable("<answer>")
    (True, True, False)
    """
    tags = list(TAG.finditer(opened))
    names = [t.group() for t in tags]
    if names != list(TAGS[:len(names)]) or len(names) == len(TAGS):
        return False
    if len(names) >= 2:
        between = opened[tags[1].end():tags[2].start() if len(names) > 2 else len(opened)]
        return not between.strip()
    return True
