"""The ``countdown`` dataset: puzzles generated from the seed, every one solvable."""

from __future__ import annotations

import random
from dataclasses import dataclass

from r1kit.api import ConfigError

from r1kit_countdown.game import random_puzzle

PROMPT = ("Using the numbers {numbers}, create an equation that equals {target}. You can use "
          "basic arithmetic operations (+, -, *, /) and parentheses, and each number must be "
          "used exactly once. Show your work in <think> </think> tags and return the final "
          "equation in <answer> </answer> tags, for example <answer>(1 + 2) / 3</answer>.")


@dataclass
class CountdownOptions:
    """Options of the ``countdown`` dataset (config node ``data``, next to ``data.name``)."""

    num_numbers: int = 3
    min_number: int = 1
    max_number: int = 99
    #: Targets are integers in [1, max_target].
    max_target: int = 999
    num_train: int = 10000
    num_val: int = 200

    def __post_init__(self) -> None:
        # ConfigError names the key: r1kit reports it as is when the config is validated.
        if not 2 <= self.num_numbers <= 6:
            raise ConfigError(f"data.num_numbers: must be in [2, 6], got {self.num_numbers}")
        if not 1 <= self.min_number <= self.max_number:
            raise ConfigError(f"data.max_number: need 1 <= min_number <= max_number, got "
                              f"{self.min_number} and {self.max_number}")
        if self.num_numbers * self.min_number > self.max_target:
            raise ConfigError(f"data.max_target: {self.max_target} is below the smallest "
                              f"possible sum, {self.num_numbers} x {self.min_number}")
        if self.num_train < 1 or self.num_val < 1:
            raise ConfigError("data.num_train: num_train and num_val must be >= 1")


def countdown_dataset(split: str, seed: int, options: CountdownOptions) -> list[dict]:
    """Rows of ``split`` ("train" or "val"); the splits hold no puzzle in common.

    Each row: ``prompt``, ``numbers``, ``target``, ``answer`` (one solution, for reference; the
    reward checks any solution) and ``solution`` (that solution worked step by step in the R1
    format, for cold-start SFT).
    """
    if split not in ("train", "val"):
        raise ValueError(f"countdown: unknown split {split!r} (train or val)")
    opts = options
    rng = random.Random(f"countdown-{opts.num_numbers}-{opts.min_number}-{opts.max_number}-"
                        f"{opts.max_target}-{seed}")
    seen: set[tuple] = set()
    rows: dict[str, list[dict]] = {"val": [], "train": []}
    # val first, so that a val row never changes with num_train
    for bucket, count in (("val", opts.num_val), ("train", opts.num_train)):
        if bucket == "train" and split == "val":
            break
        repeats = 0
        while len(rows[bucket]) < count:
            puzzle = random_puzzle(rng, opts.num_numbers, opts.min_number, opts.max_number,
                                   opts.max_target)
            key = (tuple(sorted(puzzle.numbers)), puzzle.target)
            if key in seen:
                repeats += 1
                if repeats > 10_000:
                    raise ValueError(f"data: could not draw {opts.num_train + opts.num_val} "
                                     "distinct countdown puzzles; widen the number range")
                continue
            seen.add(key)
            rows[bucket].append(_row(puzzle))
    return rows[split]


def _row(puzzle) -> dict:
    return {
        "prompt": PROMPT.format(numbers=puzzle.numbers, target=puzzle.target),
        "answer": puzzle.expression,
        "numbers": puzzle.numbers,
        "target": puzzle.target,
        "solution": f"<think>{', '.join(puzzle.steps)}</think>"
                    f"<answer>{puzzle.expression}</answer>",
    }
