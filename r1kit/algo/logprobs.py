"""Per-token log-probabilities of sampled completions under a causal LM."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
    """
    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
    gather = positions.unsqueeze(-1).expand(-1, -1, logits.size(-1))
    logits = torch.gather(logits, 1, gather).float() / temperature
    targets = torch.gather(ids, 1, (positions + 1).clamp(max=ids.size(1) - 1))
    logp_all = F.log_softmax(logits, dim=-1)
    logp = torch.gather(logp_all, 2, targets.unsqueeze(-1)).squeeze(-1) * mask
    if not with_entropy:
        return logp, None
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return logp, entropy
