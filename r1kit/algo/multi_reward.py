"""GDPO (Liu et al. 2026, "Group reward-Decoupled Normalization Policy Optimization for
Multi-reward RL Optimization", arXiv:2601.05242): ``advantage=gdpo``.

GRPO normalises the weighted *total* of the rewards within each group, so different
combinations of reward values collapse onto the same advantage (correct-but-badly-formatted
and wrong-but-well-formatted both sum to 1). GDPO normalises each reward on its own within its
group, sums the results with the rewards' weights, then normalises the sum over the batch so its
scale does not grow with the number of rewards::

    Â_{i,k} = (r_{i,k} − mean_g r_k) / (std_g r_k + ε)       each reward k, within group g
    A_i     = Σ_k w_k Â_{i,k};  then  A ← (A − mean_batch A) / (std_batch A + ε)

Where a reward did not apply to a completion (``None``: NaN in ``reward_parts``) it contributes
0 to that completion and the group's statistics are over the completions it scored. All-equal
groups give 0 for that reward (as in every estimator here). "Batch" is what this call receives:
under DDP one rank's groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from r1kit.algo.groups import group_index, group_sum
from r1kit.config.schema import ConfigError


@dataclass
class GDPOAdvantageOptions:
    #: added to each std (the per-reward group std and the batch std)
    epsilon: float = 1e-4
    #: the final batch-wise normalisation of the summed advantages (GDPO's second stage)
    batch_normalize: bool = True

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ConfigError(f"advantage.epsilon: must be > 0, got {self.epsilon}")


def _group_normalized(values: Tensor, index: Tensor, num_groups: int, epsilon: float) -> Tensor:
    """(r − mean_g)/(std_g + ε) over each group's scored entries (NaN = not scored → 0);
    unbiased std as in GRPO; 0 where a group's scored values are all equal."""
    scored = ~torch.isnan(values)
    x = torch.where(scored, values, 0.0)
    count = group_sum(scored.to(x.dtype), index, num_groups)
    mean = group_sum(x, index, num_groups) / count.clamp(min=1)
    dev = torch.where(scored, x - mean[index], 0.0)
    var = group_sum(dev.square(), index, num_groups) / (count - 1).clamp(min=1)
    spread = group_sum(dev.abs(), index, num_groups) > 0  # exactly-equal groups: no signal
    out = dev / (var.sqrt()[index] + epsilon)
    return torch.where(spread[index] & scored, out, 0.0)


def gdpo_advantages(rewards: Tensor, group_ids: Tensor, options: GDPOAdvantageOptions, *,
                    reward_parts: dict[str, Tensor], reward_weights: dict[str, float]) -> Tensor:
    """GDPO's advantages (module docstring) from each reward's scores ``reward_parts`` and
    their ``reward_weights``. With a single reward and no batch normalisation it is GRPO's."""
    index, num_groups = group_index(group_ids)
    dtype = torch.promote_types(rewards.dtype, torch.float32)
    total = torch.zeros(len(rewards), dtype=dtype, device=rewards.device)
    for name, scores in reward_parts.items():
        normalized = _group_normalized(scores.to(dtype).to(rewards.device), index, num_groups,
                                       options.epsilon)
        total = total + reward_weights.get(name, 1.0) * normalized
    if not options.batch_normalize or total.numel() < 2:
        return total
    centred = total - total.mean()
    if not bool(centred.abs().sum() > 0):  # every advantage equal (e.g. all 0): nothing to scale
        return torch.zeros_like(total)
    return centred / (total.std() + options.epsilon)


gdpo_advantages.uses_reward_parts = True  # r1kit.algo.advantages.compute_advantages reads this
