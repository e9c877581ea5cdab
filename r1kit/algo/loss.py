"""The clipped policy-gradient loss of GRPO and its variants, as one pure function.

The objective (DeepSeekMath §4.1, DeepSeek-R1 §2.2.1), maximised::

    J = mean_g [ (1/G_g) Σ_{i∈g} (1/|o_i|) Σ_t ( surrogate_{i,t} − β D_{i,t} ) ]
    surrogate_{i,t} = min(ρ_{i,t} A_i, clip(ρ_{i,t}, 1−ε_low, 1+ε_high) A_i)
    ρ_{i,t} = π_θ(o_{i,t} | q, o_{i,<t}) / π_old(o_{i,t} | q, o_{i,<t})
    D_{i,t} = π_ref/π_θ − log(π_ref/π_θ) − 1                            (k3)

and ``loss = −J``. |o_i| counts valid (mask = 1) tokens only. The variants are values, each
looked up in a table of small functions: ``ratio_level`` (``ratio.RATIOS``: token, or GSPO's
sequence ratio), ``policy_loss`` (``surrogates.SURROGATES``: the surrogate above, ``ppo_clip``,
or dual-clip, CISPO, SAPO, GMPO, Clip-Cov, KL-Cov), ``kl_estimator`` (``kl.KL_ESTIMATORS``:
k1, k2, k3, DeepSeek-V3.2's importance-weighted k3_is) and ``aggregation``
(``aggregation.AGGREGATIONS``: grpo as above, DAPO's token_mean, Dr. GRPO's constant).

Two optional terms: an entropy bonus ``+ c_H · agg(H_t)`` in J (``entropy_coef``, with the
per-token entropies H_t of the training pass), and DeepSeek-V3.2's off-policy sequence mask
(``off_policy_mask_delta``, ``offpolicy.off_policy_sequence_mask``) on the surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import torch
from torch import Tensor

from r1kit.algo.aggregation import AGGREGATIONS
from r1kit.algo.kl import KL_ESTIMATORS
from r1kit.algo.offpolicy import off_policy_sequence_mask
from r1kit.algo.ratio import RATIOS, token_ratio
from r1kit.algo.surrogates import SURROGATES, Inputs, SurrogateOptions


@dataclass
class LossOutput:
    """The loss to minimise and detached scalars for logging."""

    loss: Tensor  #: −J, attached to the graph
    surrogate: Tensor  #: aggregated clipped surrogate (detached)
    kl: Tensor  #: aggregated KL estimate D (detached; 0 when β = 0)
    #: share of valid tokens cut on the low side (ppo_clip: ρ < 1 − ε_low with A < 0; each
    #: surrogate's docstring says what it counts)
    clip_low_frac: Tensor
    #: share of valid tokens cut on the high side (ppo_clip: ρ > 1 + ε_high with A > 0)
    clip_high_frac: Tensor
    ratio_mean: Tensor  #: mean ρ over valid tokens (detached)
    #: aggregated entropy of the training pass (detached; 0 without ``entropy``)
    entropy: Tensor = None
    #: share of valid tokens clip_cov detached / kl_cov penalised (0 for other surrogates)
    cov_frac: Tensor = None
    #: share of valid tokens in sequences the off-policy sequence mask dropped
    off_policy_masked_frac: Tensor = None


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
                aggregation_weights: Tensor | None = None,
                surrogate: str = "ppo_clip",
                surrogate_options: SurrogateOptions | None = None,
                entropy: Tensor | None = None, entropy_coef: float = 0.0,
                off_policy_mask_delta: float | None = None) -> LossOutput:
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
    :param kl_estimator: ``k1``, ``k2``, ``k3`` or ``k3_is``.
    :param ratio_level: ``token`` (GRPO) or ``sequence`` (GSPO).
    :param aggregation: ``grpo``, ``token_mean`` (DAPO) or ``constant`` (Dr. GRPO; needs
        ``max_completion_length``).
    :param token_weights: optional ``(N, T)`` per-token weights on the surrogate (no gradient),
        e.g. truncated importance weights correcting a sampler/trainer mismatch.
    :param aggregation_weights: optional ``(N, T)`` weights of ``aggregation`` computed over a
        larger batch these rows are part of (``Aggregation.weights``): the loss is then these
        rows' share of that batch's, so micro-batches of any rows sum to the batch's loss.
    :param surrogate: a ``SURROGATES`` name (``algo.policy_loss``); ``ppo_clip`` is the formula
        above. ``surrogate_options`` holds its knobs (ε are taken from ``epsilon`` and
        ``epsilon_high``).
    :param entropy: optional ``(N, T)`` per-token entropies of π_θ; with ``entropy_coef`` ≠ 0
        they must carry their gradient (J gains ``entropy_coef · agg(entropy)``).
    :param off_policy_mask_delta: δ of DeepSeek-V3.2's off-policy sequence mask (None: off).
    :raises ValueError: on an unknown variant name, a negative ε, β ≠ 0 without ``ref_logp``.
    """
    ratio_fn = _lookup(RATIOS, ratio_level, "ratio_level")
    aggregate = _lookup(AGGREGATIONS, aggregation, "aggregation")
    kl_fn = _lookup(KL_ESTIMATORS, kl_estimator, "kl_estimator")
    surrogate_fn = _lookup(SURROGATES, surrogate, "policy_loss")
    eps_low = epsilon
    eps_high = epsilon if epsilon_high is None else epsilon_high
    if eps_low < 0 or eps_high < 0:
        raise ValueError(f"epsilon and epsilon_high must be >= 0, got {eps_low}, {eps_high}")
    if beta != 0 and ref_logp is None:
        raise ValueError(f"beta={beta} needs ref_logp (the reference model's log-probs)")
    if getattr(surrogate_fn, "needs_token_ratio", False) and ratio_level != "token":
        raise ValueError(f"policy_loss {surrogate!r} builds its own sequence ratio; "
                         f"use ratio_level='token', got {ratio_level!r}")
    if entropy_coef != 0 and entropy is None:
        raise ValueError(f"entropy_coef={entropy_coef} needs the per-token entropy")
    options = replace(surrogate_options or SurrogateOptions(), eps_low=eps_low,
                      eps_high=eps_high)

    valid = mask.bool()
    adv = advantages.to(logp.dtype).unsqueeze(-1)  # (N, 1): every token of o_i shares A_i
    ratio = ratio_fn(logp, old_logp, valid)
    terms = surrogate_fn(Inputs(logp, old_logp, ratio, adv, valid), options)
    surrogate_t = terms.values
    if token_weights is not None:
        # off-policy correction (e.g. truncated importance sampling for a vLLM sampler whose
        # probabilities differ slightly from the trainer's): a constant per token, no gradient
        surrogate_t = surrogate_t * token_weights.detach().to(surrogate_t.dtype)
    kept = valid
    if off_policy_mask_delta is not None:
        keep_rows = off_policy_sequence_mask(logp, old_logp, advantages, valid,
                                             off_policy_mask_delta)
        kept = valid & keep_rows.unsqueeze(-1)
        # where, not multiply: a masked token's value must not reach the graph at all
        surrogate_t = torch.where(kept, surrogate_t, 0.0)
    surrogate_value = aggregate(surrogate_t, valid, group_ids, max_completion_length,
                                weights=aggregation_weights)

    if beta != 0:
        # Zero both sides at invalid positions so garbage there cannot reach exp().
        # k3_is weighs by the token ratio: the surrogate's own ratio when it is per token
        token_level = ratio if ratio_fn is token_ratio else token_ratio(logp, old_logp, valid)
        kl_t = kl_fn(torch.where(valid, logp, 0.0), torch.where(valid, ref_logp, 0.0),
                     ratio=token_level)
        kl = aggregate(kl_t, valid, group_ids, max_completion_length,
                       weights=aggregation_weights)
    else:
        kl = torch.zeros((), dtype=logp.dtype, device=logp.device)
    if entropy is not None:
        entropy_value = aggregate(entropy.to(logp.dtype), valid, group_ids,
                                  max_completion_length, weights=aggregation_weights)
    else:
        entropy_value = torch.zeros((), dtype=logp.dtype, device=logp.device)
    # Every aggregation is linear, so agg(surrogate − βD + c_H H) = agg(surrogate) − β agg(D)
    # + c_H agg(H); the bonus term is only added when asked, so c_H = 0 is today's graph.
    objective = surrogate_value - beta * kl
    if entropy_coef != 0:
        objective = objective + entropy_coef * entropy_value
    loss = -objective

    with torch.no_grad():
        num_valid = valid.sum().clamp(min=1)
        share = lambda flags: (flags & valid).sum() / num_valid  # noqa: E731
        no_tokens = torch.zeros_like(valid)
        return LossOutput(
            loss=loss,
            surrogate=surrogate_value.detach(),
            kl=kl.detach(),
            clip_low_frac=share(terms.clip_low),
            clip_high_frac=share(terms.clip_high),
            ratio_mean=torch.where(valid, terms.ratio, 0.0).sum() / num_valid,
            entropy=entropy_value.detach(),
            cov_frac=share(no_tokens if terms.selected is None else terms.selected),
            off_policy_masked_frac=share(~kept),
        )
