"""Build the Lightning Trainer of a stage: loggers, checkpoints, precision, resume point."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from r1kit.run.ranks import is_global_zero


def _precision(value):
    if value is not None:
        return value
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def build_trainer(cfg, stage_dir: Path, extra_callbacks=()) -> L.Trainer:
    args = OmegaConf.to_container(cfg.trainer, resolve=True)
    args["precision"] = _precision(args.get("precision"))
    loggers = [CSVLogger(save_dir=str(stage_dir), name="", version="")]
    if cfg.logger.wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=cfg.logger.project, save_dir=str(stage_dir),
                                   mode=cfg.logger.mode, name=stage_dir.name,
                                   id=_wandb_id(stage_dir), resume="allow"))
    checkpoint = ModelCheckpoint(dirpath=str(stage_dir / "checkpoints"), save_last=True,
                                 save_top_k=0, every_n_train_steps=cfg.checkpoint_every)
    return L.Trainer(default_root_dir=str(stage_dir), logger=loggers,
                     callbacks=[checkpoint, *extra_callbacks],
                     deterministic=bool(cfg.deterministic) or None,
                     enable_model_summary=False, num_sanity_val_steps=0,
                     limit_val_batches=0, **args)


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
