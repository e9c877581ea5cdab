"""Pieces every r1kit LightningModule shares, as functions and small objects the module owns:
combining metrics over data-parallel ranks, how a loss reaches each rank's gradients
(``Backprop``), the optimizer and its step (``PolicyOptimizer``), what checkpoints carry
besides the weights (``ResumeState``), and the module base they make up
(``PolicyTrainingModule``)."""

from __future__ import annotations

import math
import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from r1kit.run.samples import SampleWriter, log_sample_table


def nanmean(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else float("nan")


# --------------------------------------------------------------------------- across ranks
def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_objects(obj) -> list:
    """``obj`` of every rank, in rank order (``[obj]`` in a single process). A collective: every
    rank must call it."""
    if _world_size() == 1:
        return [obj]
    out = [None] * _world_size()
    dist.all_gather_object(out, obj)
    return out


#: How a metric combines over ranks, by name prefix. Counts add up, a step lasts as long as its
#: slowest rank; every other metric is the weighted mean over the ranks that report a finite
#: value (a rank with no completion a reward applies to reports NaN for it).
SUMMED = ("rollout/sampled_groups", "rollout/kept_groups", "reward_errors/", "reward_timeouts/",
          "reward_fast_path/", "reward_math_verify/", "judge/", "throughput/",
          "train/skipped_ranks")
MAXED = ("time/", "rollout/refill_rounds")


def reduce_metrics(metrics: dict, weight: float = 1.0) -> dict:
    """Combine every rank's ``metrics`` (see ``SUMMED``/``MAXED``); ``weight`` is this rank's
    weight in the means (its number of evaluation prompts, say). Every rank gets the result.
    A collective: every rank must call it, but the keys may differ between ranks. In a single
    process ``metrics`` comes back unchanged."""
    if _world_size() == 1:
        return metrics
    gathered = gather_objects(({k: float(v) for k, v in metrics.items()}, float(weight)))
    keys = list(dict.fromkeys(k for part, _ in gathered for k in part))
    out = {}
    for key in keys:
        values = [(part[key], w) for part, w in gathered if key in part]
        if key.startswith(SUMMED):
            out[key] = sum(v for v, _ in values)
        elif key.startswith(MAXED):
            out[key] = max(v for v, _ in values)
        else:
            finite = [(v, w) for v, w in values if math.isfinite(v) and w > 0]
            total = sum(w for _, w in finite)
            out[key] = sum(v * w for v, w in finite) / total if total else float("nan")
    return out


def no_sync_context(strategy):
    """A context factory that stops the strategy's gradient all-reduce during ``backward``
    (DDP's ``no_sync``); a no-op for strategies without one (single device, FSDP, DeepSpeed)."""
    return getattr(strategy, "block_backward_sync", nullcontext)


def sum_over_ranks(strategy):
    """``fn(float) -> float``: the sum of a number over every rank (itself in one process)."""
    def reduce(value: float) -> float:
        if getattr(strategy, "world_size", 1) == 1:
            return float(value)
        tensor = torch.tensor(float(value), dtype=torch.float64, device=strategy.root_device)
        return float(strategy.reduce(tensor, reduce_op="sum"))
    return reduce


@dataclass(frozen=True)
class Backprop:
    """How a loss reaches this rank's gradients, and how the ranks agree on its scale.

    ``backward(loss)`` (``LightningModule.manual_backward`` in training), ``no_sync()`` (a
    context that suspends the strategy's gradient all-reduce, so a rank running several
    micro-batches still synchronises once), ``sum_over_ranks(x)`` and the number of ranks whose
    gradients the strategy *averages*. The defaults are those of one process.
    """

    backward: Callable = torch.Tensor.backward
    no_sync: Callable = nullcontext
    sum_over_ranks: Callable[[float], float] = float
    world_size: int = 1

    @classmethod
    def of(cls, module) -> "Backprop":
        """The Backprop of a LightningModule under its trainer's strategy."""
        strategy = module.trainer.strategy
        return cls(module.manual_backward, no_sync_context(strategy), sum_over_ranks(strategy),
                   module.trainer.world_size)

    def share(self, units: float) -> float:
        """``world_size · units / Σ_ranks units``: the factor on this rank's loss (or on a
        statistic) that makes the strategy's average over ranks the value over the union of
        every rank's units; 0 when no rank has any. A collective: every rank must call it."""
        total = self.sum_over_ranks(units)
        return self.world_size * units / total if total else 0.0


# ------------------------------------------------------------------------------ optimizer
def trainable_parameters(trainer, policy) -> list:
    """The weights the optimizer steps. Under FSDP the policy's weights live in the wrapper's
    flat parameters, so ask the strategy's (wrapped) model; elsewhere that is the policy's."""
    root = trainer.model if trainer is not None and trainer.model is not None else policy
    return [p for p in root.parameters() if p.requires_grad]


def fused_adamw(params, strategy) -> bool | None:
    """torch's fused AdamW kernel (one pass over each tensor: 2.2x faster than the default on
    the 8.4M-parameter benchmark model on CPU) where it applies: plain float tensors on CPU or
    CUDA. DeepSpeed brings its own optimizer wrapping, so it keeps the default (None)."""
    if type(strategy).__name__.startswith("DeepSpeed") or not params:
        return None
    return all(p.device.type in ("cpu", "cuda") and p.dtype in (
        torch.float32, torch.bfloat16, torch.float16) and type(p) is torch.nn.Parameter
        for p in params) or None


class PolicyOptimizer:
    """AdamW with linear warm-up over the policy's weights, stepped by the module itself
    (manual optimisation: GRPO steps μ times per rollout). ``cfg`` is the ``optim`` config."""

    def __init__(self, cfg, policy):
        self.cfg, self.policy = cfg, policy

    def configure(self, trainer) -> dict:
        """What ``LightningModule.configure_optimizers`` returns."""
        cfg = self.cfg
        params = trainable_parameters(trainer, self.policy)
        optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas),
            fused=fused_adamw(params, getattr(trainer, "strategy", None)))
        warmup = cfg.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule,
                                                         "interval": "step"}}

    def clip_and_step(self, optimizer, scheduler, trainer) -> float:
        """Clip the gradient norm, step the optimizer and the schedule; returns the norm before
        clipping. The gradients are already averaged over ranks (DDP: identical on every rank,
        so every rank clips alike); FSDP's sharded gradients need the root wrapper's own
        ``clip_grad_norm_``, which reduces the norm over shards."""
        from torch.distributed.fsdp import FullyShardedDataParallel

        max_norm = self.cfg.max_grad_norm or float("inf")
        root = trainer.model if trainer is not None else None
        if isinstance(root, FullyShardedDataParallel):
            norm = root.clip_grad_norm_(max_norm)
        else:
            params = [p for p in self.policy.parameters() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        # spent: freed now rather than at the next update's start, so that they are not held
        # through the next rollout's generation and reference pass (at Qwen2.5-0.5B's shape the
        # gradients are 633 MiB, 17% of the RSS between steps)
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None:
            scheduler.step()
        return float(norm)


# ------------------------------------------------------------------ what checkpoints carry
def _rng_state() -> dict:
    # plain Python values and tensors only: Lightning loads checkpoints with weights_only=True,
    # which refuses numpy arrays
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached))}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def seed_rank(rank: int) -> None:
    """seed_everything gave every rank the same seed, so every rank would draw the same sampling
    noise: give rank r its own stream. Rank 0 keeps the original one, so a single-device run is
    unchanged; a resumed run then restores each rank's saved state (``ResumeState.load``)."""
    if rank:
        seed = (torch.initial_seed() + 1_000_003 * rank) % 2**32
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)


