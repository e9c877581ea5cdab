"""The ``format`` reward: the completion follows the R1 template.

The template is ``<think>…</think><answer>…</answer>``.

Only the structure is judged; whether the answer is right is ``accuracy``'s business, and an
empty block is still a block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1kit import hookimpl

_TAG = re.compile(r"</?(?:think|answer)>")
_TEMPLATE = ["<think>", "</think>", "<answer>", "</answer>"]


@dataclass
class FormatOptions:
    """Options of the ``format`` reward (config node ``reward.format``)."""

    #: The prompt template already ends with ``<think>`` (the R1-Zero template does), so the
    #: completion starts inside the reasoning and must not open it again.
    prompt_ends_with_think: bool = False


def is_well_formed(completion: str) -> bool:
    """True iff ``completion`` is one think block then one answer block, with only whitespace
    before, between and after them (no repeated, nested or stray tags).

    >>> is_well_formed("<think>2+2=4</think>\\n<answer>4</answer>\\n")
    True
    >>> is_well_formed("<think>2+2=4</think><answer>4</answer> Hope this helps!")
    False
    """
    tags = list(_TAG.finditer(completion))
    # Requiring exactly these four tags in this order rules out nesting and repetition, so
    # what is left to check is the text outside the blocks.
    if [tag.group() for tag in tags] != _TEMPLATE:
        return False
    think_open, think_close, answer_open, answer_close = tags
    outside = (completion[:think_open.start()],
               completion[think_close.end():answer_open.start()],
               completion[answer_close.end():])
    return all(not text.strip() for text in outside)


def format_reward(completions: list[str], examples: list[dict], **options) -> list[float | None]:
    """1.0 for each completion that :func:`is_well_formed` accepts, else 0.0.

    A completion is judged as if it began with ``<think>`` when ``prompt_ends_with_think`` is
    set, or when its example's ``prompt`` (if the dataset stores the rendered prompt) ends
    with ``<think>``.
    """
    opts = FormatOptions(**options)
    scores: list[float | None] = []
    for completion, example in zip(completions, examples, strict=True):
        prompt = example.get("prompt")
        opened = opts.prompt_ends_with_think or (
            isinstance(prompt, str) and prompt.rstrip().endswith("<think>"))
        scores.append(1.0 if is_well_formed("<think>" * opened + completion) else 0.0)
    return scores


@hookimpl
def r1kit_register_rewards(register):
    register("format", format_reward, schema=FormatOptions)
