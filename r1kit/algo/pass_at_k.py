"""Pass@k advantages (Chen et al. 2025, "Pass@k Training for Adaptively Balancing Exploration
and Exploitation of Large Reasoning Models", arXiv:2508.10751, the analytic derivation):
``advantage=pass_at_k``.

Training on pass@k rewards (a k-subset of the group scores 1 if any of its members is correct)
keeps exploring where pass@1 training sharpens onto one answer. The paper takes the expectation
over all C(N, k) subsets in closed form; with N completions in a group, N_neg of them wrong::

    R̄     = 1 − C(N_neg, k) / C(N, k)                 the group's pass@k
    σ     = sqrt(R̄ (1 − R̄))
    A_pos = (1 − R̄) / σ
    A_neg = (1 − R̄ − C(N_neg − 1, k − 1) / C(N − 1, k − 1)) / σ

A completion is correct where its reward (the total, or the ``reward`` part named in the
options) is at least ``threshold``. With k = 1 this is GRPO with the population std. A group
whose σ is 0 (all correct, all wrong, or k so large that any correct answer makes every subset
pass) gives 0; k larger than a group is taken as the group's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb, sqrt
from typing import Optional

import torch
from torch import Tensor

from r1kit.algo.groups import group_index
from r1kit.config.schema import ConfigError


@dataclass
class PassAtKAdvantageOptions:
    k: int = 4
    #: a completion is correct where its reward is >= threshold
    threshold: float = 1.0
    #: the reward part that decides correctness (e.g. accuracy); null: the weighted total
    reward: Optional[str] = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"advantage.k: must be >= 1, got {self.k}")


def pass_at_k_group(n: int, n_neg: int, k: int) -> tuple[float, float]:
    """``(A_pos, A_neg)`` of a group of ``n`` with ``n_neg`` wrong (module docstring)."""
    k = min(k, n)
    mean = 1.0 - comb(n_neg, k) / comb(n, k)
    sigma = sqrt(mean * (1.0 - mean))
    if sigma == 0.0:
        return 0.0, 0.0
    a_pos = (1.0 - mean) / sigma
    a_neg = (1.0 - mean - comb(n_neg - 1, k - 1) / comb(n - 1, k - 1)) / sigma if n_neg else 0.0
    return a_pos, a_neg


def pass_at_k_advantages(rewards: Tensor, group_ids: Tensor, options: PassAtKAdvantageOptions,
                         *, reward_parts: dict[str, Tensor],
                         reward_weights: dict[str, float]) -> Tensor:
    if options.reward is None:
        scores = rewards
    elif options.reward in reward_parts:
        scores = reward_parts[options.reward]
    else:
        raise ConfigError(f"advantage.reward: {options.reward!r} is not a composed reward; "
                          f"valid: {', '.join(reward_parts)}")
    correct = (scores.to(torch.float64) >= options.threshold).cpu()  # NaN (not scored): wrong
    index, num_groups = group_index(group_ids.cpu())
    out = torch.zeros(len(rewards), dtype=torch.float32)
    for g in range(num_groups):  # groups are few and small: plain integer arithmetic
        members = (index == g).nonzero().squeeze(1)
        n, n_pos = len(members), int(correct[members].sum())
        a_pos, a_neg = pass_at_k_group(n, n - n_pos, options.k)
        out[members] = torch.where(correct[members], a_pos, a_neg).float()
    return out.to(rewards.device)


pass_at_k_advantages.uses_reward_parts = True
