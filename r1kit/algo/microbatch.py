"""Split a rollout into micro-batches of whole groups, and weight their losses so the summed
gradient equals the full batch's.

Each aggregation normalises by a different unit (groups, valid tokens, valid sequences); a
micro-batch's loss is that aggregation over its own rows, so it is weighted by its share of the
batch's units.
"""

from __future__ import annotations

import torch

from r1kit.algo.groups import group_index, group_sum


def group_chunks(group_ids: torch.Tensor, max_rows: int) -> list[torch.Tensor]:
    """Row indices of consecutive micro-batches; a group is never split (its statistics stay
    whole), so a group larger than ``max_rows`` forms a micro-batch of its own."""
    chunks, current, current_len = [], [], 0
    groups = torch.unique_consecutive(group_ids.cpu(), return_counts=True)[1].tolist()
    start = 0
    for count in groups:
        rows = list(range(start, start + count))
        start += count
        if current and current_len + count > max_rows:
            chunks.append(current)
            current, current_len = [], 0
        current += rows
        current_len += count
    if current:
        chunks.append(current)
    device = group_ids.device
    return [torch.tensor(c, dtype=torch.long, device=device) for c in chunks]


def _groups(mask, group_ids):
    valid = mask.sum(1) > 0
    return float(torch.unique(group_ids[valid]).numel())


def _tokens(mask, group_ids):
    return float(mask.sum())


def _sequences(mask, group_ids):
    return float((mask.sum(1) > 0).sum())


#: aggregation name -> the unit it averages over
AGGREGATION_UNITS = {"grpo": _groups, "token_mean": _tokens, "constant": _sequences}


def share(aggregation: str, mask, full_mask, group_ids, full_group_ids) -> float:
    unit = AGGREGATION_UNITS[aggregation]
    total = unit(full_mask, full_group_ids)
    return unit(mask, group_ids) / total if total else 0.0


def learning_rows(advantages: torch.Tensor, mask: torch.Tensor,
                  group_ids: torch.Tensor) -> torch.Tensor:
    """Bool ``(N,)``: the rows of groups that have a gradient when β = 0.

    Without the KL term every token's loss is ``−min(ρA, clip(ρ)A)``, exactly 0 with a zero
    gradient when its completion's advantage A is 0. A group whose valid completions all have
    A = 0 (all-equal rewards under GRPO's normalisation, and so a large share of groups once a
    task is mostly solved or mostly failed) therefore adds nothing to the update, and its
    forward and backward passes can be skipped. Whole groups are kept or skipped, so micro-batches
    still hold whole groups, and the loss weights (``share``) are still taken over the full
    batch: the skipped groups count in every denominator, as they do in the objective.
    """
    index, num_groups = group_index(group_ids)
    learns = ((advantages != 0) & (mask.sum(1) > 0)).to(torch.float32)
    return (group_sum(learns, index, num_groups) > 0)[index]