def rank_state(checkpoint: dict, key: str, rank: int, world_size: int):
    """This rank's entry of a per-rank state saved by ``save_rank_states``, or the single
    (rank 0) state when the checkpoint has none for this world size."""
    per_rank = checkpoint.get(key + "_ranks")
    if per_rank is not None and len(per_rank) == world_size:
        return per_rank[rank]
    return checkpoint.get(key)


def save_rank_states(checkpoint: dict, key: str, state) -> None:
    """``checkpoint[key]`` is this rank's ``state``; with several ranks every rank's state is
    kept too (only rank 0's checkpoint dict is written). ``on_save_checkpoint`` runs on every
    rank, so the gather is safe there."""
    checkpoint[key] = state
    if _world_size() > 1:
        checkpoint[key + "_ranks"] = gather_objects(state)


class ResumeState:
    """What a module's checkpoints carry besides weights, optimizer and loop counters: every
    rank's RNG states and position in its prompt ``stream``, so a resumed run samples and reads
    what the original would have. The module draws its rows from the stream itself (a filter
    may ask for more mid-step), so no DataLoader holds the data position."""

    def __init__(self, stream):
        self.stream = stream

    def save(self, checkpoint: dict) -> None:
        save_rank_states(checkpoint, "r1kit_rng", _rng_state())
        save_rank_states(checkpoint, "r1kit_stream", self.stream.state_dict())

    def load(self, checkpoint: dict, rank: int, world_size: int) -> None:
        rng = rank_state(checkpoint, "r1kit_rng", rank, world_size)
        stream = rank_state(checkpoint, "r1kit_stream", rank, world_size)
        # a checkpoint written by another tool carries neither
        if rng is not None:
            _set_rng_state(rng)
        if stream is not None:
            self.stream.load_state_dict(stream)


