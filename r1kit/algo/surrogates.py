"""Per-token policy-gradient surrogates: what ``policy_loss`` maximises before aggregation.

Each entry of ``SURROGATES`` (selected by ``algo.policy_loss``) maps the ratio ρ, the log-probs
and the advantages to ``Surrogate`` terms: the ``(N, T)`` values to maximise (with gradient)
and, for logging, which tokens each side of its clip or gate cut and the ratio it acted on.
Every value is per token, so each surrogate works with every aggregation, ``token_weights``
and ``aggregation_weights``; a sequence-level objective (GMPO) puts its sequence's value on
each of its tokens, which the aggregations turn back into one value per sequence.

Notation: ``l = logp − old_logp`` (log ρ), ``A`` the advantage, ``sg`` stop-gradient,
``ε_low``/``ε_high`` ``algo.epsilon``/``algo.epsilon_high``. Invalid positions hold garbage and
are replaced by 0 before any ``exp`` (see ``ratio.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class SurrogateOptions:
    """The knobs of the surrogates (``AlgoConfig`` fields of the same names)."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip_c: float = 3.0
    sapo_tau_pos: float = 1.0
    sapo_tau_neg: float = 1.05
    cispo_weight_max: Optional[float] = None  #: None: 1 + ε_high
    cispo_clip_low: bool = False
    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    kl_cov_ratio: float = 2e-4
    kl_cov_coef: float = 1.0


@dataclass
class Surrogate:
    values: Tensor  #: (N, T) per-token surrogate to maximise, with gradient
    clip_low: Tensor  #: (N, T) bool: tokens cut on the low side (for clip_low_frac)
    clip_high: Tensor  #: (N, T) bool: tokens cut on the high side (for clip_high_frac)
    ratio: Tensor  #: (N, T) the ratio the surrogate acted on (for ratio_mean), detached
    #: (N, T) bool: tokens clip_cov detached / kl_cov penalised (cov_frac); None elsewhere
    selected: Tensor | None = None


@dataclass(frozen=True)
class Inputs:
    """What every surrogate may read. ``ratio`` is ``RATIOS[ratio_level]`` (token or GSPO
    sequence ratio, with its gradient); ``adv`` is ``(N, 1)``; ``valid`` bool ``(N, T)``."""

    logp: Tensor
    old_logp: Tensor
    ratio: Tensor
    adv: Tensor
    valid: Tensor

    @property
    def safe_logp(self) -> Tensor:
        return torch.where(self.valid, self.logp, 0.0)

    @property
    def log_ratio(self) -> Tensor:
        return torch.where(self.valid, self.logp - self.old_logp, 0.0)


def _ppo_terms(x: Inputs, o: SurrogateOptions):
    clipped = x.ratio.clamp(1.0 - o.eps_low, 1.0 + o.eps_high)
    values = torch.minimum(x.ratio * x.adv, clipped * x.adv)
    with torch.no_grad():
        low = (x.ratio < 1.0 - o.eps_low) & (x.adv < 0) & x.valid
        high = (x.ratio > 1.0 + o.eps_high) & (x.adv > 0) & x.valid
    return values, low, high


def ppo_clip(x: Inputs, o: SurrogateOptions) -> Surrogate:
    """PPO/GRPO (Schulman et al. 2017; DeepSeekMath): ``min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A)``.

    The default. A token is clipped (zero gradient) where ρ left the range in the direction
    its advantage pushes: ρ > 1+ε_high with A > 0 (high), ρ < 1−ε_low with A < 0 (low).
    """
    values, low, high = _ppo_terms(x, o)
    return Surrogate(values, low, high, x.ratio.detach())


def dual_clip(x: Inputs, o: SurrogateOptions) -> Surrogate:
    """Dual-clip PPO (Ye et al. 2020, arXiv:1912.09729; verl's ``clip_ratio_c``):
    ``max(min(ρA, clip(ρ)A), c·A)`` for A < 0, plain PPO for A ≥ 0.

    With A < 0 PPO's min lets −ρ|A| grow without bound as ρ → ∞ (a token the policy made far
    likelier, with a negative advantage); the second clip caps its weight at c
    (``algo.dual_clip_c`` > 1, default 3). Tokens held at c.A count in ``clip_high`` (ratio cut
    from above).
    """
    values, low, high = _ppo_terms(x, o)
    negative = x.adv < 0
    values = torch.where(negative, torch.maximum(values, o.dual_clip_c * x.adv), values)
    with torch.no_grad():
        high = high | ((x.ratio > o.dual_clip_c) & negative & x.valid)
    return Surrogate(values, low, high, x.ratio.detach())


