"""Build the Lightning Trainer of a stage: loggers, checkpoints, precision, resume point."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from r1kit.run.checkpoint_io import StreamingCheckpointIO
from r1kit.run.loggers import build_loggers, log_stage_record
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
    loggers = build_loggers(cfg, stage_dir)  # the CSV first, then logger.backends (rank 0)
    log_stage_record(loggers, cfg, stage_dir)
    checkpoint = ModelCheckpoint(dirpath=str(stage_dir / "checkpoints"), save_last=True,
                                 save_top_k=0, every_n_train_steps=cfg.checkpoint_every)
    return L.Trainer(default_root_dir=str(stage_dir), logger=loggers,
                     callbacks=[checkpoint, _KeepMetricsOnResume(loggers[0], stage_dir),
                                *extra_callbacks],
                     # checkpoints go straight to disk: Lightning's own save holds a copy
                     # of the weights and optimizer state in memory while it writes
                     plugins=[StreamingCheckpointIO()],
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


def resume_checkpoint(stage_dir: Path) -> str | None:
    last = stage_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.exists() else None
