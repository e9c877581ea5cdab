"""GRPOModule: the GRPO training step, as a recipe read top to bottom in ``training_step``:

1. sample, 2. reward, 3. filter — ``RolloutCollector.collect`` (it samples again while filters
   drop groups; with β > 0 the reference model's log-probs are computed while the rewards are
   scored, in other threads);
4. advantage — each completion's, from its group's rewards (the advantage plugin);
5. π_old and π_ref log-probs, once per rollout — into a ``PolicyBatch`` (``grpo_batch``);
6. μ updates (``algo.iterations``) — one optimizer step each (``grpo_update``);
7. log — the metrics of all μ updates combined, with the rollout's, over every rank.

On several devices (``trainer.devices``, ``trainer.strategy``, ``trainer.num_nodes``) every rank
samples, scores and learns from its own groups (``PromptStream`` gives each rank its own stride
of prompts, so a group never straddles ranks) and the strategy averages the gradients over
ranks; ``accumulate_gradients`` scales each rank's loss so that the average is exactly the
gradient over the union of every rank's groups, and metrics are combined over ranks
(``reduce_metrics``) before they are logged.
"""

from __future__ import annotations

import time

import torch

from r1kit.algo.advantages import compute_advantages
from r1kit.models import lora
from r1kit.models.attention import auto_attention
from r1kit.run.errors import RunStopped
from r1kit.run.samples import log_sample_table, sample_rows
from r1kit.samplers.base import sampler_capabilities
from r1kit.stages.module_common import (Backprop, PolicyTrainingModule, gather_objects,
                                        held_out_eval, log_step_metrics, nanmean, rank_state,
                                        reduce_metrics, save_rank_states)
from r1kit.stages.grpo.batch import (active_rows, batch_logprobs, behaviour_source,
                                       correction_weights, engine_mismatch, padded_reference,
                                       sampler_logprobs_kind, sampler_logprobs_tensor,
                                       token_layout)
from r1kit.stages.grpo.update import accumulate_gradients, combine_updates


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


class SkippedSteps:
    """Counts the steps in a row that ended with nothing to learn on any rank, and stops the
    run at ``limit`` (``algo.max_skipped_steps``). Not checkpointed: a resumed run counts
    afresh."""

    def __init__(self, limit: int, filters: list[str]):
        self.limit, self.filters, self.in_a_row = limit, filters, 0

    def record(self, skipped: bool, stats: dict) -> None:
        self.in_a_row = self.in_a_row + 1 if skipped else 0
        if self.in_a_row >= self.limit:
            raise NothingToLearnError(nothing_to_learn_message(self.in_a_row, stats,
                                                               self.filters))