def cispo(x: Inputs, o: SurrogateOptions) -> Surrogate:
    """CISPO (MiniMax-M1, arXiv:2506.13585): ``sg(clip(ρ, lo, hi)) · A · log π_θ``.

    The importance weight is clipped and detached, so every token keeps a gradient
    ``sg(ρ̂) A ∇log π_θ`` (PPO would drop clipped tokens, often the rare "fork" tokens of a
    reflection). ``hi = algo.cispo_weight_max``, or ``1 + ε_high`` when null (ScaleRL and TRL
    use ε_max = 5); ``lo = 1 − ε_low`` only with ``algo.cispo_clip_low`` (MiniMax-M1 and TRL
    clip the upper side only; verl clips both, ``1 ± ε``). Written as
    ``sg(ρ̂) A exp(logp − sg(logp))``: the same gradient as the paper's ``sg(ρ̂) A logp``, with
    the value ``ρ̂ A`` (comparable with PPO's surrogate instead of scaling with logp). Tokens
    with ρ > hi count in ``clip_high``, ρ < lo in ``clip_low``, whatever A's sign: the weight
    is cut for both.
    """
    hi = 1.0 + o.eps_high if o.cispo_weight_max is None else o.cispo_weight_max
    lo = 1.0 - o.eps_low if o.cispo_clip_low else None
    with torch.no_grad():
        weight = x.ratio.clamp(min=lo, max=hi)
        low = (x.ratio < lo) & x.valid if lo is not None else torch.zeros_like(x.valid)
        high = (x.ratio > hi) & x.valid
    unit = torch.exp(x.safe_logp - x.safe_logp.detach())  # 1, with ∂/∂logp = 1
    return Surrogate(weight * x.adv * unit, low, high, x.ratio.detach())


def _sapo_gate(ratio: Tensor, tau: Tensor) -> Tensor:
    return torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)


def sapo(x: Inputs, o: SurrogateOptions) -> Surrogate:
    """SAPO (Soft Adaptive Policy Optimization, Qwen team 2025, arXiv:2511.20347; TRL
    and verl ``sapo``): ``f(ρ) A`` with the soft gate ``f(ρ) = σ(τ(ρ − 1)) · 4/τ``.

    ``τ = algo.sapo_tau_pos`` where A > 0, ``algo.sapo_tau_neg`` elsewhere (defaults 1.0 and
    1.05: negative tokens are damped faster, their updates being the less stable). The
    gradient weight ``f'(ρ) = 4σ(1 − σ)`` is 1 at ρ = 1 (on-policy it is the plain policy
    gradient, like PPO) and decays smoothly as ρ leaves 1 instead of dropping to 0 at a hard
    bound. There is no hard clip, so ``clip_low``/``clip_high`` count the tokens the gate
    damped by more than half (``f'(ρ) < ½``) below and above ρ = 1.
    """
    tau = torch.where(x.adv > 0, o.sapo_tau_pos, o.sapo_tau_neg).to(x.ratio.dtype)
    values = _sapo_gate(x.ratio, tau) * x.adv
    with torch.no_grad():
        s = torch.sigmoid(tau * (x.ratio - 1.0))
        damped = (4.0 * s * (1.0 - s) < 0.5) & x.valid
    return Surrogate(values, damped & (x.ratio < 1), damped & (x.ratio > 1), x.ratio.detach())


def gmpo(x: Inputs, o: SurrogateOptions) -> Surrogate:
    """GMPO (Geometric-Mean Policy Optimization, 2025, arXiv:2507.20673; verl
    ``geo_mean``): ``A_i · exp((1/|o_i|) Σ_t l̂_{i,t})``, the geometric mean of the token ratios
    instead of their arithmetic mean, so one outlier token moves a sequence's objective less.

    Each token's log-ratio is clipped in log space, sign-aware like PPO's min:
    ``l̂ = sgn(A) · min(sgn(A) l, sgn(A) clip(l, −ε_low, ε_high))`` (the paper's range is
    (e^−0.4, e^0.4): ε = 0.4). The sequence's value sits on each of its tokens: under
    ``aggregation=grpo`` (the paper's (1/G) Σ_i) a sequence's tokens average back to it, and the
    gradient through the geometric mean is exactly the paper's. It defines its own sequence
    ratio, so it needs ``ratio_level=token``. ``ratio`` reports the unclipped geometric mean.
    Per-token ``token_weights`` (a rollout correction) then weigh the sequence by their
    arithmetic mean over its tokens under ``grpo`` (verl's GMPO uses their geometric mean).
    """
    l = x.log_ratio
    sign = torch.sign(x.adv)
    clamped = l.clamp(-o.eps_low, o.eps_high)
    l_hat = sign * torch.minimum(sign * l, sign * clamped)
    lengths = x.valid.sum(-1, keepdim=True).clamp(min=1)
    geo = torch.exp(torch.where(x.valid, l_hat, 0.0).sum(-1, keepdim=True) / lengths)
    values = (geo * x.adv).expand_as(l)
    with torch.no_grad():
        low = (l < -o.eps_low) & (x.adv < 0) & x.valid
        high = (l > o.eps_high) & (x.adv > 0) & x.valid
        ratio = torch.exp(l.sum(-1, keepdim=True) / lengths).expand_as(l)
    return Surrogate(values, low, high, ratio)


