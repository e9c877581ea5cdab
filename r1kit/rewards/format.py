"""The ``format`` reward: the completion follows the R1 template.

The template is ``<think>…</think><answer>…</answer>``.

Only the structure is judged; whether the answer is right is ``accuracy``'s business, and an
empty block is still a block. The completion is judged in context: when the prompt the model saw
already opened the response (the R1-Zero template ends with ``<think>``), that opening counts
(:func:`r1kit.data.response.opened_response`), so no flag has to say so.
"""

from __future__ import annotations

from r1kit import hookimpl
from r1kit.data.response import TAG, TAGS, full_response


def is_well_formed(completion: str) -> bool:
    """True iff ``completion`` is one think block then one answer block, with only whitespace
    before, between and after them (no repeated, nested or stray tags).

    >>> is_well_formed("<think>2+2=4</think>\\n<answer>4</answer>\\n")
    True
    >>> is_well_formed("<think>2+2=4</think><answer>4</answer> Hope this helps!")
    False
    """
    tags = list(TAG.finditer(completion))
    # Requiring exactly these four tags in this order rules out nesting and repetition, so
    # what is left to check is the text outside the blocks.
    if [tag.group() for tag in tags] != list(TAGS):
        return False
    think_open, think_close, answer_open, answer_close = tags
    outside = (completion[:think_open.start()],
               completion[think_close.end():answer_open.start()],
               completion[answer_close.end():])
    return all(not text.strip() for text in outside)


def format_reward(completions: list[str], examples: list[dict],
                  options=None) -> list[float | None]:
    """1.0 for each completion whose whole response (what the prompt opened, then the
    completion) :func:`is_well_formed` accepts, else 0.0.

    The prompt is the one the model saw, ``rendered_prompt`` (the trainer, the rejection
    sampler and ``python -m r1kit score`` set it), else the row's ``prompt`` (completions scored by
    ``python -m r1kit score`` often carry the full prompt there). ``format`` has no options
    of its own, so ``options`` (the common reward fields) is not read.
    """
    return [1.0 if is_well_formed(full_response(rendered_prompt(example), completion)) else 0.0
            for completion, example in zip(completions, examples, strict=True)]


def rendered_prompt(example: dict) -> str:
    """The prompt text the model was given for ``example`` (``""`` when unknown)."""
    prompt = example.get("rendered_prompt", example.get("prompt"))
    return prompt if isinstance(prompt, str) else ""


@hookimpl
def r1kit_register_rewards(register):
    register("format", format_reward)
