"""SFTModule: supervised fine-tuning on worked solutions; the loss counts completion tokens only.

The loss is the token mean over the *global* batch (every rank's rows): each rank scales its
token sum by ``world_size / tokens_global`` so the strategy's gradient average over ranks is that
mean even when ranks hold different numbers of tokens.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch

from r1kit.algo.logprobs import DEFAULT_CHUNK_TOKENS, completion_logprobs, pack
from r1kit.algo.microbatch import micro_batches
from r1kit.models.attention import auto_attention
from r1kit.stages.module_common import (Backprop, PolicyTrainingModule, held_out_eval,
                                        log_step_metrics, reduce_metrics)


def accumulate_sft_gradients(policy, ids, attention, positions, mask, micro_batch_size: int, *,
                             micro_batch_tokens: int | None = None,
                             chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                             backprop: Backprop = Backprop()) -> float:
    """Backpropagate the negative log-likelihood of the completion tokens, averaged over every
    token of the global batch (long solutions weigh by their length), in micro-batches of at
    most ``micro_batch_size`` rows and ``micro_batch_tokens`` padded tokens (longest rows
    first: ``r1kit.algo.microbatch``; a token sum splits exactly over any rows); returns this
    rank's share of that loss (its mean over ranks is the loss). Each rank scales its token
    sum by ``world_size / tokens_global``, so the strategy's gradient average is the global
    token mean; every micro-batch but the last runs under ``backprop.no_sync()`` (see
    ``accumulate_gradients``)."""
    local = float(mask.sum())
    total_tokens = max(backprop.sum_over_ranks(local), 1.0)
    all_rows = torch.arange(mask.size(0), device=mask.device)
    chunks = micro_batches(all_rows, attention.sum(1), max_tokens=micro_batch_tokens,
                           max_rows=micro_batch_size)
    loss_sum = 0.0
    for index, rows in enumerate(chunks):
        with nullcontext() if index == len(chunks) - 1 else backprop.no_sync():
            logp, _ = completion_logprobs(policy, ids[rows], attention[rows], positions[rows],
                                          mask[rows], chunk_tokens=chunk_tokens)
            loss = -logp.sum() * backprop.world_size / total_tokens
            backprop.backward(loss)
        loss_sum += float(loss.detach())
    return loss_sum


class SFTModule(PolicyTrainingModule):
    def __init__(self, *, policy, tokenizer, encode, stream, cfg, evaluator=None):
        super().__init__(policy=policy, stream=stream, optim_cfg=cfg.optim)
        self.tokenizer, self.encode = tokenizer, encode
        self.batch_size = cfg.data.batch_size
        self.micro_batch_size = cfg.algo.micro_batch_size
        self.micro_batch_tokens = cfg.algo.micro_batch_tokens
        self.chunk_tokens = cfg.algo.logprob_chunk_tokens
        self.attention = cfg.model.attn_implementation
        self.evaluator = evaluator

    def training_step(self, batch, batch_idx):
        started = time.perf_counter()
        rows = self.stream.take(self.batch_size)
        prompts, completions = zip(*(self.encode(row) for row in rows))
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        ids, attention, positions, mask = pack(list(prompts), list(completions),
                                               self.tokenizer.pad_token_id, self.device)
        loss_sum = accumulate_sft_gradients(self.policy, ids, attention, positions, mask,
                                            self.micro_batch_size,
                                            micro_batch_tokens=self.micro_batch_tokens,
                                            chunk_tokens=self.chunk_tokens,
                                            backprop=Backprop.of(self))
        grad_norm = self._clip_and_step(optimizer)
        metrics = {"sft/loss": loss_sum, "train/grad_norm": grad_norm,
                   "train/lr": optimizer.param_groups[0]["lr"],
                   "time/step_s": time.perf_counter() - started}
        metrics = reduce_metrics(metrics)  # the rank mean of sft/loss is the global token mean
        metrics.update(held_out_eval(self, self.evaluator, self.global_step))  # summed over ranks
        log_step_metrics(self, metrics, {"loss": metrics["sft/loss"]})

    def on_fit_start(self) -> None:
        auto_attention([self.policy], self.attention, self.device)