gmpo.needs_token_ratio = True  # it builds its own sequence ratio from the token log-ratios


def _covariance(x: Inputs) -> Tensor:
    """Per-token ``(A − mean A)(logp − mean logp)`` (means over the valid tokens of the rows
    given), detached: Cui et al.'s centred cross term, the token's share of Cov(logπ, A)."""
    with torch.no_grad():
        n = x.valid.sum().clamp(min=1)
        adv = x.adv.expand_as(x.logp)
        logp = x.safe_logp.detach()
        adv_mean = torch.where(x.valid, adv, 0.0).sum() / n
        logp_mean = logp.sum() / n
        return (adv - adv_mean) * (logp - logp_mean)


def _quota(ratio: float, valid: Tensor) -> int:
    return max(int(ratio * int(valid.sum())), 1)


def clip_cov(x: Inputs, o: SurrogateOptions) -> Surrogate:
    """Clip-Cov (Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for
    Reasoning Language Models", arXiv:2505.22617; verl ``clip_cov``).

    The entropy collapse is driven by tokens whose log-prob and advantage covary strongly. PPO's
    surrogate, except that ``max(1, ⌊r·n⌋)`` tokens (``r = algo.clip_cov_ratio``, n the valid
    tokens), drawn at random among those PPO does not clip already whose centred covariance
    ``(A − Ā)(logp − logp̄)`` lies in ``(clip_cov_lb, clip_cov_ub)``, get their gradient
    detached (their value is kept, detached; verl zeroes it: same gradient). The means and the
    draw are over the rows the function is given: one micro-batch in training, as in verl.
    """
    values, low, high = _ppo_terms(x, o)
    cov = _covariance(x)
    with torch.no_grad():
        candidates = (cov > o.clip_cov_lb) & (cov < o.clip_cov_ub) & x.valid & ~low & ~high
        index = candidates.flatten().nonzero().squeeze(1)
        pick = index[torch.randperm(index.numel(), device=index.device)[:_quota(
            o.clip_cov_ratio, x.valid)]]
        selected = torch.zeros_like(candidates).flatten()
        selected[pick] = True
        selected = selected.view_as(candidates)
    values = torch.where(selected, values.detach(), values)
    return Surrogate(values, low, high, x.ratio.detach(), selected)


def kl_cov(x: Inputs, o: SurrogateOptions) -> Surrogate:
    """KL-Cov (Cui et al. 2025, arXiv:2505.22617; verl ``kl_cov``): no clipping; the
    ``max(1, ⌊k·n⌋)`` valid tokens with the largest centred covariance ``(A − Ā)(logp − logp̄)``
    (``k = algo.kl_cov_ratio``) get a penalty ``β_cov |log ρ|`` (``algo.kl_cov_coef``):
    ``ρA − β_cov |l|`` there, ``ρA`` elsewhere. Selection over the rows given (a micro-batch),
    as in verl.
    """
    cov = _covariance(x)
    with torch.no_grad():
        flat = torch.where(x.valid, cov, -torch.inf).flatten()
        k = min(_quota(o.kl_cov_ratio, x.valid), int(x.valid.sum()))
        selected = torch.zeros_like(x.valid).flatten()
        selected[torch.topk(flat, k).indices] = True
        selected = selected.view_as(x.valid) & x.valid
    values = x.ratio * x.adv - torch.where(selected, o.kl_cov_coef * x.log_ratio.abs(), 0.0)
    none = torch.zeros_like(x.valid)
    return Surrogate(values, none, none, x.ratio.detach(), selected)


SURROGATES: dict[str, Callable[[Inputs, SurrogateOptions], Surrogate]] = {
    "ppo_clip": ppo_clip,
    "dual_clip": dual_clip,
    "cispo": cispo,
    "sapo": sapo,
    "gmpo": gmpo,
    "clip_cov": clip_cov,
    "kl_cov": kl_cov,
}
