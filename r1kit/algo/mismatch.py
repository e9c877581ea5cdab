"""Train/inference mismatch: how far the sampler's log-probs are from the trainer's.

A fast inference engine (vLLM) samples with different kernels, precision and batching than the
trainer's forward pass, so the sampler's probability of a token is not exactly the trainer's
("Your efficient RL framework secretly brings you off-policy RL training", Yao et al., 2025).
:func:`logprob_mismatch` measures the gap (the trainer logs it every step as ``sampler/...``);
:func:`importance_weights` is the truncated importance-sampling (TIS) correction that reweights
each token's policy-gradient term by ``min(π_old(token) / π_sampler(token), cap)``.

All functions are pure: ``(N, T)`` tensors in the completion layout of
:func:`r1kit.algo.logprobs.pack` (row i is completion i, column t its t-th token, ``mask`` 1 on
real tokens and 0 on padding).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sampler_logprob_tensor(logprobs: list[list[float]], width: int | None = None, *,
                           device=None) -> Tensor:
    """``Generation.logprobs`` as a zero-padded ``(N, width)`` float32 tensor.

    ``width`` defaults to the longest row (at least 1, like ``pack``'s completion width); rows
    longer than ``width`` are an error rather than silently cut.
    """
    longest = max((len(row) for row in logprobs), default=0)
    width = max(longest, 1) if width is None else width
    if longest > width:
        raise ValueError(f"a row has {longest} log-probs, more than width={width}")
    out = torch.zeros((len(logprobs), width), dtype=torch.float32)
    for i, row in enumerate(logprobs):
        if row:
            out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return out.to(device) if device is not None else out


def logprob_mismatch(sampler_logprobs: Tensor, trainer_logp: Tensor, mask: Tensor) -> dict:
    """Statistics of ``trainer_logp - sampler_logprobs`` over the tokens where ``mask`` is 1.

    Returns floats:

    - ``logprob_diff``: mean ``|trainer - sampler|`` (0 when both compute the same thing),
    - ``logprob_diff_max``: the largest ``|trainer - sampler|``,
    - ``ratio_mean``: mean ``exp(trainer - sampler)``, the importance ratio; 1 when they agree,
    - ``kl``: mean ``r - 1 - log r`` with ``r = exp(trainer - sampler)``: the k3 estimate of
      ``KL(sampler || trainer)`` from the sampler's own tokens (>= 0).

    With no tokens under the mask every value is that of perfect agreement.
    """
    mask = mask.to(dtype=torch.bool)
    diff = (trainer_logp.detach().float() - sampler_logprobs.detach().float())[mask]
    if diff.numel() == 0:
        return {"logprob_diff": 0.0, "logprob_diff_max": 0.0, "ratio_mean": 1.0, "kl": 0.0}
    ratio = diff.exp()
    return {
        "logprob_diff": diff.abs().mean().item(),
        "logprob_diff_max": diff.abs().max().item(),
        "ratio_mean": ratio.mean().item(),
        "kl": (ratio - 1 - diff).mean().item(),
    }


def importance_weights(sampler_logprobs: Tensor, trainer_old_logp: Tensor, mask: Tensor,
                       cap: float) -> Tensor:
    """Truncated importance-sampling weights ``min(exp(old - sampler), cap)``, 0 at padding.

    ``trainer_old_logp`` are the log-probs of the policy that the update treats as the
    behaviour policy (π_old, computed by the trainer before the update); the tokens were really
    sampled from the engine's distribution, so each token's loss term is multiplied by these
    (constant, gradient-free) weights. ``cap`` bounds the variance (TIS uses about 2).
    """
    if not cap > 0:
        raise ValueError(f"cap must be > 0, got {cap}")
    log_ratio = trainer_old_logp.detach().float() - sampler_logprobs.detach().float()
    # clamp in log space first: exp of a huge log-ratio must not overflow to inf * 0 = nan
    weights = log_ratio.clamp(max=torch.log(torch.tensor(float(cap))).item()).exp()
    return torch.where(mask.to(torch.bool), weights.clamp(max=cap), torch.zeros_like(weights))
