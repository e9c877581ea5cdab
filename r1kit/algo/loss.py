"""The clipped policy-gradient loss of GRPO and its variants, as one pure function.

The objective (DeepSeekMath §4.1, DeepSeek-R1 §2.2.1), maximised::

    J = mean_g [ (1/G_g) Σ_{i∈g} (1/|o_i|) Σ_t ( surrogate_{i,t} − β D_{i,t} ) ]
    surrogate_{i,t} = min(ρ_{i,t} A_i, clip(ρ_{i,t}, 1−ε_low, 1+ε_high) A_i)
    ρ_{i,t} = π_θ(o_{i,t} | q, o_{i,<t}) / π_old(o_{i,t} | q, o_{i,<t})
    D_{i,t} = π_ref/π_θ − log(π_ref/π_θ) − 1                            (k3)

and ``loss = −J``. |o_i| counts valid (mask = 1) tokens only. The variants are values, each
looked up in a table of small functions: ``ratio_level`` (``ratio.RATIOS``: token, or GSPO's
sequence ratio), ``kl_estimator`` (``kl.KL_ESTIMATORS``: k1, k2, k3) and ``aggregation``
(``aggregation.AGGREGATIONS``: grpo as above, DAPO's token_mean, Dr. GRPO's constant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from r1kit.algo.aggregation import AGGREGATIONS
from r1kit.algo.kl import KL_ESTIMATORS
from r1kit.algo.ratio import RATIOS


@dataclass
class LossOutput:
    """The loss to minimise and detached scalars for logging."""

    loss: Tensor  #: −J, attached to the graph
    surrogate: Tensor  #: aggregated clipped surrogate (detached)
    kl: Tensor  #: aggregated KL estimate D (detached; 0 when β = 0)
    clip_low_frac: Tensor  #: share of valid tokens clipped at 1 − ε_low (ρ < 1 − ε_low, A < 0)
    clip_high_frac: Tensor  #: share of valid tokens clipped at 1 + ε_high (ρ > 1 + ε_high, A > 0)
    ratio_mean: Tensor  #: mean ρ over valid tokens (detached)


def _lookup(table: Mapping, value: str, option: str):
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"unknown {option} {value!r}; valid values: "
                         f"{', '.join(sorted(table))}") from None


def policy_loss(logp: Tensor, old_logp: Tensor, ref_logp: Tensor | None, advantages: Tensor,
                mask: Tensor, group_ids: Tensor, *, epsilon: float,
                epsilon_high: float | None = None, beta: float = 0.0, kl_estimator: str = "k3",
                ratio_level: str = "token", aggregation: str = "grpo",
                max_completion_length: int | None = None,
                token_weights: Tensor | None = None,
                aggregation_weights: Tensor | None = None) -> LossOutput:
    """The clipped surrogate loss with a KL penalty (see the module docstring for the formula).

    :param logp: ``(N, T)`` log π_θ of the sampled tokens, with gradient.
    :param old_logp: ``(N, T)`` log π_old, computed once when the group was sampled (with a
        single update per group pass ``logp.detach()``: ρ = 1, but the gradient is not zero).
    :param ref_logp: ``(N, T)`` log π_ref, or ``None`` when ``beta == 0`` (then no KL is computed).
    :param advantages: ``(N,)`` one advantage per completion, shared by its tokens.
    :param mask: ``(N, T)`` 0/1 (float or bool); any non-zero entry is a valid token. Padding
        and completions masked out by filters are 0; rows may be all 0 (they count nowhere).
        Values of ``logp``/``old_logp``/``ref_logp`` at invalid positions are ignored, even ±inf.
    :param group_ids: ``(N,)`` prompt group of each completion (used by ``aggregation="grpo"``).
    :param epsilon: ε_low, the clip range below 1.
    :param epsilon_high: ε_high, the clip range above 1 (DAPO clip-higher); defaults to ε.
    :param beta: KL weight β.
    :param kl_estimator: ``k1``, ``k2`` or ``k3``.
    :param ratio_level: ``token`` (GRPO) or ``sequence`` (GSPO).
    :param aggregation: ``grpo``, ``token_mean`` (DAPO) or ``constant`` (Dr. GRPO; needs
        ``max_completion_length``).
    :param token_weights: optional ``(N, T)`` per-token weights on the surrogate (no gradient),
        e.g. truncated importance weights correcting a sampler/trainer mismatch.
    :param aggregation_weights: optional ``(N, T)`` weights of ``aggregation`` computed over a
        larger batch these rows are part of (``Aggregation.weights``): the loss is then these
        rows' share of that batch's, so micro-batches of any rows sum to the batch's loss.
    :raises ValueError: on an unknown variant name, a negative ε, β ≠ 0 without ``ref_logp``.
    """
    ratio_fn = _lookup(RATIOS, ratio_level, "ratio_level")
    aggregate = _lookup(AGGREGATIONS, aggregation, "aggregation")
    kl_fn = _lookup(KL_ESTIMATORS, kl_estimator, "kl_estimator")
    eps_low = epsilon
    eps_high = epsilon if epsilon_high is None else epsilon_high
    if eps_low < 0 or eps_high < 0:
        raise ValueError(f"epsilon and epsilon_high must be >= 0, got {eps_low}, {eps_high}")
    if beta != 0 and ref_logp is None:
        raise ValueError(f"beta={beta} needs ref_logp (the reference model's log-probs)")

    valid = mask.bool()
    adv = advantages.to(logp.dtype).unsqueeze(-1)  # (N, 1): every token of o_i shares A_i
    ratio = ratio_fn(logp, old_logp, valid)
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    surrogate_t = torch.minimum(ratio * adv, clipped * adv)
    if token_weights is not None:
        # off-policy correction (e.g. truncated importance sampling for a vLLM sampler whose
        # probabilities differ slightly from the trainer's): a constant per token, no gradient
        surrogate_t = surrogate_t * token_weights.detach().to(surrogate_t.dtype)
    surrogate = aggregate(surrogate_t, valid, group_ids, max_completion_length,
                          weights=aggregation_weights)

    if beta != 0:
        # Zero both sides at invalid positions so garbage there cannot reach exp().
        kl_t = kl_fn(torch.where(valid, logp, 0.0), torch.where(valid, ref_logp, 0.0))
        kl = aggregate(kl_t, valid, group_ids, max_completion_length,
                       weights=aggregation_weights)
    else:
        kl = torch.zeros((), dtype=logp.dtype, device=logp.device)
    # Every aggregation is linear, so agg(surrogate − βD) = agg(surrogate) − β agg(D).
    loss = -(surrogate - beta * kl)

    with torch.no_grad():
        num_valid = valid.sum().clamp(min=1)
        clip_low = (ratio < 1.0 - eps_low) & (adv < 0) & valid
        clip_high = (ratio > 1.0 + eps_high) & (adv > 0) & valid
        return LossOutput(
            loss=loss,
            surrogate=surrogate.detach(),
            kl=kl.detach(),
            clip_low_frac=clip_low.sum() / num_valid,
            clip_high_frac=clip_high.sum() / num_valid,
            ratio_mean=torch.where(valid, ratio, 0.0).sum() / num_valid,
        )
