"""Sample → reward → filter: build one step's rollout, refilling when filters drop groups."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1kit.data.loading import render_prompt
from r1kit.models.loading import encode_visible, visible_prompt
from r1kit.rewards import accuracy
from r1kit.rewards.judge import counters as judge_counters
from r1kit.rewards.harness import RewardSpec, start_rewards
from r1kit.rollout.batch import Rollout


@dataclass
class FilterStep:
    name: str
    fn: object
    options: object  #: the filter's typed options (its schema instance)


#: the accuracy reward's counters (``r1kit.rewards.accuracy.COUNTERS``) -> the metric of a step's
#: count: how many of the step's samples (every refill round) were decided by the plain-number
#: fast path, by math-verify, or ran past ``reward.accuracy.sample_timeout`` (scored 0)
ACCURACY_COUNTER_METRICS = {"timeouts": "reward_timeouts/accuracy",
                            "fast_path": "reward_fast_path/accuracy",
                            "math_verify": "reward_math_verify/accuracy"}


def accuracy_counts(before: dict, after: dict) -> dict:
    """The ``ACCURACY_COUNTER_METRICS`` of the samples scored between two readings of
    ``accuracy.counters()``."""
    return {metric: float(after.get(key, 0) - before.get(key, 0))
            for key, metric in ACCURACY_COUNTER_METRICS.items()}


def reward_rows(rollout: Rollout) -> list[dict]:
    """The rows handed to rewards: each dataset row with ``rendered_prompt``, the prompt as the
    model saw it, so a reward judges the completion in context (see ``r1kit.data.response``)."""
    return [{**row, "rendered_prompt": prompt}
            for row, prompt in zip(rollout.examples, rollout.prompts, strict=True)]


class RolloutCollector:
    """Everything needed to turn prompts into a scored, filtered rollout."""

    def __init__(self, *, sampler, tokenizer, model_cfg, template: str,
                 rewards: list[RewardSpec], filters: list[FilterStep]):
        self.sampler, self.tokenizer, self.model_cfg = sampler, tokenizer, model_cfg
        self.template, self.rewards, self.filters = template, rewards, filters
        self.reward_errors: dict[str, int] = {}
        self.scores_accuracy = any(spec.name == "accuracy" for spec in rewards)
        self.scores_judge = any(spec.name == "judge" for spec in rewards)

    def sample(self, rows: list[dict], num_samples: int, *, greedy: bool = False,
               while_scoring=None) -> Rollout:
        """``num_samples`` scored completions per row (no filters). ``while_scoring(rollout)``
        runs while the rewards are computed (in their own threads): work that needs the
        completions but not their scores, such as the reference model's log-probs."""
        prompts = [visible_prompt(self.tokenizer, render_prompt(row, self.template),
                                  self.model_cfg) for row in rows]
        prompt_ids = [encode_visible(self.tokenizer, p) for p in prompts]
        generation = self.sampler.generate(prompt_ids, num_samples, greedy=greedy)
        ids = generation.completion_ids
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=False)
        eos = self.tokenizer.eos_token or ""
        texts = [t[: -len(eos)] if eos and t.endswith(eos) else t for t in texts]
        repeat = lambda xs: [x for x in xs for _ in range(num_samples)]  # noqa: E731
        rollout = Rollout(
            examples=repeat(rows), prompts=repeat(prompts), completions=texts,
            prompt_ids=repeat(prompt_ids), completion_ids=ids,
            group_ids=torch.arange(len(rows)).repeat_interleave(num_samples),
            truncated=torch.tensor(generation.truncated, dtype=torch.bool),
            sampler_logprobs=generation.logprobs,
            sampler_logprobs_exact=generation.logprobs_exact)
        pending = start_rewards(self.rewards, rollout.completions, reward_rows(rollout))
        if while_scoring is not None:
            while_scoring(rollout)
        return self._scored(rollout, pending.result())

    def _scored(self, rollout: Rollout, scores) -> Rollout:
        for name, count in scores.errors.items():
            self.reward_errors[name] = self.reward_errors.get(name, 0) + count
        nan = float("nan")
        rollout.reward_parts = {
            name: torch.tensor([nan if v is None else float(v) for v in values])
            for name, values in scores.parts.items()}
        rollout.rewards = torch.tensor(scores.total, dtype=torch.float32)
        return rollout

    def apply_filters(self, rollout: Rollout) -> Rollout:
        for step in self.filters:
            rollout = step.fn(rollout, step.options)
        return rollout

    def collect(self, stream, num_prompts: int, group_size: int, max_refill_rounds: int,
                while_scoring=None):
        """A filtered rollout of up to ``num_prompts`` groups; refills while filters drop
        groups, at most ``max_refill_rounds`` extra sampling rounds. Returns (rollout, stats);
        with the accuracy reward, stats count its samples' verdicts (``accuracy_counts``), with
        the judge its calls, cache hits and failures (``judge_counts``).
        ``while_scoring`` is passed to :meth:`sample` for every round."""
        counted, judged = accuracy.counters(), judge_counters.counters()
        kept, groups, sampled_groups, rounds = [], 0, 0, 0
        while groups < num_prompts and rounds <= max_refill_rounds:
            rows = stream.take(num_prompts - groups if rounds else num_prompts)
            raw = self.sample(rows, group_size, while_scoring=while_scoring)
            sampled_groups += len(rows)
            filtered = self.apply_filters(raw)
            if len(filtered):
                kept.append(filtered)
                groups += filtered.num_groups
            rounds += 1
        stats = {"rollout/sampled_groups": sampled_groups, "rollout/kept_groups": groups,
                 "rollout/refill_rounds": rounds - 1}
        if self.scores_accuracy:
            stats.update(accuracy_counts(counted, accuracy.counters()))
        if self.scores_judge:
            stats.update(judge_counters.judge_counts(judged, judge_counters.counters()))
        if not kept:
            return None, stats
        rollout = Rollout.concat(kept) if len(kept) > 1 else kept[0]
        return rollout, stats
