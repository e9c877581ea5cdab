"""GRPOModule: one training step = sample → reward → filter → advantage → μ policy updates."""

from __future__ import annotations

import time

import lightning as L
import torch

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.algo.loss import policy_loss
from r1kit.algo.microbatch import group_chunks, share
from r1kit.trainers.common import OptimizerMixin, RNGStateMixin, nanmean


class GRPOModule(RNGStateMixin, OptimizerMixin, L.LightningModule):
    def __init__(self, *, policy, reference, tokenizer, collector, stream, advantage, cfg,
                 evaluator=None, sample_writer=None, hooks=None):
        super().__init__()
        self.automatic_optimization = False  # μ updates per rollout: we step the optimizer
        self.policy = policy
        # The reference is frozen and rebuilt from the initial weights on resume, so it is kept
        # out of the module tree: not in checkpoints, not wrapped by DDP.
        self._reference = [reference] if reference is not None else []
        self.tokenizer, self.collector, self.stream = tokenizer, collector, stream
        self.advantage_fn, self.advantage_options = advantage
        self.algo, self.optim_cfg, self.sampler_cfg = cfg.algo, cfg.optim, cfg.sampler
        self.batch_size = cfg.data.batch_size
        self.evaluator, self.sample_writer, self.hooks = evaluator, sample_writer, hooks

    # ------------------------------------------------------------------ the step, top to bottom
    def training_step(self, batch, batch_idx):
        started = time.perf_counter()
        rollout, stats = self.collector.collect(self.stream, self.batch_size,
                                                self.algo.group_size, self.algo.max_refill_rounds)
        sample_seconds = time.perf_counter() - started
        if rollout is None:  # every group filtered out: nothing to learn from this batch
            self.log_dict({**stats, "train/skipped": 1.0}, on_step=True)
            return None
        advantages = self.advantage_fn(rollout.rewards, rollout.group_ids,
                                       **self.advantage_options)
        if self.hooks is not None:
            self.hooks.r1kit_on_rollout(rollout=rollout, step=self.global_step)
        batch = self._prepare(rollout, advantages)
        for _ in range(self.algo.iterations):
            metrics = self._update(batch)
        metrics.update(stats)
        metrics.update(self._rollout_metrics(rollout, advantages))
        metrics["time/sample_s"] = sample_seconds
        metrics["time/step_s"] = time.perf_counter() - started
        tokens = sum(map(len, rollout.completion_ids))
        metrics["throughput/tokens_per_s"] = tokens / max(metrics["time/step_s"], 1e-9)
        self.collector.sampler.sync_weights(self.policy)
        self._after_step(rollout, advantages, metrics)
        return None

    def _prepare(self, rollout, advantages):
        """Tensors for the loss, and π_old / π_ref log-probs computed once per rollout."""
        ids, attention, positions, mask = pack(rollout.prompt_ids, rollout.completion_ids,
                                               self.tokenizer.pad_token_id, self.device)
        mask = mask * rollout.loss_weights.to(self.device).unsqueeze(1)
        batch = {"ids": ids, "attention": attention, "positions": positions, "mask": mask,
                 "advantages": advantages.to(self.device),
                 "group_ids": rollout.group_ids.to(self.device), "old_logp": None,
                 "ref_logp": None}
        # With μ = 1, π_old is the current policy: old_logp = logp.detach() in the loss, so
        # no extra forward pass. With μ > 1 the policy moves between updates, so keep it.
        if self.algo.iterations > 1:
            batch["old_logp"] = self._logprobs(self.policy, batch)
        if self.algo.beta > 0:
            batch["ref_logp"] = self._logprobs(self._reference[0], batch)
        return batch

    @torch.no_grad()
    def _logprobs(self, model, batch):
        out = []
        for rows in group_chunks(batch["group_ids"], self.algo.micro_batch_size):
            logp, _ = completion_logprobs(model, batch["ids"][rows], batch["attention"][rows],
                                          batch["positions"][rows], batch["mask"][rows],
                                          temperature=self.sampler_cfg.temperature)
            out.append((rows, logp))
        full = torch.zeros_like(batch["mask"])
        for rows, logp in out:
            full[rows] = logp
        return full

    def _update(self, batch) -> dict:
        """One optimizer step over the whole rollout, in micro-batches of whole groups."""
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for rows in group_chunks(batch["group_ids"], self.algo.micro_batch_size):
            mask = batch["mask"][rows]
            logp, entropy = completion_logprobs(
                self.policy, batch["ids"][rows], batch["attention"][rows],
                batch["positions"][rows], mask, with_entropy=True,
                temperature=self.sampler_cfg.temperature)
            old = logp.detach() if batch["old_logp"] is None else batch["old_logp"][rows]
            ref = None if batch["ref_logp"] is None else batch["ref_logp"][rows]
            out = policy_loss(
                logp, old, ref, batch["advantages"][rows], mask, batch["group_ids"][rows],
                epsilon=self.algo.epsilon, epsilon_high=self.algo.epsilon_high,
                beta=self.algo.beta, kl_estimator=self.algo.kl_estimator,
                ratio_level=self.algo.ratio_level, aggregation=self.algo.aggregation,
                max_completion_length=self.sampler_cfg.max_new_tokens)
            weight = share(self.algo.aggregation, mask, batch["mask"], batch["group_ids"][rows],
                           batch["group_ids"])
            self.manual_backward(out.loss * weight)
            valid = mask.sum().clamp(min=1)
            for key, value in (("loss", out.loss), ("surrogate", out.surrogate), ("kl", out.kl),
                               ("clip_low_frac", out.clip_low_frac),
                               ("clip_high_frac", out.clip_high_frac),
                               ("ratio_mean", out.ratio_mean),
                               ("entropy", (entropy.sum() / valid))):
                totals[key] = totals.get(key, 0.0) + float(value.detach()) * weight
        grad_norm = self._clip_and_step(optimizer)
        return {**{f"train/{k}": v for k, v in totals.items()}, "train/grad_norm": grad_norm,
                "train/lr": optimizer.param_groups[0]["lr"]}

    # ---------------------------------------------------------------------------- bookkeeping
    def _rollout_metrics(self, rollout, advantages) -> dict:
        metrics = {"reward/mean": float(rollout.rewards.mean()),
                   "reward/std": float(rollout.rewards.std()) if len(rollout) > 1 else 0.0,
                   "advantage/abs_mean": float(advantages.abs().mean()),
                   "completion/length": sum(map(len, rollout.completion_ids)) / len(rollout),
                   "completion/truncated_frac": float(rollout.truncated.float().mean())}
        for name, values in rollout.reward_parts.items():
            metrics[f"reward/{name}"] = nanmean(values)
        if "accuracy" in rollout.reward_parts:
            metrics["accuracy"] = metrics["reward/accuracy"]
        for name, count in self.collector.reward_errors.items():
            metrics[f"reward_errors/{name}"] = float(count)
        return metrics

    def _after_step(self, rollout, advantages, metrics) -> None:
        step = self.global_step
        if self.evaluator is not None and self.evaluator.due(step):
            metrics.update(self.evaluator.run(step))
        if self.hooks is not None:
            self.hooks.r1kit_on_train_step_end(metrics=metrics, step=step)
        self.log_dict(metrics, on_step=True, prog_bar=False, sync_dist=False)
        self.log("reward", metrics["reward/mean"], prog_bar=True, on_step=True)
        if self.sample_writer is not None and self.sample_writer.due(step):
            self.sample_writer.write(step, rollout, advantages)

    def train_dataloader(self):
        # The module draws prompts from its own resumable stream; the loader only ticks steps.
        return torch.utils.data.DataLoader(_Ticks(), batch_size=None)

    def on_save_checkpoint(self, checkpoint) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["r1kit_stream"] = self.stream.state_dict()

    def on_load_checkpoint(self, checkpoint) -> None:
        super().on_load_checkpoint(checkpoint)
        self.stream.load_state_dict(checkpoint["r1kit_stream"])

    def on_fit_start(self) -> None:
        if self._reference:
            self._reference[0].to(self.device)


class _Ticks(torch.utils.data.IterableDataset):
    def __iter__(self):
        step = 0
        while True:
            yield step
            step += 1
