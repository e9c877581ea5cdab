"""Sampled completions with their rewards (and advantages): as JSON lines in the stage
directory, and as a table in each tracker that has one (a W&B Table, an MLflow table
artifact, a TensorBoard text panel)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def _value(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def sample_rows(rollout, advantages=None, *, step: int | None = None,
                group_offset: int = 0) -> list[dict]:
    """One dict per completion of ``rollout``: step, group, prompt, completion, rewards (name
    -> value, None where the reward does not apply), reward (the weighted total), advantage
    (when given) and truncated."""
    rows = []
    for i in range(len(rollout)):
        row = {} if step is None else {"step": step}
        row.update({"group": int(rollout.group_ids[i]) + group_offset,
                    "prompt": rollout.prompts[i], "completion": rollout.completions[i],
                    "rewards": {name: _value(v[i]) for name, v in rollout.reward_parts.items()},
                    "reward": float(rollout.rewards[i])})
        if advantages is not None:
            row["advantage"] = float(advantages[i])
        row["truncated"] = bool(rollout.truncated[i])
        rows.append(row)
    return rows


class SampleWriter:
    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every

    def due(self, step: int, *, last: bool = False) -> bool:
        """Every ``every`` steps, and at the first and the last step, so that even a short
        smoke run shows what the model writes (0 writes nothing)."""
        return self.every > 0 and (step % self.every == 0 or step == 1 or last)

    def write(self, rows: list[dict]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)


def table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """``rows`` as columns and data, each reward its own column (``reward/<name>``)."""
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            names = [f"reward/{name}" for name in value] if key == "rewards" else [key]
            columns += [name for name in names if name not in columns]
    flat = [{**{k: v for k, v in row.items() if k != "rewards"},
             **{f"reward/{name}": v for name, v in row.get("rewards", {}).items()}}
            for row in rows]
    return columns, [[row.get(column) for column in columns] for row in flat]


def log_sample_table(loggers, key: str, rows: list[dict], step: int) -> None:
    """Send ``rows`` to every logger that can show a table (the CSV's are the JSONL)."""
    if not rows:
        return
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    writers = ((WandbLogger, _wandb_table), (MLFlowLogger, _mlflow_table),
               (TensorBoardLogger, _tensorboard_text))
    columns, data = table(rows)
    for logger in loggers:
        for cls, writer in writers:
            if isinstance(logger, cls):
                writer(logger, key, columns, data, step)


def _wandb_table(logger, key, columns, data, step) -> None:
    logger.log_table(key, columns=columns, data=data, step=step)


def _mlflow_table(logger, key, columns, data, step) -> None:
    # one JSON table artifact per step; the MLflow UI shows it beside the run
    by_column = {c: [row[i] for row in data] for i, c in enumerate(columns)}
    logger.experiment.log_table(logger.run_id, data=by_column,
                                artifact_file=f"{key}/step_{step:06d}.json")


def _markdown_cell(value) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _tensorboard_text(logger, key, columns, data, step) -> None:
    # TensorBoard's text panel renders markdown: the table as one markdown table per step
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in data]
    logger.experiment.add_text(key, "\n".join(lines), global_step=step)
