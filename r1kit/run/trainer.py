"""Build the Lightning Trainer of a stage: loggers, checkpoints, precision, resume point."""

from __future__ import annotations

import csv
import warnings
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from r1kit.run.ranks import is_global_zero


# r1kit steps the optimizer itself and checkpoints after the step on purpose (a resumed run
# continues from the updated weights, with the matching optimizer and data position).
warnings.filterwarnings("ignore", message=".*ModelCheckpoint with manual optimization.*")


def _precision(value):
    if value is not None:
        return value
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def build_trainer(cfg, stage_dir: Path, extra_callbacks=()) -> L.Trainer:
    args = dict(cfg.trainer)
    args["precision"] = _precision(args.get("precision"))
    # every row reaches disk at once (a killed run keeps its metrics up to its last step)
    csv_logger = CSVLogger(save_dir=str(stage_dir), name="", version="",
                           flush_logs_every_n_steps=1)
    loggers = [csv_logger]
    if cfg.logger.wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=cfg.logger.project, save_dir=str(stage_dir),
                                   mode=cfg.logger.mode, name=stage_dir.name,
                                   id=_wandb_id(stage_dir), resume="allow"))
    checkpoint = ModelCheckpoint(dirpath=str(stage_dir / "checkpoints"), save_last=True,
                                 save_top_k=0, every_n_train_steps=cfg.checkpoint_every)
    return L.Trainer(default_root_dir=str(stage_dir), logger=loggers,
                     callbacks=[checkpoint, _KeepMetricsOnResume(csv_logger, stage_dir),
                                *extra_callbacks],
                     deterministic=bool(cfg.deterministic) or None,
                     enable_model_summary=False, num_sanity_val_steps=0,
                     limit_val_batches=0, **args)


class _KeepMetricsOnResume(Callback):
    """A rerun resumes from the last checkpoint, but Lightning's CSV writer deletes the
    existing ``metrics.csv`` when it starts: read its rows first (now, before the writer
    exists), and at the first batch put back the rows of the steps the resumed run does not
    redo. Rank 0 only: it alone writes the CSV."""

    def __init__(self, logger: CSVLogger, stage_dir: Path):
        self.logger, self.rows = logger, []
        path = stage_dir / "metrics.csv"
        if path.exists() and is_global_zero():
            with path.open(newline="") as handle:
                self.rows = list(csv.DictReader(handle))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not trainer.is_global_zero or not self.rows:
            return
        # the "step" the logger connector will write for this, the first batch of the run
        # (read here, not at on_train_start: Lightning moves it past a checkpoint's batch then)
        resume = trainer.fit_loop.epoch_loop._batches_that_stepped
        kept = [{k: v for k, v in row.items() if v not in ("", None)} for row in self.rows
                if row.get("step") not in ("", None) and int(float(row["step"])) < resume]
        self.rows = []
        writer = self.logger.experiment
        writer.metrics[:0] = kept
        writer.save()


def _wandb_id(stage_dir: Path) -> str:
    # A stable id per stage directory, so a resumed run continues the same wandb run. Only
    # rank 0 logs to wandb; other ranks must not race it to create (or overwrite) the file.
    path = stage_dir / "wandb_id.txt"
    if not path.exists() and is_global_zero():
        import uuid

        stage_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(uuid.uuid4().hex[:12])
        os.replace(tmp, path)
    return path.read_text().strip() if path.exists() else "r1kit-not-rank-zero"


def resume_checkpoint(stage_dir: Path) -> str | None:
    last = stage_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.exists() else None
