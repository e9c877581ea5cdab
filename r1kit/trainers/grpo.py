"""GRPOModule: one training step = sample → reward → filter → advantage → μ policy updates.

On several devices (``trainer.devices``, ``trainer.strategy``, ``trainer.num_nodes``) every rank
samples, scores and learns from its own groups (``PromptStream`` gives each rank its own stride
of prompts, so a group never straddles ranks) and the strategy averages the gradients over
ranks. ``accumulate_gradients`` scales each rank's loss so that average is exactly the gradient
of the loss over the union of every rank's groups, and logged metrics are combined over ranks
(``reduce_metrics``) before they are logged.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import lightning as L
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.algo.loss import policy_loss
from r1kit.algo.microbatch import AGGREGATION_UNITS, group_chunks, learning_rows, share
from r1kit.models.attention import auto_attention
from r1kit.run.errors import RunStopped
from r1kit.sampling import sampler_capabilities
from r1kit.samplers.mismatch import importance_weights, logprob_mismatch, sampler_logprob_tensor
from r1kit.trainers.common import (OptimizerMixin, PromptStreamMixin, gather_objects,
                                   log_step_metrics, nanmean, no_sync_context, reduce_metrics,
                                   sum_over_ranks)


class NothingToLearnError(RunStopped):
    """Too many steps in a row ended with every group filtered out."""


def nothing_to_learn_message(steps: int, stats: dict, filters: list[str]) -> str:
    """Why a run stopped after ``steps`` steps in a row without a group left, and what to
    check: the filters named, and the usual cause (equal rewards in every group)."""
    sampled = int(stats.get("rollout/sampled_groups", 0))
    rounds = int(stats.get("rollout/refill_rounds", 0)) + 1
    return (f"{steps} training steps in a row had no group left to learn from: the filters "
            f"({', '.join(filters) or 'none'}) dropped all {sampled} groups sampled in "
            f"{rounds} round(s) of the last step. With zero_variance (DAPO dynamic sampling) "
            "this means every completion of every prompt got the same reward: the model never "
            "(or always) solves these prompts. Check that the reward can be earned (look at "
            "samples.jsonl and reward/* in metrics.csv: is the answer extracted, is the format "
            "reachable from the prompt template?), the prompts' difficulty, "
            "sampler.temperature and sampler.max_new_tokens; algo.max_refill_rounds samples "
            "more per step, algo.max_skipped_steps sets this limit")


def microbatch_loss(policy, batch: dict, rows, algo, *, temperature: float,
                    max_completion_length: int):
    """−J over the rows ``rows`` (whole groups) of ``batch``, and its terms for logging.

    ``batch`` holds ``ids``, ``attention``, ``positions``, ``mask``, ``advantages``,
    ``group_ids``, ``old_logp`` (None: π_old is the current policy) and ``ref_logp`` (None when
    β = 0), as ``GRPOModule._prepare`` builds them.
    """
    mask = batch["mask"][rows]
    logp, entropy = completion_logprobs(
        policy, batch["ids"][rows], batch["attention"][rows], batch["positions"][rows], mask,
        with_entropy=True, temperature=temperature)
    old = logp.detach() if batch["old_logp"] is None else batch["old_logp"][rows]
    ref = None if batch["ref_logp"] is None else batch["ref_logp"][rows]
    out = policy_loss(
        logp, old, ref, batch["advantages"][rows], mask, batch["group_ids"][rows],
        epsilon=algo.epsilon, epsilon_high=algo.epsilon_high, beta=algo.beta,
        kl_estimator=algo.kl_estimator, ratio_level=algo.ratio_level,
        aggregation=algo.aggregation, max_completion_length=max_completion_length,
        token_weights=None if batch.get("is_weights") is None else batch["is_weights"][rows])
    terms = {"loss": out.loss, "surrogate": out.surrogate, "kl": out.kl,
             "clip_low_frac": out.clip_low_frac, "clip_high_frac": out.clip_high_frac,
             "ratio_mean": out.ratio_mean, "entropy": entropy.sum() / mask.sum().clamp(min=1)}
    return out.loss, {key: float(value.detach()) for key, value in terms.items()}


def accumulate_gradients(policy, batch: dict | None, algo, *, temperature: float,
                         max_completion_length: int, backward=None, no_sync=nullcontext,
                         sum_over_ranks=None, world_size: int = 1, device=None) -> dict:
    """Backpropagate −J over ``batch`` into ``policy``'s gradients, in micro-batches of whole
    groups; returns the loss terms, weighted like the loss.

    Each micro-batch loss is weighted by its share of the batch's aggregation units (groups for
    ``grpo``, valid tokens for ``token_mean``, valid sequences for ``constant``), so the summed
    gradient is that of the whole batch. With ``world_size`` ranks whose gradients the strategy
    *averages* (DDP, FSDP, DeepSpeed), each rank's loss is further scaled by
    ``world_size · U_rank / U_global`` (U_global = ``sum_over_ranks(U_rank)``): the average is then
    the gradient of the aggregation over the union of all ranks' batches, even when ranks hold
    different numbers of tokens (token_mean, constant) or of groups (filters). Without this, a
    plain DDP average of per-rank token means is not the global token mean.

    Every micro-batch but the last runs under ``no_sync()`` (DDP all-reduces once per call, not
    once per micro-batch), so every rank makes exactly one synchronising ``backward`` whatever
    its number of micro-batches. A rank with nothing to learn (``batch`` None, or every group
    skipped) backpropagates a zero loss through the policy, joining that all-reduce with zero
    gradients. With β = 0, groups whose advantages are all zero are skipped (``active_rows``):
    the gradient is unchanged and their passes are saved.

    :param backward: ``fn(loss)``; ``LightningModule.manual_backward`` in training.
    :param no_sync: context factory that suspends the gradient all-reduce.
    :param sum_over_ranks: ``fn(float) -> float``, the sum over ranks (identity by default).
    :param device: where the policy lives (needed when ``batch`` is None).
    """
    backward = backward or torch.Tensor.backward
    unit = AGGREGATION_UNITS[algo.aggregation]
    local = unit(batch["mask"], batch["group_ids"]) if batch is not None else 0.0
    total = sum_over_ranks(local) if sum_over_ranks is not None else local
    scale = world_size * local / total if total else 0.0
    rows = None if batch is None else active_rows(batch, algo)
    if rows is None or rows.numel() == 0:
        ids = torch.zeros((1, 1), dtype=torch.long, device=device)
        backward(policy(input_ids=ids, use_cache=False).logits.sum() * 0.0)
        return {} if batch is None else {"loss": 0.0, "surrogate": 0.0, "kl": 0.0,
                                         "skipped_rows_frac": scale}
    chunks = [rows[c] for c in group_chunks(batch["group_ids"][rows], algo.micro_batch_size)]
    totals: dict[str, float] = {}
    computed = 0.0  # the share of the loss actually computed (< scale when groups are skipped)
    for index, chunk in enumerate(chunks):
        weight = scale * share(algo.aggregation, batch["mask"][chunk], batch["mask"],
                               batch["group_ids"][chunk], batch["group_ids"])
        with nullcontext() if index == len(chunks) - 1 else no_sync():
            loss, terms = microbatch_loss(policy, batch, chunk, algo, temperature=temperature,
                                          max_completion_length=max_completion_length)
            backward(loss * weight)
        computed += weight
        for key, value in terms.items():
            totals[key] = totals.get(key, 0.0) + value * weight
    # loss, surrogate and KL are exact as summed (skipped groups contribute exactly 0); the
    # per-token statistics describe the groups that were computed
    for key in ("clip_low_frac", "clip_high_frac", "ratio_mean", "entropy"):
        totals[key] *= scale / computed if computed else 0.0
    skipped = 1.0 - rows.numel() / batch["mask"].size(0)
    totals["skipped_rows_frac"] = skipped * scale
    return totals


def active_rows(batch: dict, algo) -> torch.Tensor:
    """Indices of the rows whose forward/backward can change the update: all of them, except
    that with β = 0 and ``algo.skip_zero_advantage`` the groups with only zero advantages are
    left out (their loss is exactly 0; see ``learning_rows``)."""
    n = batch["mask"].size(0)
    if algo.beta != 0 or not algo.skip_zero_advantage:
        return torch.arange(n, device=batch["mask"].device)
    keep = learning_rows(batch["advantages"], batch["mask"], batch["group_ids"])
    return keep.nonzero().squeeze(1)


#: Lightning's mixed precisions -> the dtype autocast computes in.
MIXED_PRECISION_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class GRPOModule(PromptStreamMixin, OptimizerMixin, L.LightningModule):
    def __init__(self, *, policy, reference, tokenizer, collector, stream, advantage, cfg,
                 evaluator=None, sample_writer=None, hooks=None):
        super().__init__()
        self.automatic_optimization = False  # μ updates per rollout: we step the optimizer
        self.policy = policy
        # The reference is frozen and rebuilt from the initial weights on resume, so it is kept
        # out of the module tree: not in checkpoints, not wrapped by DDP/FSDP/DeepSpeed (every
        # rank holds a whole copy, in eval mode, on its own device: see on_fit_start).
        self._reference = [reference] if reference is not None else []
        self.tokenizer, self.collector, self.stream = tokenizer, collector, stream
        self.advantage_fn, self.advantage_options = advantage
        self.algo, self.optim_cfg, self.sampler_cfg = cfg.algo, cfg.optim, cfg.sampler
        self.batch_size = cfg.data.batch_size
        self.attention = cfg.model.attn_implementation
        self.evaluator, self.sample_writer, self.hooks = evaluator, sample_writer, hooks
        self._skipped_in_a_row = 0  # steps that ended with nothing to learn (not checkpointed)
        capabilities = sampler_capabilities(collector.sampler)
        if self.algo.iterations > 1 and capabilities.exact_logprobs:
            collector.sampler.request_logprobs(True)  # π_old without a forward pass

    # ------------------------------------------------------------------ the step, top to bottom
    def training_step(self, batch, batch_idx):
        started = time.perf_counter()
        rollout, stats = self.collector.collect(
            self.stream, self.batch_size, self.algo.group_size, self.algo.max_refill_rounds,
            while_scoring=self._reference_while_scoring if self.algo.beta > 0 else None)
        sample_seconds = time.perf_counter() - started
        # Ranks must step together: the step is skipped only when no rank has a group left;
        # otherwise a rank whose groups were all filtered out joins the update with nothing.
        if self.trainer.strategy.reduce_boolean_decision(rollout is None, all=True):
            log_step_metrics(self, reduce_metrics({**stats, "train/skipped": 1.0}), {})
            self._skipped_in_a_row += 1  # every rank alike: the decision above is shared
            if self._skipped_in_a_row >= self.algo.max_skipped_steps:
                raise NothingToLearnError(nothing_to_learn_message(
                    self._skipped_in_a_row, stats, [f.name for f in self.collector.filters]))
            return None
        self._skipped_in_a_row = 0
        advantages = None
        if rollout is not None:
            advantages = self.advantage_fn(rollout.rewards, rollout.group_ids,
                                           **self.advantage_options)
            if self.hooks is not None:
                self.hooks.r1kit_on_rollout(rollout=rollout, step=self.global_step)
        batch = self._prepare(rollout, advantages) if rollout is not None else None
        for _ in range(self.algo.iterations):
            metrics = self._update(batch)
        metrics.update(stats)
        metrics["time/sample_s"] = sample_seconds
        metrics["time/step_s"] = time.perf_counter() - started
        if rollout is not None:
            metrics.update(batch["mismatch"])  # sampler vs trainer log-probs, when reported
            metrics.update(self._rollout_metrics(rollout, advantages))
            tokens = sum(map(len, rollout.completion_ids))
            metrics["throughput/tokens_per_s"] = tokens / max(metrics["time/step_s"], 1e-9)
        else:
            metrics["train/skipped_ranks"] = 1.0
        self.collector.sampler.sync_weights(self.policy)
        self._after_step(rollout, advantages, metrics)
        return None

    def _prepare(self, rollout, advantages):
        """Tensors for the loss, and π_old / π_ref log-probs computed once per rollout."""
        batch = self._packed(rollout)
        mask = batch["mask"] = batch["mask"] * rollout.loss_weights.to(self.device).unsqueeze(1)
        batch.update(advantages=advantages.to(self.device), old_logp=None, ref_logp=None)
        # With μ = 1, π_old is the current policy: old_logp = logp.detach() in the loss, so
        # no extra forward pass. With μ > 1 the policy moves between updates, so π_old is kept:
        # taken from the sampler when it reports the policy's own log-probs (the in-process HF
        # sampler), else computed by one forward pass. A sampler with its own engine (vLLM) is
        # compared against the trainer every step, and optionally corrected (TIS).
        sampler_lp = rollout.sampler_logprobs
        sampled = None if sampler_lp is None else sampler_logprob_tensor(
            sampler_lp, mask.size(1), device=self.device)
        batch["is_weights"], batch["mismatch"] = None, {}
        if sampled is not None and rollout.sampler_logprobs_exact:
            # under autocast the trainer's forward is not the sampler's computation any more
            if self.algo.iterations > 1 and not torch.is_autocast_enabled(self.device.type):
                batch["old_logp"] = torch.where(mask != 0, sampled, 0.0)
        elif self.algo.iterations > 1 or sampled is not None:
            # with β = 0 only the groups that will be trained need π_old (or, for the mismatch
            # report, every row)
            rows = active_rows(batch, self.algo) if sampled is None else None
            batch["old_logp"] = self._logprobs(self.policy, batch, rows)
        if self.algo.beta > 0:
            if rollout.reference_logprobs is not None:  # computed while rewards were scored
                ref = pad_sequence(rollout.reference_logprobs, batch_first=True)
                ref = F.pad(ref, (0, mask.size(1) - ref.size(1))).to(self.device)
                batch["ref_logp"] = torch.where(mask != 0, ref, 0.0)
            else:
                batch["ref_logp"] = self._logprobs(self._reference[0], batch)
        if sampled is not None and not rollout.sampler_logprobs_exact:
            batch["mismatch"] = {f"sampler/{k}": v for k, v in logprob_mismatch(
                sampled, batch["old_logp"], mask).items()}
            capabilities = sampler_capabilities(self.collector.sampler)
            if capabilities.importance_correction == "tis":
                batch["is_weights"] = importance_weights(sampled, batch["old_logp"], mask,
                                                         cap=capabilities.importance_cap)
        return batch

    def _reference_while_scoring(self, rollout) -> None:
        """The reference model's log-probs of a freshly sampled rollout, computed while its
        rewards are scored in other threads (the reference does not depend on them); filters
        then keep the rows of the groups they keep."""
        # kept on the CPU like the rest of the rollout, which is pickled to rank 0 for samples
        full = self._logprobs(self._reference[0], self._packed(rollout)).cpu()
        rollout.reference_logprobs = [full[i, :len(c)]
                                      for i, c in enumerate(rollout.completion_ids)]

    def _packed(self, rollout) -> dict:
        """The rollout's token layout for log-prob passes (``pack``), with its group ids."""
        ids, attention, positions, mask = pack(rollout.prompt_ids, rollout.completion_ids,
                                               self.tokenizer.pad_token_id, self.device)
        return {"ids": ids, "attention": attention, "positions": positions, "mask": mask,
                "group_ids": rollout.group_ids.to(self.device)}

    @torch.no_grad()
    def _logprobs(self, model, batch, rows=None):
        """Log-probs of the completions (all rows, or only ``rows``; 0 elsewhere), in
        micro-batches of whole groups."""
        rows = torch.arange(batch["mask"].size(0), device=self.device) if rows is None else rows
        full = torch.zeros_like(batch["mask"])
        for chunk in group_chunks(batch["group_ids"][rows], self.algo.micro_batch_size):
            chunk = rows[chunk]
            logp, _ = completion_logprobs(model, batch["ids"][chunk], batch["attention"][chunk],
                                          batch["positions"][chunk], batch["mask"][chunk],
                                          temperature=self.sampler_cfg.temperature)
            full[chunk] = logp
        return full

    def _update(self, batch) -> dict:
        """One optimizer step over the whole rollout (``None``: this rank has none)."""
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        strategy = self.trainer.strategy
        totals = accumulate_gradients(
            self.policy, batch, self.algo, temperature=self.sampler_cfg.temperature,
            max_completion_length=self.sampler_cfg.max_new_tokens,
            backward=self.manual_backward, no_sync=no_sync_context(strategy),
            sum_over_ranks=sum_over_ranks(strategy), world_size=self.trainer.world_size,
            device=self.device)
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
        # Every branch below that talks to other ranks is taken by every rank alike.
        step = self.global_step
        metrics = reduce_metrics(metrics)  # the same values on every rank from here on
        evaluator = self.evaluator
        if evaluator is not None and evaluator.every > 0 and step % evaluator.every == 0:
            metrics.update(reduce_metrics(evaluator.run(step), weight=len(evaluator.rows)))
        if self.hooks is not None:
            self.hooks.r1kit_on_train_step_end(metrics=metrics, step=step)
        log_step_metrics(self, metrics, {"reward": metrics["reward/mean"]}
                         if "reward/mean" in metrics else {})
        last = self.trainer.max_steps is not None and step >= self.trainer.max_steps
        if self.sample_writer is not None and self.sample_writer.due(step, last=last):
            self._write_samples(step, rollout, advantages)

    def _write_samples(self, step, rollout, advantages) -> None:
        """Rank 0 writes every rank's completions; group ids are made unique over ranks."""
        parts = gather_objects((rollout, advantages))
        if not self.trainer.is_global_zero:
            return
        offset = 0
        for part, part_advantages in parts:
            if part is None:
                continue
            self.sample_writer.write(step, part.replace(group_ids=part.group_ids + offset),
                                     part_advantages)
            offset += int(part.group_ids.max()) + 1

    def on_fit_start(self) -> None:
        # The reference follows the strategy as far as a frozen, unwrapped model can: on this
        # rank's device, in eval mode, cast like the policy for "-true" precisions. Under mixed
        # precision it is stored in the half dtype: it is never updated, so full-precision
        # master weights buy nothing, and autocast would otherwise re-cast every weight at
        # every forward (half the memory, and the forward runs on half-precision weights).
        if self._reference:
            plugin = self.trainer.precision_plugin
            reference = plugin.convert_module(self._reference[0])
            half = MIXED_PRECISION_DTYPES.get(str(getattr(plugin, "precision", "")))
            if half is not None:
                reference = reference.to(half)
            self._reference[0] = reference.to(self.device).eval()
        auto_attention([self.policy, *self._reference], self.attention, self.device)
