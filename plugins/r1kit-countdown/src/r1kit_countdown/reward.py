"""The ``countdown`` reward: the answer is an expression that makes the target from the numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from r1kit.api import ConfigError

from r1kit_countdown.game import InvalidExpression, parse, solves

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Models trained on prose write the operators the way people print them.
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "−": "-"})


@dataclass
class CountdownRewardOptions:
    """Options of the ``countdown`` reward (config node ``reward.countdown``)."""

    #: Score of an answer that is a valid expression but wrong (other numbers or another value);
    #: TinyZero uses 0.1 to encourage well-formed answers early in training.
    format_score: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.format_score <= 1.0:
            raise ConfigError(f"reward.countdown.format_score: must be in [0, 1], "
                              f"got {self.format_score}")


def answer_expression(completion: str) -> str | None:
    """The expression in the last ``<answer>`` block, or ``None`` without one.

    An equation is judged by its left side:

    >>> answer_expression("<think>7*3=21</think><answer>7 × 3 + 25 = 46</answer>")
    '7 * 3 + 25'
    """
    blocks = _ANSWER_BLOCK.findall(completion)
    if not blocks:
        return None
    return blocks[-1].translate(_SYMBOLS).split("=")[0].strip()


def countdown_reward(completions: list[str], examples: list[dict],
                     options: CountdownRewardOptions) -> list[float | None]:
    """1.0 for an answer that uses each of ``example["numbers"]`` exactly once and equals
    ``example["target"]`` (within 1e-6); ``format_score`` for a valid but wrong expression;
    0.0 for no answer or an invalid one; ``None`` for a row without a ``target``."""
    opts = options
    scores: list[float | None] = []
    for completion, example in zip(completions, examples, strict=True):
        if example.get("target") is None:
            scores.append(None)
            continue
        expression = answer_expression(completion)
        if not expression:
            scores.append(0.0)
        elif solves(expression, example["numbers"], example["target"]):
            scores.append(1.0)
        else:
            scores.append(opts.format_score if _is_valid(expression) else 0.0)
    return scores


def _is_valid(expression: str) -> bool:
    try:
        parse(expression)
        return True
    except InvalidExpression:
        return False
