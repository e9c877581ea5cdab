"""Split a rollout into micro-batches of whole groups, and weight their losses so the summed
gradient equals the full batch's.

Each aggregation normalises by a different unit (groups, valid tokens, valid sequences); a
micro-batch's loss is that aggregation over its own rows, so it is weighted by its share of the
batch's units.
"""

from __future__ import annotations

import torch


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
