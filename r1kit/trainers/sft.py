"""SFTModule: supervised fine-tuning on worked solutions; the loss counts completion tokens only.

The loss is the token mean over the *global* batch (every rank's rows): each rank scales its
token sum by ``world_size / tokens_global`` so the strategy's gradient average over ranks is that
mean even when ranks hold different numbers of tokens.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import lightning as L
import torch

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.trainers.common import (OptimizerMixin, RNGStateMixin, no_sync_context, rank_state,
                                   reduce_metrics, save_rank_states, sum_over_ranks)
from r1kit.trainers.grpo import _Ticks


class SFTModule(RNGStateMixin, OptimizerMixin, L.LightningModule):
    def __init__(self, *, policy, tokenizer, encode, stream, cfg, evaluator=None):
        super().__init__()
        self.automatic_optimization = False  # one stepping path for every r1kit module
        self.policy, self.tokenizer, self.encode, self.stream = policy, tokenizer, encode, stream
        self.optim_cfg, self.batch_size = cfg.optim, cfg.data.batch_size
        self.micro_batch_size = cfg.algo.micro_batch_size
        self.evaluator = evaluator

    def training_step(self, batch, batch_idx):
        started = time.perf_counter()
        rows = self.stream.take(self.batch_size)
        prompts, completions = zip(*(self.encode(row) for row in rows))
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        ids, attention, positions, mask = pack(list(prompts), list(completions),
                                               self.tokenizer.pad_token_id, self.device)
        strategy = self.trainer.strategy
        # token-level mean over the global batch: long solutions weigh by their length
        total_tokens = max(sum_over_ranks(strategy)(float(mask.sum())), 1.0)
        world_size = self.trainer.world_size
        no_sync, loss_sum = no_sync_context(strategy), 0.0
        starts = range(0, len(rows), self.micro_batch_size)
        for start in starts:
            rows_mb = slice(start, start + self.micro_batch_size)
            # DDP all-reduces on the last micro-batch only (every rank has as many)
            with nullcontext() if start == starts[-1] else no_sync():
                logp, _ = completion_logprobs(self.policy, ids[rows_mb], attention[rows_mb],
                                              positions[rows_mb], mask[rows_mb])
                loss = -logp.sum() * world_size / total_tokens
                self.manual_backward(loss)
            loss_sum += float(loss.detach())
        grad_norm = self._clip_and_step(optimizer)
        metrics = {"sft/loss": loss_sum, "train/grad_norm": grad_norm,
                   "train/lr": optimizer.param_groups[0]["lr"],
                   "time/step_s": time.perf_counter() - started}
        metrics = reduce_metrics(metrics)  # the rank mean of sft/loss is the global token mean
        evaluator, step = self.evaluator, self.global_step
        if evaluator is not None and evaluator.every > 0 and step % evaluator.every == 0:
            metrics.update(reduce_metrics(evaluator.run(step), weight=len(evaluator.rows)))
        self.log_dict(metrics, on_step=True)
        self.log("loss", metrics["sft/loss"], prog_bar=True, on_step=True)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_Ticks(), batch_size=None)

    def on_save_checkpoint(self, checkpoint) -> None:
        super().on_save_checkpoint(checkpoint)
        save_rank_states(checkpoint, "r1kit_stream", self.stream.state_dict())

    def on_load_checkpoint(self, checkpoint) -> None:
        super().on_load_checkpoint(checkpoint)
        self.stream.load_state_dict(rank_state(checkpoint, "r1kit_stream", self.global_rank,
                                               self.trainer.world_size))
