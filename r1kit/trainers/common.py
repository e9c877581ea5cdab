"""Pieces every r1kit LightningModule shares: the optimizer, gradient clipping, RNG state."""

from __future__ import annotations

import random

import numpy as np
import torch


def nanmean(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else float("nan")


class OptimizerMixin:
    """AdamW with linear warm-up, stepped by the module itself (manual optimisation)."""

    def configure_optimizers(self):
        cfg = self.optim_cfg
        params = [p for p in self.policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                      betas=tuple(cfg.betas))
        warmup = cfg.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule,
                                                         "interval": "step"}}

    def _clip_and_step(self, optimizer) -> float:
        params = [p for p in self.policy.parameters() if p.grad is not None]
        max_norm = self.optim_cfg.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return float(norm)


class RNGStateMixin:
    """Checkpoints carry every RNG state so a resumed run samples what the original would."""

    def on_save_checkpoint(self, checkpoint) -> None:
        checkpoint["r1kit_rng"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                                   "numpy": np.random.get_state()}

    def on_load_checkpoint(self, checkpoint) -> None:
        state = checkpoint.get("r1kit_rng")
        if state is None:  # a checkpoint written by another tool
            return
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
