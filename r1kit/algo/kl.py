"""Per-token estimators of KL(π_θ ‖ π_ref) from the log-probs of the sampled tokens.

Each takes ``logp`` (log π_θ) and ``ref_logp`` (log π_ref), both ``(N, T)``, and returns the
per-token estimate ``D_t`` ``(N, T)``. With ``x = ref_logp − logp = log(π_ref/π_θ)`` and tokens
sampled from π_θ (Schulman, "Approximating KL divergence", 2020):

- ``k1 = −x = logp − ref_logp``: unbiased, high variance, can be negative.
- ``k2 = ½ x²``: biased, low variance, ≥ 0.
- ``k3 = e^x − x − 1 = π_ref/π_θ − log(π_ref/π_θ) − 1``: unbiased, low variance, ≥ 0. The
  DeepSeekMath/R1 estimator, the default.

- ``k3_is = (π_θ/π_old) · k3``: DeepSeek-V3.2 (arXiv:2512.02556, §3.1 "Unbiased KL
  Estimate"; TRL's ``use_bias_correction_kl``). The tokens were sampled from π_old, not π_θ;
  k3 is unbiased only under π_θ, and its gradient under π_old is biased, most where π_θ has
  moved (low-probability tokens get unbounded weight). The importance ratio — with its
  gradient — makes both the estimate and its gradient unbiased. At ρ = 1 (μ = 1) its value is
  k3's, its gradient ``∇k3 + k3 ∇logp``.

Each takes ``ratio=`` (the token ratio π_θ/π_old with gradient); only ``k3_is`` uses it.
No clamping: the values are exactly the formulas (verl clamps k3 to [−10, 10]; TRL does not).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def kl_k1(logp: Tensor, ref_logp: Tensor, ratio: Tensor | None = None) -> Tensor:
    """``logp − ref_logp``."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor, ratio: Tensor | None = None) -> Tensor:
    """``½ (logp − ref_logp)²``."""
    return 0.5 * (logp - ref_logp).square()


def kl_k3(logp: Tensor, ref_logp: Tensor, ratio: Tensor | None = None) -> Tensor:
    """``exp(ref − logp) − (ref − logp) − 1``, always ≥ 0 and exactly 0 where ``ref == logp``."""
    x = ref_logp - logp
    # expm1(x) − x rather than exp(x) − x − 1: near x = 0 (the policy close to the reference,
    # where training spends its time) the latter loses every significant digit to cancellation.
    return torch.expm1(x) - x


def kl_k3_is(logp: Tensor, ref_logp: Tensor, ratio: Tensor | None = None) -> Tensor:
    """``(π_θ/π_old) · k3`` (DeepSeek-V3.2); ``ratio`` is required."""
    if ratio is None:
        raise ValueError("kl_estimator 'k3_is' needs the token ratio π_θ/π_old")
    return ratio * kl_k3(logp, ref_logp)


KL_ESTIMATORS: dict[str, Callable[..., Tensor]] = {
    "k1": kl_k1,
    "k2": kl_k2,
    "k3": kl_k3,
    "k3_is": kl_k3_is,
}
