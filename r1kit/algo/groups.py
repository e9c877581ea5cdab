"""Per-group statistics over ``group_ids``, vectorised with scatter ops.

A batch holds N completions from several prompt groups. Group ids need not be contiguous or
sorted (filters drop completions and whole groups), and groups may differ in size, so every
statistic here is computed with ``index_add_``/``scatter_reduce_`` over a compact group index
rather than by reshaping to ``(num_groups, G)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def group_index(group_ids: Tensor) -> tuple[Tensor, int]:
    """Map arbitrary group ids to ``0..K-1`` (in sorted id order); returns ``(index[N], K)``."""
    uniq, index = torch.unique(group_ids, return_inverse=True)
    return index, int(uniq.numel())


def group_sum(values: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """``out[k] = Σ_{i: index[i]=k} values[i]`` (shape ``(K,)``)."""
    out = torch.zeros(num_groups, dtype=values.dtype, device=values.device)
    return out.index_add(0, index, values)


def group_count(index: Tensor, num_groups: int, dtype: torch.dtype) -> Tensor:
    """Number of members of each group, as ``dtype`` (shape ``(K,)``)."""
    return torch.bincount(index, minlength=num_groups).to(dtype)


def group_mean(values: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """Mean of each group's values (shape ``(K,)``); every group has at least one member."""
    return group_sum(values, index, num_groups) / group_count(index, num_groups, values.dtype)


def group_all_equal(values: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """Bool ``(N,)``: whether all values in element ``i``'s group are equal.

    Compared with max == min rather than std == 0 because a mean of equal floats can differ from
    them in the last bit (3 × 0.1 / 3 ≠ 0.1), which would make "zero" deviations tiny non-zeros.
    """
    hi = torch.full((num_groups,), -torch.inf, dtype=values.dtype, device=values.device)
    lo = torch.full((num_groups,), torch.inf, dtype=values.dtype, device=values.device)
    hi = hi.scatter_reduce(0, index, values, reduce="amax")
    lo = lo.scatter_reduce(0, index, values, reduce="amin")
    return (hi == lo)[index]
