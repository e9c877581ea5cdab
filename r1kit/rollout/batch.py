"""The rollout: one batch of sampled completions with their rewards, as filters and losses see it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class Rollout:
    """N completions, grouped by prompt (``group_ids``), with everything computed about them.

    Per-completion lists and tensors all have length N and the same order. ``examples[i]`` is
    the dataset row of completion ``i`` and ``prompts[i]`` its prompt as the model saw it
    (template applied; rewards get it as ``rendered_prompt``). ``reward_parts`` keeps
    each reward on its own (NaN where the reward returned ``None``); ``rewards`` is their
    weighted total. ``loss_weights`` lets a filter mask a completion out of the loss (0) without
    removing it from its group's statistics.

    It is part of the plugin API (``r1kit.api.Rollout``): filters receive and return one, and
    ``r1kit_on_rollout`` observes it. A filter returns a new one made with :meth:`select` or
    :meth:`replace` and never modifies the one it was given (nor its tensors) in place.
    """

    examples: list[dict]
    prompts: list[str]
    completions: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    group_ids: torch.Tensor  # long (N,)
    truncated: torch.Tensor  # bool (N,): stopped by max_new_tokens, not by EOS
    rewards: torch.Tensor = None  # float (N,)
    reward_parts: dict[str, torch.Tensor] = field(default_factory=dict)
    loss_weights: torch.Tensor = None  # float (N,)
    sampler_logprobs: list[list[float]] | None = None  # the sampler's own log-probs, if it has them
    #: the sampler's log-probs are the policy's own (``Generation.logprobs_exact``)
    sampler_logprobs_exact: bool = False
    #: log π_ref of each completion's tokens, when the trainer computed them while the rewards
    #: were being scored (``RolloutCollector.collect(while_scoring=...)``)
    reference_logprobs: list[torch.Tensor] | None = None

    def __post_init__(self) -> None:
        n = len(self.completions)
        if self.rewards is None:
            self.rewards = torch.zeros(n)
        if self.loss_weights is None:
            self.loss_weights = torch.ones(n)

    def __len__(self) -> int:
        return len(self.completions)

    @property
    def num_groups(self) -> int:
        return int(torch.unique(self.group_ids).numel())

    def select(self, indices: Sequence[int] | torch.Tensor) -> "Rollout":
        """The completions at ``indices`` (in that order), every field sliced alike."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        pick = idx.tolist()
        return Rollout(
            examples=[self.examples[i] for i in pick],
            prompts=[self.prompts[i] for i in pick],
            completions=[self.completions[i] for i in pick],
            prompt_ids=[self.prompt_ids[i] for i in pick],
            completion_ids=[self.completion_ids[i] for i in pick],
            group_ids=self.group_ids[idx],
            truncated=self.truncated[idx],
            rewards=self.rewards[idx],
            reward_parts={k: v[idx] for k, v in self.reward_parts.items()},
            loss_weights=self.loss_weights[idx],
            sampler_logprobs=None if self.sampler_logprobs is None
            else [self.sampler_logprobs[i] for i in pick],
            sampler_logprobs_exact=self.sampler_logprobs_exact,
            reference_logprobs=None if self.reference_logprobs is None
            else [self.reference_logprobs[i] for i in pick],
        )

    def replace(self, **changes) -> "Rollout":
        """A shallow copy with some fields replaced (filters use it to change rewards/weights)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def concat(rollouts: Sequence["Rollout"]) -> "Rollout":
        """Join rollouts; group ids are renumbered so groups from different parts never merge."""
        out, offset = None, 0
        parts = []
        for r in rollouts:
            _, inverse = torch.unique(r.group_ids, return_inverse=True)
            parts.append((r, inverse + offset))
            offset += int(inverse.max()) + 1 if len(r) else 0
        if not parts:
            raise ValueError("cannot concatenate zero rollouts")
        names = parts[0][0].reward_parts.keys()
        out = Rollout(
            examples=[e for r, _ in parts for e in r.examples],
            prompts=[p for r, _ in parts for p in r.prompts],
            completions=[c for r, _ in parts for c in r.completions],
            prompt_ids=[p for r, _ in parts for p in r.prompt_ids],
            completion_ids=[c for r, _ in parts for c in r.completion_ids],
            group_ids=torch.cat([g for _, g in parts]),
            truncated=torch.cat([r.truncated for r, _ in parts]),
            rewards=torch.cat([r.rewards for r, _ in parts]),
            reward_parts={k: torch.cat([r.reward_parts[k] for r, _ in parts]) for k in names},
            loss_weights=torch.cat([r.loss_weights for r, _ in parts]),
            sampler_logprobs=None if any(r.sampler_logprobs is None for r, _ in parts)
            else [lp for r, _ in parts for lp in r.sampler_logprobs],
            sampler_logprobs_exact=all(r.sampler_logprobs_exact for r, _ in parts),
            reference_logprobs=None if any(r.reference_logprobs is None for r, _ in parts)
            else [lp for r, _ in parts for lp in r.reference_logprobs],
        )
        return out
