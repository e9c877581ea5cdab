"""Rollout correction: per-token surrogate weights for tokens an engine sampled (vLLM) whose
probabilities differ from the trainer's (``sampler.importance_correction``).

With ``ρ_t = π_old(o_t) / π_sampler(o_t)`` (the trainer's behaviour policy over the engine's,
both on the sampled token), each entry of ``CORRECTIONS`` returns the ``(N, T)`` weights that
multiply the surrogate (no gradient; 0 at padding), or None for no correction. ``low`` and
``high`` are ``importance_floor`` and ``importance_cap``:

- ``tis`` — token truncation (Yao et al. 2025, "Your efficient RL framework secretly brings
  you off-policy RL training"): ``min(ρ_t, high)``.
- ``token_mask`` — token rejection: ``1`` where ``low ≤ ρ_t ≤ high``, else ``0`` (the token
  is dropped; the rest are not reweighted).
- ``icepop`` — two-sided masked importance sampling (IcePop, Ling team's Ring-1T report,
  arXiv:2510.18855): ``ρ_t`` where ``low ≤ ρ_t ≤ high``, else 0; the paper uses [0.5, 5].
- ``seq_tis`` — sequence truncation: ``min(Π_t ρ_t, high)`` = ``min(exp(Σ_t log ρ_t), high)``
  on every token of the sequence (the unbiased sequence-level weight, truncated).
- ``seq_mask`` — sequence rejection by the geometric mean: every token of a sequence gets 1
  if ``low ≤ exp((1/|o|) Σ_t log ρ_t) ≤ high``, else 0 (a length-independent criterion;
  the product of hundreds of ratios near 1 drifts far from 1 for long sequences).

``masked_fraction`` is the share of valid tokens a correction zeroed (logged as
``sampler/is_masked_frac``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from r1kit.algo.mismatch import importance_weights


def _log_ratio(sampled: Tensor, old_logp: Tensor, valid: Tensor) -> Tensor:
    # detached, float32, 0 at padding (garbage there must not reach exp)
    diff = old_logp.detach().float() - sampled.detach().float()
    return torch.where(valid, diff, 0.0)


def _in_band(log_ratio: Tensor, low: float, high: float) -> Tensor:
    # compare in log space: exp of a huge log-ratio would overflow
    return (log_ratio >= math.log(low)) & (log_ratio <= math.log(high))


def token_mask(sampled: Tensor, old_logp: Tensor, mask: Tensor, low: float,
               high: float) -> Tensor:
    valid = mask.bool()
    keep = _in_band(_log_ratio(sampled, old_logp, valid), low, high) & valid
    return keep.float()


def icepop(sampled: Tensor, old_logp: Tensor, mask: Tensor, low: float, high: float) -> Tensor:
    valid = mask.bool()
    log_ratio = _log_ratio(sampled, old_logp, valid)
    keep = _in_band(log_ratio, low, high) & valid
    return torch.where(keep, log_ratio.exp(), 0.0)


def seq_tis(sampled: Tensor, old_logp: Tensor, mask: Tensor, low: float,
            high: float) -> Tensor:
    valid = mask.bool()
    total = _log_ratio(sampled, old_logp, valid).sum(-1, keepdim=True)
    weight = total.clamp(max=math.log(high)).exp()  # clamp in log space: no overflow
    return torch.where(valid, weight, 0.0)


def seq_mask(sampled: Tensor, old_logp: Tensor, mask: Tensor, low: float,
             high: float) -> Tensor:
    valid = mask.bool()
    mean = (_log_ratio(sampled, old_logp, valid).sum(-1, keepdim=True)
            / valid.sum(-1, keepdim=True).clamp(min=1))
    return (_in_band(mean, low, high) & valid).float()


CORRECTIONS: dict[str, Callable[[Tensor, Tensor, Tensor, float, float], Tensor | None]] = {
    "none": lambda sampled, old_logp, mask, low, high: None,
    "tis": lambda sampled, old_logp, mask, low, high: importance_weights(sampled, old_logp,
                                                                        mask, cap=high),
    "token_mask": token_mask,
    "icepop": icepop,
    "seq_tis": seq_tis,
    "seq_mask": seq_mask,
}


def masked_fraction(weights: Tensor | None, mask: Tensor) -> float:
    """Share of the valid tokens whose correction weight is 0 (0 without a correction)."""
    valid = mask.bool()
    if weights is None or not valid.any():
        return 0.0
    return float(((weights == 0) & valid).sum() / valid.sum())
