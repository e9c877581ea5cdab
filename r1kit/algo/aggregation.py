"""How per-token terms ``(N, T)`` become one scalar: the length and group normalisers.

Every aggregation is a weight per valid token, ``w_{i,t} = per_token_{i,t} / unit``, and its
value is ``Σ_{i,t} w_{i,t} · values_{i,t}``: one table (``AGGREGATIONS``) holds both parts of
each, so the normaliser the loss divides by and the unit the trainer scales micro-batches and
ranks by cannot drift apart. Written as weights rather than as nested means, any split of the
rows into micro-batches, groups split across them included, sums to the batch's value exactly:
each micro-batch sums its own rows' ``w · values`` with the weights computed over the whole
batch (``Aggregation.weights``). Across ranks, a rank's loss is scaled by its share of the
global ``unit`` (``Backprop.share``), which makes the ranks' average the aggregation over all
of them.

Each function takes the bool ``valid`` mask ``(N, T)``, ``group_ids`` ``(N,)`` and
``max_completion_length`` (``int | None``). Invalid positions never contribute, whatever they
hold. A batch with no valid token gives 0 (still attached to the graph, so ``backward()`` works
and yields zero gradients). Every denominator is clamped to ≥ 1 on the device instead of being
checked with ``.item()``, which would be a CPU-GPU sync point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from r1kit.algo.groups import group_index, group_sum


def _masked(values: Tensor, valid: Tensor) -> Tensor:
    # where, not multiply: garbage (inf/NaN) at padded positions times 0 is still NaN.
    return torch.where(valid, values, 0.0)


@dataclass(frozen=True)
class Aggregation:
    """One aggregation: ``per_token(valid, group_ids, L)`` the ``(N, T)`` numerators (0 at
    invalid positions) and ``unit(valid, group_ids, L)`` the count they are divided by, a 0-d
    tensor: the number of groups, tokens or rows a rank's loss is an average over."""

    per_token: Callable[[Tensor, Tensor, int | None], Tensor]
    unit: Callable[[Tensor, Tensor, int | None], Tensor]

    def weights(self, valid: Tensor, group_ids: Tensor,
                max_completion_length: int | None = None, *,
                dtype: torch.dtype = torch.float32) -> Tensor:
        """``(N, T)`` weights of the batch's tokens: its value is ``Σ w · values``."""
        numerators = self.per_token(valid, group_ids, max_completion_length).to(dtype)
        return numerators / self.unit(valid, group_ids, max_completion_length).clamp(min=1)

    def __call__(self, values: Tensor, valid: Tensor, group_ids: Tensor,
                 max_completion_length: int | None = None, *,
                 weights: Tensor | None = None) -> Tensor:
        """The aggregation of ``values`` over this batch, or with ``weights`` computed over a
        larger batch these rows are part of (then the value is their share of that batch's)."""
        if weights is None:
            weights = self.weights(valid, group_ids, max_completion_length, dtype=values.dtype)
        return (_masked(values, valid) * weights.to(values.dtype)).sum()


# ------------------------------------------------------------------------------------- grpo
def _grpo_per_token(valid: Tensor, group_ids: Tensor, max_completion_length=None) -> Tensor:
    lengths = valid.sum(dim=-1)
    index, num_groups = group_index(group_ids)
    group_sizes = group_sum((lengths > 0).to(torch.float64), index, num_groups)  # valid seqs
    per_row = 1.0 / (lengths.clamp(min=1) * group_sizes[index].clamp(min=1))
    return valid * per_row.unsqueeze(-1)


def _valid_groups(valid: Tensor, group_ids: Tensor, max_completion_length=None) -> Tensor:
    index, num_groups = group_index(group_ids)
    per_group = group_sum((valid.sum(dim=-1) > 0).to(torch.float64), index, num_groups)
    return (per_group > 0).sum()


#: GRPO (DeepSeekMath/R1): ``mean_g [ (1/G_g) Σ_{i∈g} (1/|o_i|) Σ_t values_{i,t} ]``, the token
#: mean of each sequence, then the mean of the sequences in each group, then the mean over
#: groups. With equal group sizes this is the papers' ``(1/G) Σ_i (1/|o_i|) Σ_t`` averaged over
#: prompts; with uneven groups (after filters) every prompt still weighs the same. A sequence
#: with no valid token counts nowhere (not in ``G_g``), nor does a group with none.
grpo_mean = Aggregation(_grpo_per_token, _valid_groups)


# -------------------------------------------------------------------------------- token_mean
def _every_token(valid: Tensor, group_ids: Tensor, max_completion_length=None) -> Tensor:
    return valid.to(torch.float64)


def _valid_tokens(valid: Tensor, group_ids: Tensor, max_completion_length=None) -> Tensor:
    return valid.sum()


#: DAPO: ``Σ_{i,t} values_{i,t} / Σ_i |o_i|``: every valid token in the batch weighs the same,
#: so long completions are not down-weighted per token.
token_mean = Aggregation(_every_token, _valid_tokens)


# ---------------------------------------------------------------------------------- constant
def _over_max_length(valid: Tensor, group_ids: Tensor,
                     max_completion_length: int | None = None) -> Tensor:
    if max_completion_length is None or max_completion_length <= 0:
        raise ValueError("aggregation 'constant' (Dr. GRPO) needs max_completion_length > 0, "
                         f"got {max_completion_length!r}")
    return valid.to(torch.float64) / max_completion_length


def _rows(valid: Tensor, group_ids: Tensor, max_completion_length=None) -> Tensor:
    return torch.tensor(valid.size(0), device=valid.device)


#: Dr. GRPO: ``Σ_{i,t} values_{i,t} / (N · max_completion_length)``, N the batch's rows,
#: masked ones included. A constant normaliser instead of ``1/|o_i|`` removes the length bias
#: (short correct answers and long wrong ones otherwise get larger per-token weight); counting
#: every row keeps it constant when a filter masks completions out of the loss (truncated ones,
#: say), as TRL's ``dr_grpo`` does (``per_token_loss.size(0) * max_completion_length``).
constant_mean = Aggregation(_over_max_length, _rows)


AGGREGATIONS: dict[str, Aggregation] = {
    "grpo": grpo_mean,
    "token_mean": token_mean,
    "constant": constant_mean,
}