class PolicyTrainingModule(L.LightningModule):
    """What every r1kit training module does alike, from its own constructor arguments: it
    optimises ``policy`` itself (manual optimisation, ``PolicyOptimizer`` over ``optim_cfg``),
    draws its rows from ``stream`` (its loader only ticks steps), gives each rank its own
    sampling noise, and checkpoints every rank's RNG and stream state (``ResumeState``)."""

    def __init__(self, *, policy, stream, optim_cfg):
        super().__init__()
        self.automatic_optimization = False
        self.policy, self.stream = policy, stream
        self.optimization = PolicyOptimizer(optim_cfg, policy)
        self.resume_state = ResumeState(stream)

    def _clip_and_step(self, optimizer) -> float:
        """Clip, step the optimizer and the schedule; the gradient norm before clipping."""
        return self.optimization.clip_and_step(optimizer, self.lr_schedulers(), self._trainer)

    def setup(self, stage: str) -> None:
        seed_rank(self.global_rank)

    def train_dataloader(self):
        return step_ticks()

    def configure_optimizers(self):
        return self.optimization.configure(self._trainer)

    def on_save_checkpoint(self, checkpoint) -> None:
        self.resume_state.save(checkpoint)

    def on_load_checkpoint(self, checkpoint) -> None:
        self.resume_state.load(checkpoint, self.global_rank, self.trainer.world_size)


def step_ticks() -> torch.utils.data.DataLoader:
    """The modules' ``train_dataloader``: it only ticks steps (the rows come from the stream)."""
    return torch.utils.data.DataLoader(_Ticks(), batch_size=None)


class _Ticks(torch.utils.data.IterableDataset):
    def __iter__(self):
        step = 0
        while True:
            yield step
            step += 1


def log_step_metrics(module, metrics: dict, progress: dict) -> None:
    """Send one step's metrics to every logger, and ``progress`` to the progress bar only.

    Loggers are called directly rather than through ``self.log``: Lightning keeps every key ever
    logged with ``self.log`` and writes it again on each later step, so a held-out score measured
    every 50 steps would appear on every row. The step is Lightning's own logging step (batches
    that stepped), which a resumed run restores.
    """
    if module.trainer.is_global_zero:
        step = module.trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in module.loggers:
            logger.log_metrics(metrics, step=step)
    for key, value in progress.items():
        module.log(key, value, prog_bar=True, logger=False, on_step=True)


def held_out_eval(module, evaluator, step: int) -> dict:
    """A training stage's held-out metrics at ``step`` when its evaluator is due (else none),
    summed over ranks; the greedy completions it keeps go, by rank 0, to ``val_samples.jsonl``
    in the stage directory and to the trackers as the table ``val/samples``, at the step of the
    metrics. A collective: every rank calls it at every step (they all evaluate alike)."""
    if evaluator is None or not evaluator.due(step):
        return {}
    metrics = evaluator.run(step)
    if evaluator.keep_samples:
        parts = gather_objects(evaluator.samples)
        if module.trainer.is_global_zero:
            logged_step = module.trainer.fit_loop.epoch_loop._batches_that_stepped
            rows = [{"step": logged_step, **row} for part in parts for row in part]
            SampleWriter(Path(module.trainer.default_root_dir) / "val_samples.jsonl",
                         1).write(rows)
            log_sample_table(module.loggers, "val/samples", rows, logged_step)
    return metrics
