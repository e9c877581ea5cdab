"""How per-token terms ``(N, T)`` become one scalar: the length and group normalisers.

Each function takes ``values`` ``(N, T)``, the bool ``valid`` mask ``(N, T)``, ``group_ids``
``(N,)`` and ``max_completion_length`` (``int | None``) and returns a scalar. Invalid positions
never contribute, whatever they hold. A sequence with no valid token does not count anywhere
(not in ``G``, not in ``N``); a batch with no valid token gives 0 (still attached to the graph,
so ``backward()`` works and yields zero gradients). Every denominator is clamped to ≥ 1 on the
device instead of being checked with ``.item()``, which would be a CPU-GPU sync point.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from r1kit.algo.groups import group_index, group_sum


def _masked(values: Tensor, valid: Tensor) -> Tensor:
    # where, not multiply: garbage (inf/NaN) at padded positions times 0 is still NaN.
    return torch.where(valid, values, 0.0)


def grpo_mean(values: Tensor, valid: Tensor, group_ids: Tensor,
              max_completion_length: int | None = None) -> Tensor:
    """GRPO (DeepSeekMath/R1): ``mean_g [ (1/G_g) Σ_{i∈g} (1/|o_i|) Σ_t values_{i,t} ]``.

    The token mean of each sequence, then the mean of the sequences in each group, then the
    mean over groups. With equal group sizes this is the papers' ``(1/G) Σ_i (1/|o_i|) Σ_t``
    averaged over prompts; with uneven groups (after filters) every prompt still weighs the same.
    """
    lengths = valid.sum(dim=-1)
    seq_valid = lengths > 0
    seq_mean = _masked(values, valid).sum(dim=-1) / lengths.clamp(min=1)
    index, num_groups = group_index(group_ids)
    group_sizes = group_sum(seq_valid.to(values.dtype), index, num_groups)  # valid seqs only
    group_means = group_sum(seq_mean, index, num_groups) / group_sizes.clamp(min=1)
    num_valid_groups = (group_sizes > 0).sum()
    return group_means.sum() / num_valid_groups.clamp(min=1)


def token_mean(values: Tensor, valid: Tensor, group_ids: Tensor,
               max_completion_length: int | None = None) -> Tensor:
    """DAPO: ``Σ_{i,t} values_{i,t} / Σ_i |o_i|`` — every valid token in the batch weighs the same,
    so long completions are not down-weighted per token."""
    return _masked(values, valid).sum() / valid.sum().clamp(min=1)


def constant_mean(values: Tensor, valid: Tensor, group_ids: Tensor,
                  max_completion_length: int | None = None) -> Tensor:
    """Dr. GRPO: ``Σ_{i,t} values_{i,t} / (N_valid · max_completion_length)``.

    A constant normaliser instead of ``1/|o_i|`` removes the length bias (short correct answers
    and long wrong ones otherwise get larger per-token weight).
    """
    if max_completion_length is None or max_completion_length <= 0:
        raise ValueError("aggregation 'constant' (Dr. GRPO) needs max_completion_length > 0, "
                         f"got {max_completion_length!r}")
    num_seqs = (valid.sum(dim=-1) > 0).sum().clamp(min=1)
    return _masked(values, valid).sum() / (num_seqs * max_completion_length)


AGGREGATIONS: dict[str, Callable[..., Tensor]] = {
    "grpo": grpo_mean,
    "token_mean": token_mean,
    "constant": constant_mean,
}
