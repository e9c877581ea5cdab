"""Local JSON-lines datasets: one object per line with ``prompt`` (and usually ``answer``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import MISSING

from r1kit.config.schema import ConfigError


def read_jsonl(path: str | Path, *, required: tuple[str, ...] = ("prompt",)) -> list[dict]:
    """All rows of ``path``; a malformed line raises ``ConfigError`` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path}:{number}: malformed JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{number}: expected a JSON object, got "
                                  f"{type(row).__name__}")
            missing = [k for k in required if k not in row]
            if missing:
                raise ConfigError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no rows")
    return rows


@dataclass
class JsonlOptions:
    path: str = MISSING
    #: Optional separate held-out file; otherwise the last ``val_size`` rows of ``path``.
    val_path: Optional[str] = None
    #: Fields every row must have (``prompt`` for RL; add ``solution`` for SFT data).
    required_fields: list[str] = field(default_factory=lambda: ["prompt"])

    def __post_init__(self) -> None:
        # Reading the file here makes a missing file or a bad line fail at compose time.
        read_jsonl(self.path, required=tuple(self.required_fields))
        if self.val_path:
            read_jsonl(self.val_path, required=tuple(self.required_fields))


def jsonl_dataset(split: str, seed: int, options: JsonlOptions) -> list[dict]:
    """Rows of ``path`` for train; ``val_path``'s rows (or none: held out from train) for val."""
    required = tuple(options.required_fields)
    if split == "train":
        return read_jsonl(options.path, required=required)
    return read_jsonl(options.val_path, required=required) if options.val_path else []
