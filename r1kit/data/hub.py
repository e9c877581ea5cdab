"""Datasets from the Hugging Face hub (or a local dataset directory) via ``datasets``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from r1kit.config.schema import ConfigError


@dataclass
class HubOptions:
    path: str = MISSING  # hub id or local directory, as for datasets.load_dataset
    config_name: Optional[str] = None
    train_split: str = "train"
    val_split: Optional[str] = "test"
    prompt_field: str = "problem"
    answer_field: Optional[str] = "answer"
    #: Regex whose first group extracts the answer from answer_field (GSM8K: "####\s*(.+)$").
    answer_pattern: Optional[str] = None
    solution_field: Optional[str] = None
    #: How ``solution_field`` becomes the SFT ``solution``: ``as_is``, or ``r1``: the worked
    #: solution as the reasoning and the final answer in its own block
    #: (``<think>…</think><answer>…</answer>``), the response the R1 template asks for, so a
    #: cold start on MATH or GSM8K teaches the format the format reward checks.
    solution_format: str = "as_is"
    max_rows: Optional[int] = None

    def __post_init__(self) -> None:
        if self.solution_format not in SOLUTION_FORMATS:
            raise ConfigError(f"data.solution_format must be one of {', '.join(SOLUTION_FORMATS)}"
                             f", got {self.solution_format!r}")


SOLUTION_FORMATS = ("as_is", "r1")


def hub_dataset(split: str, seed: int, options: HubOptions) -> list[dict]:
    import datasets

    name = options.train_split if split == "train" else options.val_split
    if name is None:
        return []
    table = datasets.load_dataset(options.path, options.config_name, split=name)
    if options.max_rows is not None:
        table = table.select(range(min(options.max_rows, len(table))))
    pattern = re.compile(options.answer_pattern, re.S) if options.answer_pattern else None
    rows = []
    for record in table:
        row = dict(record)
        row["prompt"] = record[options.prompt_field]
        if options.answer_field is not None:
            answer = str(record[options.answer_field])
            match = pattern.search(answer) if pattern else None
            row["answer"] = match.group(1).strip() if match else answer
        if options.solution_field is not None:
            row["solution"] = _solution(str(record[options.solution_field]), row.get("answer"),
                                        pattern, options.solution_format)
        rows.append(row)
    return rows


def _solution(text: str, answer: str | None, pattern, solution_format: str) -> str:
    if solution_format == "as_is":
        return text
    from r1kit.data.response import r1_response
    from r1kit.rewards.answer import extract_answer

    # the final answer: a worked gold's box (MATH), else the gold itself (GSM8K after ####)
    final = (extract_answer(answer) or answer) if answer else extract_answer(text)
    if not final:
        raise ValueError(f"data.solution_format=r1: no final answer in solution {text[:80]!r}")
    reasoning = pattern.sub("", text) if pattern else text  # GSM8K: drop the "#### 72" line
    return r1_response(reasoning, final)
