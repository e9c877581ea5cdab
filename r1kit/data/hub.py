"""Datasets from the Hugging Face hub (or a local dataset directory) via ``datasets``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional


@dataclass
class HubOptions:
    path: str = "???"  # hub id or local directory, as for datasets.load_dataset
    config_name: Optional[str] = None
    train_split: str = "train"
    val_split: Optional[str] = "test"
    prompt_field: str = "problem"
    answer_field: Optional[str] = "answer"
    #: Regex whose first group extracts the answer from answer_field (GSM8K: "####\s*(.+)$").
    answer_pattern: Optional[str] = None
    solution_field: Optional[str] = None
    max_rows: Optional[int] = None


def hub_dataset(split: str, seed: int, *, path: str, config_name=None, train_split="train",
                val_split="test", prompt_field="problem", answer_field="answer",
                answer_pattern=None, solution_field=None, max_rows=None) -> list[dict]:
    import datasets

    name = train_split if split == "train" else val_split
    if name is None:
        return []
    table = datasets.load_dataset(path, config_name, split=name)
    if max_rows is not None:
        table = table.select(range(min(max_rows, len(table))))
    pattern = re.compile(answer_pattern, re.S) if answer_pattern else None
    rows = []
    for record in table:
        row = dict(record)
        row["prompt"] = record[prompt_field]
        if answer_field is not None:
            answer = str(record[answer_field])
            match = pattern.search(answer) if pattern else None
            row["answer"] = match.group(1).strip() if match else answer
        if solution_field is not None:
            row["solution"] = record[solution_field]
        rows.append(row)
    return rows
