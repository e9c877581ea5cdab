"""Split a rollout's rows into micro-batches by a token budget, and pick the rows that need
computing at all.

A micro-batch is a set of rows whose forward/backward pass runs at once; its memory grows with
its rows times its longest row (the padded tensors every layer holds), so that product is what
the budget bounds. Rows are taken longest first, so neighbours have similar lengths and little
is padding; a group's completions may land in different micro-batches: the loss weights each
token by the whole batch's normaliser (``r1kit.algo.aggregation.Aggregation.weights``), so the
summed gradient is the batch's whatever the split.
"""

from __future__ import annotations

from typing import Sequence

import torch

from r1kit.algo.groups import group_index, group_sum


def plan_micro_batches(lengths: Sequence[int], *, max_tokens: int | None,
                       max_rows: int | None) -> list[list[int]]:
    """Positions into ``lengths`` (each row's token count) as micro-batches, longest rows
    first: each holds at most ``max_rows`` rows and, padded to its longest row, at most
    ``max_tokens`` tokens (None: no such bound). A row longer than the budget is a micro-batch
    of its own (a row is never split)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        # sorted longest first: the current micro-batch's first row is its longest
        fits = current is not None \
            and (max_rows is None or len(current) < max_rows) \
            and (max_tokens is None or (len(current) + 1) * lengths[current[0]] <= max_tokens)
        if fits:
            current.append(i)
        else:
            batches.append([i])
    return batches


def micro_batches(rows: torch.Tensor, lengths: torch.Tensor, *, max_tokens: int | None,
                  max_rows: int | None) -> list[torch.Tensor]:
    """``rows`` (indices) as micro-batches (``plan_micro_batches``), ``lengths`` their token
    counts."""
    plan = plan_micro_batches(lengths.tolist(), max_tokens=max_tokens, max_rows=max_rows)
    return [rows[torch.tensor(batch, dtype=torch.long, device=rows.device)] for batch in plan]


def learning_rows(advantages: torch.Tensor, mask: torch.Tensor,
                  group_ids: torch.Tensor) -> torch.Tensor:
    """Bool ``(N,)``: the rows of groups that have a gradient when β = 0.

    Without the KL term every token's loss is ``−min(ρA, clip(ρ)A)``, exactly 0 with a zero
    gradient when its completion's advantage A is 0. A group whose valid completions all have
    A = 0 (all-equal rewards under GRPO's normalisation, and so a large share of groups once a
    task is mostly solved or mostly failed) therefore adds nothing to the update, and its
    forward and backward passes can be skipped. Whole groups are kept or skipped (the per-token
    statistics then describe whole groups), and the loss weights are still taken over the full
    batch: the skipped groups count in every denominator, as they do in the objective.
    """
    index, num_groups = group_index(group_ids)
    learns = ((advantages != 0) & (mask.sum(1) > 0)).to(torch.float32)
    return (group_sum(learns, index, num_groups) > 0)[index]