class GRPOModule(PolicyTrainingModule):
    def __init__(self, *, policy, reference, tokenizer, collector, stream, advantage, cfg,
                 evaluator=None, sample_writer=None, hooks=None, pipelined=None):
        super().__init__(policy=policy, stream=stream, optim_cfg=cfg.optim)
        # The reference (a FrozenReference, or None: β = 0, or LoRA's base) is frozen and
        # rebuilt from the initial weights on resume, so it is kept out of the module tree: not
        # in checkpoints, not wrapped by DDP/FSDP/DeepSpeed (every rank has a whole copy, in
        # eval mode, on its own device: see on_fit_start).
        self._reference = reference
        self.tokenizer, self.collector = tokenizer, collector
        self.advantage_fn, self.advantage_options = advantage
        self.algo, self.sampler_cfg = cfg.algo, cfg.sampler
        self.batch_size = cfg.data.batch_size
        self.attention = cfg.model.attn_implementation
        self.evaluator, self.sample_writer, self.hooks = evaluator, sample_writer, hooks
        self.skipped_steps = SkippedSteps(self.algo.max_skipped_steps,
                                          [f.name for f in collector.filters])
        self.capabilities = sampler_capabilities(collector.sampler)
        if self.algo.iterations > 1 and self.capabilities.exact_logprobs:
            collector.sampler.request_logprobs(True)  # π_old without a forward pass
        #: ``algo.async_rollouts``: the next step's rollout is sampled while this one trains
        self.pipelined = pipelined

    @property
    def reference(self):
        """The reference model held between passes; None without one or when offloaded."""
        return self._reference.resident if self._reference is not None else None

    # ------------------------------------------------------------------ the step, top to bottom
    def training_step(self, batch, batch_idx):
        started = time.perf_counter()
        rollout, stats = self._collect()  # 1-3. sample → reward → filter
        stats["time/sample_s"] = time.perf_counter() - started
        if self._skip_step(rollout, stats):
            return None
        # from here on ``rollout`` is None on a rank that kept no group while others did: it
        # joins every update (and every collective) with nothing to learn
        advantages = self._advantages(rollout)  # 4.
        policy_batch, mismatch = self._policy_batch(rollout, advantages)  # 5. π_old, π_ref
        updates = [self._update(policy_batch) for _ in range(self.algo.iterations)]  # 6.
        metrics = {**combine_updates(updates), **stats, **mismatch,  # 7.
                   **self._rollout_metrics(rollout, advantages, time.perf_counter() - started)}
        if self.pipelined is None:  # pipelined: synced before each launch instead
            self.collector.sampler.sync_weights(self.policy)
        self._after_step(rollout, advantages, metrics)
        return None

    def _collect(self):
        args = (self.stream, self.batch_size, self.algo.group_size, self.algo.max_refill_rounds)
        if self.pipelined is None:
            return self.collector.collect(
                *args, while_scoring=self._reference_while_scoring if self.algo.beta > 0 else None)
        # no rollout for a step that will not run (each step makes μ optimizer steps)
        max_steps = self.trainer.max_steps
        last = max_steps is not None and max_steps >= 0 and \
            self.global_step + self.algo.iterations >= max_steps
        rollout, stats = self.pipelined.next(self.policy, *args, launch=not last)
        if rollout is not None and rollout.sampler_logprobs is None:
            raise RuntimeError(
                "algo.async_rollouts: the sampler reported no log-probs, and a pipelined "
                "rollout's π_old must be its sampling policy's own (the hf sampler has them on "
                "its fast path: Qwen2/Qwen3/Llama models with sampler.fast_decode=true, not "
                "LoRA-wrapped; vllm always); use such a sampler or algo.async_rollouts=false")
        return rollout, stats
    def _skip_step(self, rollout, stats) -> bool:
        """Ranks must step together: the step is skipped (and logged as such) only when no
        rank has a group left; too many in a row stop the run (``NothingToLearnError``)."""
        skipped = self.trainer.strategy.reduce_boolean_decision(rollout is None, all=True)
        if skipped:
            log_step_metrics(self, reduce_metrics({**stats, "train/skipped": 1.0}), {})
        self.skipped_steps.record(skipped, stats)  # every rank alike: the decision is shared
        return skipped

    def _advantages(self, rollout):
        """Each completion's advantage from its group's rewards; plugins then observe the
        finished rollout (``r1kit_on_rollout``)."""
        if rollout is None:
            return None
        # the reward specs' weights matter only to estimators of each reward's own scores
        advantages = compute_advantages(self.advantage_fn, rollout, self.advantage_options,
                                        getattr(self.collector, "rewards", ()))
        if self.hooks is not None:
            self.hooks.r1kit_on_rollout(rollout=rollout, step=self.global_step)
        return advantages

    def _policy_batch(self, rollout, advantages):
        """The rollout as the loss sees it, with π_old's and π_ref's log-probs computed once
        for all μ updates; and the ``sampler/*`` metrics of an engine sampler (vLLM), whose
        log-probs are compared with the trainer's π_old every step (and corrected, with
        ``importance_correction: tis``). ``(None, {})`` for a rank with no rollout."""
        if rollout is None:
            return None, {}
        batch = self._layout(rollout)
        batch.mask = batch.mask * rollout.loss_weights.to(self.device).unsqueeze(1)
        batch.advantages = advantages.to(self.device)
        kind = sampler_logprobs_kind(rollout,
                                     autocast=torch.is_autocast_enabled(self.device.type))
        sampled = None if kind == "none" else sampler_logprobs_tensor(
            rollout, batch.mask.size(1), self.device)
        batch.old_logp = self._behaviour_logprobs(batch, kind, sampled)
        if self.algo.beta > 0:
            batch.ref_logp = self._reference_logprobs(batch, rollout)
        if kind != "engine":
            return batch, {}
        batch.is_weights = correction_weights(self.capabilities, sampled, batch.old_logp,
                                              batch.mask)
        return batch, engine_mismatch(sampled, batch.old_logp, batch.mask, batch.is_weights)

    def _behaviour_logprobs(self, batch, kind: str, sampled):
        """log π_old, from where ``behaviour_source`` says (None: the update's own, detached)."""
        source = behaviour_source(self.algo.iterations, kind,
                                  pipelined=self.pipelined is not None)
        if source == "current":
            return None
        if source == "sampler":
            return torch.where(batch.mask != 0, sampled, 0.0)
        # a forward pass: over the rows the updates compute, or over every row when they are
        # all compared with an engine's log-probs
        rows = None if kind == "engine" else active_rows(batch, self.algo)
        return self._logprobs(self.policy, batch, rows)

    def _reference_logprobs(self, batch, rollout):
        if rollout.reference_logprobs is not None:  # computed while the rewards were scored
            return padded_reference(rollout.reference_logprobs, batch.mask)
        return self._reference_pass(batch)

    def _reference_pass(self, batch):
        if self._reference is not None:
            with self._reference.use() as reference:
                return self._logprobs(reference, batch)
        with lora.reference_pass(self.policy):  # LoRA: the base weights, adapters off
            return self._logprobs(self.policy, batch)

    def _update(self, batch) -> dict:
        """One optimizer step over the whole rollout (``None``: this rank has none)."""
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        terms = accumulate_gradients(
            self.policy, batch, self.algo, temperature=self.sampler_cfg.temperature,
            max_completion_length=self.sampler_cfg.max_new_tokens, backprop=Backprop.of(self),
            device=self.device)
        grad_norm = self._clip_and_step(optimizer)
        return {**{f"train/{k}": v for k, v in terms.items()}, "train/grad_norm": grad_norm,
                "train/lr": optimizer.param_groups[0]["lr"]}

    # ------------------------------------------------------------------ log-prob passes
    def _reference_while_scoring(self, rollout) -> None:
        """The reference model's log-probs of a freshly sampled rollout, computed while its
        rewards are scored in other threads (the reference does not depend on them); filters
        then keep the rows of the groups they keep."""
        # kept on the CPU like the rest of the rollout, which is pickled to rank 0 for samples
        full = self._reference_pass(self._layout(rollout)).cpu()
        rollout.reference_logprobs = [full[i, :len(c)]
                                      for i, c in enumerate(rollout.completion_ids)]

    def _layout(self, rollout):
        return token_layout(rollout, self.tokenizer.pad_token_id, self.device)

    def _logprobs(self, model, batch, rows=None):
        return batch_logprobs(model, batch, rows, algo=self.algo,
                              temperature=self.sampler_cfg.temperature)

    # ---------------------------------------------------------------------------- bookkeeping
    def _rollout_metrics(self, rollout, advantages, step_seconds: float) -> dict:
        metrics = {"time/step_s": step_seconds}
        if rollout is None:
            return {**metrics, "train/skipped_ranks": 1.0}
        tokens = sum(map(len, rollout.completion_ids))
        metrics.update({
            "reward/mean": float(rollout.rewards.mean()),
            "reward/std": float(rollout.rewards.std()) if len(rollout) > 1 else 0.0,
            "advantage/abs_mean": float(advantages.abs().mean()),
            "completion/length": tokens / len(rollout),
            "completion/truncated_frac": float(rollout.truncated.float().mean()),
            "throughput/tokens_per_s": tokens / max(step_seconds, 1e-9)})
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
        if self.evaluator is not None and self.evaluator.due(step):
            if self.pipelined is not None:  # the eval's sampler may be the background one's
                self.pipelined.drain()
            metrics.update(held_out_eval(self, self.evaluator, step))  # summed over ranks
        if self.hooks is not None:
            self.hooks.r1kit_on_train_step_end(metrics=metrics, step=step)
        log_step_metrics(self, metrics, {"reward": metrics["reward/mean"]}
                         if "reward/mean" in metrics else {})
        last = self.trainer.max_steps is not None and step >= self.trainer.max_steps
        if self.sample_writer is not None and self.sample_writer.due(step, last=last):
            self._write_samples(step, rollout, advantages)

    def _write_samples(self, step, rollout, advantages) -> None:
        """Rank 0 writes every rank's completions (to samples.jsonl and as the trackers'
        ``samples`` table); group ids are made unique over ranks."""
        parts = gather_objects((rollout, advantages))
        if not self.trainer.is_global_zero:
            return
        rows, offset = [], 0
        for part, part_advantages in parts:
            if part is None:
                continue
            rows += sample_rows(part, part_advantages, step=step, group_offset=offset)
            offset += int(part.group_ids.max()) + 1
        self.sample_writer.write(rows)
        log_sample_table(self.loggers, "samples", rows, step)

    def on_save_checkpoint(self, checkpoint) -> None:
        # the rollout in flight first: the stream position and RNG states saved next are
        # those after it, and it is stored, so a resumed run trains on it as this one will
        inflight = self.pipelined.state_dict() if self.pipelined is not None else None
        super().on_save_checkpoint(checkpoint)
        if self.pipelined is not None:
            save_rank_states(checkpoint, "r1kit_inflight",
                             {"world_size": self.trainer.world_size, "state": inflight})

    def on_load_checkpoint(self, checkpoint) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.pipelined is not None:
            saved = rank_state(checkpoint, "r1kit_inflight", self.global_rank,
                               self.trainer.world_size)
            # another number of ranks splits the prompts differently: sample afresh
            same = saved is not None and saved["world_size"] == self.trainer.world_size
            self.pipelined.load_state_dict(saved["state"] if same else None)

    def on_fit_end(self) -> None:
        if self.pipelined is not None:
            self.pipelined.close()

    def on_fit_start(self) -> None:
        if self._reference is not None:
            self._reference.setup(self.trainer, self.device, self.attention)
        auto_attention([self.policy], self.attention, self.device)
