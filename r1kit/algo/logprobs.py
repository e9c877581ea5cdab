"""Per-token log-probabilities of sampled completions under a causal LM."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Architectures whose attention masks follow packed ``position_ids`` (a position that does not
#: continue the previous one starts a new sequence), so that rows can share a row of the batch.
PACKABLE_ARCHITECTURES = {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM"}


def pack(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
         device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``prompt+completion`` rows, their attention mask, and for the completion
    region: the index of the logit that predicts each completion token, and its mask.

    Right padding keeps every real token at its natural position, so no position ids are needed.
    """
    lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids)]
    width, comp_width = max(lengths), max(max(map(len, completion_ids)), 1)
    ids = torch.full((len(lengths), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    positions = torch.zeros((len(lengths), comp_width), dtype=torch.long)
    mask = torch.zeros((len(lengths), comp_width))
    for row, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[row, : len(p) + len(c)] = torch.tensor(p + c)
        attention[row, : len(p) + len(c)] = 1
        # the logit at position t predicts token t + 1
        positions[row, : len(c)] = torch.arange(len(p) - 1, len(p) - 1 + len(c))
        mask[row, : len(c)] = 1
    return ids.to(device), attention.to(device), positions.to(device), mask.to(device)


def completion_logprobs(model, ids, attention, positions, mask, *, with_entropy: bool = False,
                        temperature: float = 1.0):
    """``(N, T)`` log-probs of each completion token (0 at padding) and, optionally, entropies.

    Only the completion positions' logits are turned into log-probs: over a 150k vocabulary the
    prompt positions' log-softmax would dominate memory. ``temperature`` divides the logits as
    the sampler did, so ratios compare the distribution that was actually sampled.

    Padding is not computed where the model allows it: for the architectures in
    ``PACKABLE_ARCHITECTURES`` the rows are packed several to a row of the batch (first-fit,
    same width), each restarting its ``position_ids``, so attention never crosses from one
    sequence to another and the result equals the padded forward's up to float rounding.
    """
    layout = _packing(model, attention)
    if layout is None:
        logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
        gather = positions.unsqueeze(-1).expand(-1, -1, logits.size(-1))
        logits = torch.gather(logits, 1, gather)
    else:
        rows, lengths, starts, packed_positions = layout
        flat_ids = ids.new_full((rows * ids.size(1),), int(ids[0, 0]))  # filler: never attended
        for i, (start, n) in enumerate(zip(starts, lengths)):
            flat_ids[start: start + n] = ids[i, :n]
        logits = model(input_ids=flat_ids.view(rows, -1),
                       position_ids=packed_positions.to(ids.device), use_cache=False).logits
        flat = logits.reshape(-1, logits.size(-1))
        logits = flat[torch.tensor(starts, device=ids.device).unsqueeze(1) + positions]
    logits = logits.float() / temperature
    targets = torch.gather(ids, 1, (positions + 1).clamp(max=ids.size(1) - 1))
    logp_all = F.log_softmax(logits, dim=-1)
    logp = torch.gather(logp_all, 2, targets.unsqueeze(-1)).squeeze(-1) * mask
    if not with_entropy:
        return logp, None
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return logp, entropy


def _packing(model, attention):
    """How to pack right-padded rows: ``(packed rows, lengths, flat start of each row in the
    packed batch, packed position ids)``, or None when the model cannot pack or packing would
    not save a row."""
    if type(model).__name__ not in PACKABLE_ARCHITECTURES or getattr(
            model.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return None
    count, width = attention.shape
    lengths_t = attention.sum(1)
    right_padded = torch.arange(width, device=attention.device) < lengths_t.unsqueeze(1)
    if not torch.equal(attention.bool(), right_padded):
        return None
    lengths = lengths_t.tolist()
    used: list[int] = []  # filled width of each packed row
    starts = [0] * count
    for i in sorted(range(count), key=lambda i: -lengths[i]):  # first fit, longest first
        for row, filled in enumerate(used):
            if filled + lengths[i] <= width:
                starts[i] = row * width + filled
                used[row] += lengths[i]
                break
        else:
            starts[i] = len(used) * width
            used.append(lengths[i])
    if len(used) >= count:
        return None
    # every sequence counts its positions from 0; so does the filler at the end of a row, which
    # makes it a sequence of its own that no real token attends to
    positions = torch.arange(width).repeat(len(used), 1)
    for i in range(count):
        row, col = divmod(starts[i], width)
        positions[row, col: col + lengths[i]] = torch.arange(lengths[i])
        if col + lengths[i] == used[row] and used[row] < width:
            positions[row, used[row]:] = torch.arange(width - used[row])
    return len(used), lengths, starts, positions
