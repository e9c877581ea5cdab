"""Importance ratios π_θ/π_old, per token or per sequence.

Each function takes ``logp``, ``old_logp`` ``(N, T)`` and the bool ``valid`` mask ``(N, T)`` and
returns the ratio ``(N, T)`` that multiplies the advantage of every token. Padded positions get
ratio 1 and no gradient: their log-probs may be garbage (even ±inf), so they are replaced by 0
*before* ``exp`` — masking after ``exp`` would turn ``0 · inf`` into NaN, forward and backward.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def token_ratio(logp: Tensor, old_logp: Tensor, valid: Tensor) -> Tensor:
    """``ρ_{i,t} = exp(logp_{i,t} − old_logp_{i,t})`` (PPO/GRPO).

    With one update per group ``old_logp = logp.detach()``: ρ = 1 but ∂ρ/∂logp = 1.
    """
    return torch.exp(torch.where(valid, logp - old_logp, 0.0))


def sequence_ratio(logp: Tensor, old_logp: Tensor, valid: Tensor) -> Tensor:
    """GSPO (Zheng et al., 2025): ``s_i = exp((1/|o_i|) Σ_t (logp_{i,t} − old_logp_{i,t}))``.

    Returned in the paper's GSPO-token form,
    ``s_{i,t} = sg[s_i] · exp(logp_{i,t} − sg[logp_{i,t}])``:
    numerically ``s_i`` on every token of sequence ``i`` (so clipping acts on whole sequences),
    with ``∂s_{i,t}/∂logp_{i,t} = s_i``. Since A_i is shared by the tokens of o_i, summing over
    them gives ``s_i A_i Σ_t ∇logp_{i,t} = |o_i| A_i ∇s_i``: GSPO's own gradient, under every
    aggregation (the tests check it against autograd through ``s_i`` itself). The token form
    also stays correct if advantages ever vary per token. GSPO clips far tighter than GRPO (the
    paper uses ε_low = 3e-4, ε_high = 4e-4).
    """
    log_ratio = torch.where(valid, logp - old_logp, 0.0)
    lengths = valid.sum(dim=-1).clamp(min=1)  # all-masked rows: 0/1, not 0/0
    seq_log_ratio = log_ratio.sum(dim=-1) / lengths
    safe_logp = torch.where(valid, logp, 0.0)
    per_token = safe_logp - safe_logp.detach() + seq_log_ratio.detach().unsqueeze(-1)
    return torch.exp(torch.where(valid, per_token, 0.0))


RATIOS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "token": token_ratio,
    "sequence": sequence_ratio,
}
