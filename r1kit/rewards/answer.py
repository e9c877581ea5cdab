"""Finding the final answer in a completion (shared by the rule-based rewards and filters).

The R1 template asks for ``<think>…</think><answer>…</answer>``; MATH-style models answer with
``\\boxed{…}`` instead. Both are understood: the last ``<answer>`` block wins, and inside it (or,
without one, anywhere in the completion) the last ``\\boxed{…}`` is the answer.
"""

from __future__ import annotations

import re

# Non-greedy and DOTALL: answers span lines, and a completion may hold several blocks (the last
# one is the model's final word, earlier ones are usually drafts inside the reasoning).
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# \boxed may be followed by spaces before its brace (``\boxed {5}`` renders the same in LaTeX).
_BOXED = re.compile(r"\\boxed\s*\{")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` in ``text``, nested braces included.

    An unclosed box (a completion cut off by the length limit) is not an answer.

    >>> last_boxed(r"so \\boxed{1} or rather \\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> last_boxed(r"\\boxed{\\frac{1}{2") is None
    True
    """
    for match in reversed(list(_BOXED.finditer(text))):
        end = _closing_brace(text, match.end())
        if end is not None:
            return text[match.end():end].strip()
        # This box never closes; an earlier one might (e.g. truncated after a correct box).
    return None


def ends_in_open_box(text: str) -> bool:
    """Whether the last ``\\boxed{`` in ``text`` never closes.

    Such a text was cut off while its answer was being written: whatever number came before
    the cut is not the answer, so rewards treat it as giving none.

    >>> ends_in_open_box(r"\\boxed{1} and \\boxed{\\frac{1}{2")
    True
    >>> ends_in_open_box(r"\\boxed{\\frac{1}{2}}")
    False
    """
    boxes = list(_BOXED.finditer(text))
    return bool(boxes) and _closing_brace(text, boxes[-1].end()) is None


def _closing_brace(text: str, start: int) -> int | None:
    """Position of the ``}`` closing a brace opened just before ``start``, or ``None``.

    A regex cannot match balanced braces, so they are counted.
    """
    depth = 1
    for pos in range(start, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos
    return None


def answer_block(completion: str) -> str | None:
    """The content of the last ``<answer>…</answer>`` block, or ``None`` when there is none.

    >>> answer_block("<answer>3</answer> no, <answer> 4 </answer>")
    ' 4 '
    """
    blocks = _ANSWER_BLOCK.findall(completion)
    return blocks[-1] if blocks else None


def extract_answer(completion: str) -> str | None:
    """The final answer of ``completion``, or ``None`` when it gives none.

    The content of the last ``<answer>…</answer>`` block (narrowed to its last ``\\boxed{…}``
    if it has one), else the last ``\\boxed{…}`` anywhere. An empty answer is no answer.

    >>> extract_answer("<think>2+2</think><answer>4</answer>")
    '4'
    >>> extract_answer(r"<answer>The answer is \\boxed{4}.</answer>")
    '4'
    >>> extract_answer(r"so the result is \\boxed{4}")
    '4'
    """
    answer = answer_block(completion)
    if answer is not None:
        boxed = last_boxed(answer)
        answer = boxed if boxed is not None else answer.strip()
    else:
        answer = last_boxed(completion)
    return answer or None
