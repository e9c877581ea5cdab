"""SFTModule: supervised fine-tuning on worked solutions; the loss counts completion tokens only."""

from __future__ import annotations

import time

import lightning as L
import torch

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.trainers.common import OptimizerMixin, RNGStateMixin
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
        total_tokens, loss_sum = mask.sum(), 0.0
        for start in range(0, len(rows), self.micro_batch_size):
            rows_mb = slice(start, start + self.micro_batch_size)
            logp, _ = completion_logprobs(self.policy, ids[rows_mb], attention[rows_mb],
                                          positions[rows_mb], mask[rows_mb])
            # token-level mean over the whole batch: long solutions weigh by their length
            loss = -logp.sum() / total_tokens
            self.manual_backward(loss)
            loss_sum += float(loss.detach())
        grad_norm = self._clip_and_step(optimizer)
        metrics = {"sft/loss": loss_sum, "train/grad_norm": grad_norm,
                   "train/lr": optimizer.param_groups[0]["lr"],
                   "time/step_s": time.perf_counter() - started}
        if self.evaluator is not None and self.evaluator.due(self.global_step):
            metrics.update(self.evaluator.run(self.global_step))
        self.log_dict(metrics, on_step=True)
        self.log("loss", loss_sum, prog_bar=True, on_step=True)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_Ticks(), batch_size=None)

    def on_save_checkpoint(self, checkpoint) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["r1kit_stream"] = self.stream.state_dict()

    def on_load_checkpoint(self, checkpoint) -> None:
        super().on_load_checkpoint(checkpoint)
        self.stream.load_state_dict(checkpoint["r1kit_stream"])
