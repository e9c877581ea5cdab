"""Built-in advantage estimators (registered as plugins, like any third-party estimator).

Each is ``fn(rewards: Tensor[N], group_ids: LongTensor[N], **options) -> Tensor[N]``. Groups
are the completions of one prompt; they may differ in size after filters, and ids need not be
contiguous. Wherever a group's rewards are all equal (including a group of one) the advantage is
exactly 0: such a group carries no signal about which completion is better, and dividing its
zero deviations by a zero std must not produce NaN.

An estimator that needs each reward's own scores (GDPO's per-reward normalisation, pass@k on
the accuracy part) sets ``fn.uses_reward_parts = True``: ``compute_advantages`` then also
passes ``reward_parts`` (``Rollout.reward_parts``, NaN where a reward did not apply) and
``reward_weights`` (each reward's configured weight) as keywords.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from r1kit import hookimpl
from r1kit.algo.groups import group_all_equal, group_count, group_index, group_mean, group_sum
from r1kit.algo.multi_reward import GDPOAdvantageOptions, gdpo_advantages
from r1kit.algo.pass_at_k import PassAtKAdvantageOptions, pass_at_k_advantages
from r1kit.config.schema import ConfigError


def _centred(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, int]:
    """``(r_i − mean_g, index, K)`` with the deviations of all-equal groups set to exactly 0."""
    rewards = rewards.to(torch.promote_types(rewards.dtype, torch.float32))
    index, num_groups = group_index(group_ids)
    dev = rewards - group_mean(rewards, index, num_groups)[index]
    dev = torch.where(group_all_equal(rewards, index, num_groups), 0.0, dev)
    return dev, index, num_groups


@dataclass
class GRPOAdvantageOptions:
    #: added to the std before dividing (TRL's value), so a tiny spread cannot blow up.
    epsilon: float = 1e-4
    #: True: sample std with Bessel's correction (÷(G−1), ``torch.std``'s default, as TRL and
    #: verl do); False: population std (÷G).
    unbiased: bool = True

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"advantage.epsilon: must be > 0, got {self.epsilon}")


def grpo_advantages(rewards: Tensor, group_ids: Tensor, options: GRPOAdvantageOptions) -> Tensor:
    """GRPO (DeepSeekMath, DeepSeek-R1): ``A_i = (r_i − mean_g) / (std_g + ε)``.

    ``std_g`` is the unbiased sample std of group g by default (see ``GRPOAdvantageOptions``).
    All-equal groups and groups of one get exactly 0.
    """
    dev, index, num_groups = _centred(rewards, group_ids)
    counts = group_count(index, num_groups, dev.dtype)
    denom = (counts - 1 if options.unbiased else counts).clamp(min=1)  # size-1 groups have dev = 0
    std = (group_sum(dev.square(), index, num_groups) / denom).sqrt()
    return dev / (std[index] + options.epsilon)


def dr_grpo_advantages(rewards: Tensor, group_ids: Tensor, options=None) -> Tensor:
    """Dr. GRPO (Liu et al., 2025): ``A_i = r_i − mean_g``.

    No std division: it up-weights groups whose rewards barely differ (too easy or too hard
    prompts), a difficulty bias.
    """
    return _centred(rewards, group_ids)[0]


def rloo_advantages(rewards: Tensor, group_ids: Tensor, options=None) -> Tensor:
    """RLOO (Ahmadian et al., 2024): ``A_i = r_i − (1/(G_g−1)) Σ_{j∈g, j≠i} r_j``.

    The leave-one-out baseline does not depend on r_i, so the estimate is unbiased; it equals
    ``G_g/(G_g−1) · (r_i − mean_g)``. A group of one has no other sample: 0.
    """
    dev, index, num_groups = _centred(rewards, group_ids)
    counts = group_count(index, num_groups, dev.dtype)[index]
    return dev * counts / (counts - 1).clamp(min=1)


@dataclass
class ReinforcePPAdvantageOptions:
    #: added to the batch std (OpenRLHF's whitening value).
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"advantage.epsilon: must be > 0, got {self.epsilon}")


def reinforce_pp_advantages(rewards: Tensor, group_ids: Tensor,
                            options: ReinforcePPAdvantageOptions) -> Tensor:
    """REINFORCE++-baseline (Hu et al., 2025): ``A_i = d_i / (std_batch(d) + ε)``, d = r − mean_g.

    The group mean is the baseline; the normaliser is the (unbiased) std of the centred rewards
    over the whole batch rather than per group, which keeps the scale of the update stable
    without GRPO's per-prompt difficulty reweighting. The paper whitens (also subtracts the
    batch mean), but the batch mean of group-centred rewards is 0, so only the division remains.
    "Batch" is what this call receives: under DDP, one rank's groups. All-equal groups stay 0.
    The paper's token-level KL penalty in the reward is not here: β's KL term is in the loss.
    """
    dev, _, _ = _centred(rewards, group_ids)
    if dev.numel() < 2:
        return torch.zeros_like(dev)
    return dev / (dev.std() + options.epsilon)


def compute_advantages(fn, rollout, options, reward_specs=()) -> Tensor:
    """``fn``'s advantages for ``rollout``: from the total rewards and groups, plus each
    reward's scores and weights (``reward_specs``: the composed ``RewardSpec`` list) for an
    estimator with ``uses_reward_parts``."""
    if not getattr(fn, "uses_reward_parts", False):
        return fn(rollout.rewards, rollout.group_ids, options)
    return fn(rollout.rewards, rollout.group_ids, options, reward_parts=rollout.reward_parts,
              reward_weights={spec.name: spec.weight for spec in reward_specs})


@hookimpl
def r1kit_register_advantages(register):
    register("grpo", grpo_advantages, schema=GRPOAdvantageOptions)
    register("dr_grpo", dr_grpo_advantages)
    register("rloo", rloo_advantages)
    register("reinforce_pp", reinforce_pp_advantages, schema=ReinforcePPAdvantageOptions)
    register("gdpo", gdpo_advantages, schema=GDPOAdvantageOptions)
    register("pass_at_k", pass_at_k_advantages, schema=PassAtKAdvantageOptions)
