"""Local datasets shaped like the real ones the shipped recipes name: MATH (``problem`` /
``solution`` ending in ``\\boxed{}``, with ``level`` and ``type``) and GSM8K (``question`` /
``answer`` ending in ``#### N``, with calculator annotations), written as the train/test JSONL
files of a dataset directory that ``datasets.load_dataset`` reads like the hub's."""

from __future__ import annotations

import json
import random
from pathlib import Path


def _write(directory: Path, rows: list[dict], num_test: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[num_test:]), ("test", rows[:num_test])):
        with (directory / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in part)
    return directory


def _sums(n: int, seed: int):
    rng = random.Random(seed)
    return [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(n)]


def math_like(directory: Path, n: int = 40, num_test: int = 8, seed: int = 0) -> Path:
    rows = [{"problem": f"Compute $ {a} + {b} $.",
             "solution": f"We have ${a} + {b} = {a + b - 1} + 1$, so the sum is "
                         f"$\\boxed{{{a + b}}}$.",
             "level": "Level 1", "type": "Prealgebra"} for a, b in _sums(n, seed)]
    return _write(directory, rows, num_test)


def gsm8k_like(directory: Path, n: int = 40, num_test: int = 8, seed: int = 0) -> Path:
    rows = [{"question": f"Tom has {a} apples and buys {b} more at the market. "
                         "How many apples does Tom have now?",
             "answer": f"Tom now has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n"
                       f"#### {a + b}"} for a, b in _sums(n, seed)]
    return _write(directory, rows, num_test)


def general_rows(n: int = 4) -> list[dict]:
    """Non-reasoning prompts (no rule-checkable answer), as R1's final RL stage mixes in."""
    return [{"prompt": f"Write a friendly greeting for guest number {i} and {i + 1}.",
             "task": "general"} for i in range(n)]
