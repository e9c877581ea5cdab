"""Synthetic multi-digit addition with a verifiable answer and a worked chain of thought.

Each row has ``prompt`` ("358+467"), ``answer`` ("825") and ``solution``: the column sums from
the least significant digit with carries, in R1 format
(``<think>8+7=15,5+6+1=12,3+4+1=8</think><answer>825</answer>``), used by cold-start SFT.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class ArithmeticOptions:
    digits: int = 3
    num_train: int = 20000
    num_val: int = 200
    #: Rows of the train split that carry a worked ``solution`` (a small cold-start set, so SFT
    #: alone plateaus); the rest carry only the answer, like R1's RL prompts. -1 = all.
    num_solutions: int = 300

    def __post_init__(self) -> None:
        from r1kit.config.schema import _check

        _check(1 <= self.digits <= 9, "data.digits", f"must be in [1, 9], got {self.digits}")
        _check(self.num_train >= 1 and self.num_val >= 1, "data.num_train",
               "num_train and num_val must be >= 1")


def worked_solution(a: int, b: int) -> str:
    steps, carry = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        total = x + y + carry
        steps.append(f"{x}+{y}+{carry}={total}" if carry else f"{x}+{y}={total}")
        carry = total // 10
    return f"<think>{','.join(steps)}</think><answer>{a + b}</answer>"


def _problem(rng: random.Random, digits: int) -> tuple[int, int]:
    low, high = 10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1
    return rng.randint(low, high), rng.randint(low, high)


def arithmetic_dataset(split: str, seed: int, options: ArithmeticOptions) -> list[dict]:
    """Rows of ``split``; train and val are disjoint (val problems are drawn first)."""
    digits, num_train, num_val = options.digits, options.num_train, options.num_val
    num_solutions = options.num_solutions
    rng = random.Random(f"arithmetic-{digits}-{seed}")
    seen, val, train = set(), [], []
    capacity = (10 ** digits - (10 ** (digits - 1) if digits > 1 else 0)) ** 2
    if num_train + num_val > capacity:
        raise ValueError(f"data: only {capacity} distinct {digits}-digit problems exist, "
                         f"asked for {num_train + num_val}")
    for bucket, count in ((val, num_val), (train, num_train)):
        while len(bucket) < count:
            a, b = _problem(rng, digits)
            if (a, b) not in seen:
                seen.add((a, b))
                bucket.append({"prompt": f"{a}+{b}", "answer": str(a + b),
                               "solution": worked_solution(a, b)})
    if split == "val":
        return val
    if num_solutions >= 0:
        for row in train[num_solutions:]:
            del row["solution"]
    return train
