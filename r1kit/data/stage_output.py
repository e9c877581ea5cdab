"""``data=stage_output``: the dataset an earlier pipeline stage wrote (rejection sampling)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from r1kit.data.jsonl import read_jsonl


@dataclass
class StageOutputOptions:
    stage: str = MISSING  # the earlier stage's name
    run_dir: str = "${run_dir}"


def stage_output_dataset(split: str, seed: int, options: StageOutputOptions) -> list[dict]:
    """The stage's ``dataset.jsonl`` for train; for val, the held-out rows that stage was
    evaluated on (``val.jsonl``), so every stage reports on the same held-out set."""
    stage = options.stage
    name = "dataset.jsonl" if split == "train" else "val.jsonl"
    path = Path(options.run_dir) / stage / name
    if split != "train":
        return read_jsonl(path) if path.exists() else []
    if not path.exists():
        raise FileNotFoundError(f"data: stage '{stage}' has not written {path}; it must run "
                                "before this stage")
    return read_jsonl(path, required=("prompt", "solution"))
