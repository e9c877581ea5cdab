"""A GRPO step's batch: one rollout laid out for the loss (``PolicyBatch``), and the pieces that
fill it once per rollout, before the μ updates: which rows the updates compute, where π_old's
log-probs come from, π_ref's log-probs, and the sampler/trainer mismatch correction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.algo.microbatch import learning_rows
from r1kit.algo.microbatch import micro_batches as split_rows
from r1kit.algo.correction import CORRECTIONS, masked_fraction
from r1kit.algo.mismatch import logprob_mismatch, sampler_logprob_tensor


@dataclass
class PolicyBatch:
    """One rollout as the loss sees it: N rows, each a prompt + completion.

    ``mask`` is ``(N, T)`` over the completion tokens, scaled by the rollout's ``loss_weights``
    (a filter may mask a completion out of the loss without removing it from its group). The
    log-probs are ``(N, T)`` and 0 where ``mask`` is 0.
    """

    ids: Tensor  #: (N, L) prompt + completion token ids, right-padded
    attention: Tensor  #: (N, L) 1 on real tokens
    positions: Tensor  #: (N, T) index in ``ids`` of the logit that predicts completion token t
    mask: Tensor  #: (N, T) float
    group_ids: Tensor  #: (N,) the prompt group of each row
    advantages: Tensor | None = None  #: (N,)
    #: log π_old; None: π_old is the policy before its only update (μ = 1), and the loss takes
    #: the detached current log-probs (ρ = 1 with the policy gradient, no extra forward pass)
    old_logp: Tensor | None = None
    ref_logp: Tensor | None = None  #: log π_ref; None when β = 0 (no KL term)
    #: per-token weights on the surrogate correcting an engine sampler's log-probs (TIS)
    is_weights: Tensor | None = None

    def __len__(self) -> int:
        return self.mask.size(0)

    def rows(self, index: Tensor) -> "PolicyBatch":
        """The rows at ``index``, every tensor sliced alike."""
        return PolicyBatch(**{f.name: None if getattr(self, f.name) is None
                              else getattr(self, f.name)[index]
                              for f in dataclasses.fields(self)})


def token_layout(rollout, pad_id: int, device) -> PolicyBatch:
    """The rollout's tokens as a ``PolicyBatch`` with no loss terms yet (``mask`` 1 on every
    completion token): what log-prob passes need."""
    ids, attention, positions, mask = pack(rollout.prompt_ids, rollout.completion_ids, pad_id,
                                           device)
    return PolicyBatch(ids, attention, positions, mask, rollout.group_ids.to(device))


# ------------------------------------------------------------------- which rows are computed
def active_rows(batch: PolicyBatch, algo) -> Tensor:
    """Indices of the rows whose forward/backward can change the update: all of them, except
    that with β = 0 and ``algo.skip_zero_advantage`` the groups with only zero advantages are
    left out (their loss is exactly 0; see ``learning_rows``)."""
    if algo.beta != 0 or not algo.skip_zero_advantage:
        return torch.arange(len(batch), device=batch.mask.device)
    keep = learning_rows(batch.advantages, batch.mask, batch.group_ids)
    return keep.nonzero().squeeze(1)


def micro_batches(batch: PolicyBatch, rows: Tensor, algo) -> list[Tensor]:
    """``rows`` (indices) as micro-batches within ``algo.micro_batch_tokens`` (rows × the
    longest row's prompt + completion tokens) and ``algo.micro_batch_size`` rows, longest rows
    first; a group may span several (``r1kit.algo.microbatch``)."""
    return split_rows(rows, batch.attention[rows].sum(1), max_tokens=algo.micro_batch_tokens,
                      max_rows=algo.micro_batch_size)


@torch.no_grad()
def batch_logprobs(model, batch: PolicyBatch, rows: Tensor | None = None, *, algo,
                   temperature: float) -> Tensor:
    """``(N, T)`` log-probs of the completions under ``model`` (every row, or only ``rows``; 0
    elsewhere), computed in micro-batches (``micro_batches``), without gradient."""
    rows = torch.arange(len(batch), device=batch.mask.device) if rows is None else rows
    full = torch.zeros_like(batch.mask)
    for chunk in micro_batches(batch, rows, algo):
        logp, _ = completion_logprobs(model, batch.ids[chunk], batch.attention[chunk],
                                      batch.positions[chunk], batch.mask[chunk],
                                      temperature=temperature,
                                      chunk_tokens=algo.logprob_chunk_tokens)
        full[chunk] = logp
    return full


# -------------------------------------------------------------------- where π_old comes from
def sampler_logprobs_kind(rollout, *, autocast: bool) -> str:
    """What the sampler's log-probs of ``rollout`` are to the trainer: ``"none"`` (not
    reported), ``"exact"`` (the policy's own: π_old for free) or ``"engine"`` (another engine's,
    vLLM's: compared with the trainer's every step, optionally corrected). Under autocast an
    in-process sampler's log-probs are no longer what the trainer's forward computes, so they
    count as not reported."""
    if rollout.sampler_logprobs is None:
        return "none"
    if not rollout.sampler_logprobs_exact:
        return "engine"
    return "none" if autocast else "exact"


#: (μ > 1, the sampler's log-probs) -> where π_old's log-probs come from:
#: "current" — the detached log-probs of the update itself (μ = 1: π_old is the policy before
#: its only update, no extra pass); "sampler" — the sampler's exact log-probs (no pass);
#: "forward" — one no-grad forward pass before the updates (the policy moves between μ > 1
#: updates; an engine's log-probs must be compared with the trainer's at every μ).
BEHAVIOUR_SOURCE = {
    (False, "none"): "current",
    (False, "exact"): "current",
    (False, "engine"): "forward",
    (True, "none"): "forward",
    (True, "exact"): "sampler",
    (True, "engine"): "forward",
}


def behaviour_source(iterations: int, sampler_logprobs: str, *, pipelined: bool = False) -> str:
    """Where π_old comes from for ``iterations`` (μ) updates per rollout (``BEHAVIOUR_SOURCE``).
    A pipelined rollout was sampled from older weights than the policy's: its π_old is the
    sampler's own log-probs whatever μ (the policy's would make the first ratio 1 where it is
    not)."""
    if pipelined and sampler_logprobs != "none":
        return "sampler"
    return BEHAVIOUR_SOURCE[(iterations > 1, sampler_logprobs)]


def sampler_logprobs_tensor(rollout, width: int, device) -> Tensor:
    """The sampler's log-probs as a zero-padded ``(N, width)`` tensor."""
    return sampler_logprob_tensor(rollout.sampler_logprobs, width, device=device)


def padded_reference(reference_logprobs: list[Tensor], mask: Tensor) -> Tensor:
    """The reference log-probs computed while the rewards were scored (one tensor per kept
    completion) as an ``(N, T)`` tensor in the batch's layout, 0 where ``mask`` is 0."""
    ref = pad_sequence(reference_logprobs, batch_first=True)
    ref = F.pad(ref, (0, mask.size(1) - ref.size(1))).to(mask.device)
    return torch.where(mask != 0, ref, 0.0)


# --------------------------------------------------------------- an engine sampler's mismatch
def engine_mismatch(sampled: Tensor, old_logp: Tensor, mask: Tensor,
                    weights: Tensor | None = None) -> dict:
    """``sampler/*`` metrics: how far the engine's log-probs are from the trainer's π_old, and
    the share of tokens the correction ``weights`` dropped (``is_masked_frac``)."""
    metrics = {f"sampler/{key}": value
               for key, value in logprob_mismatch(sampled, old_logp, mask).items()}
    metrics["sampler/is_masked_frac"] = masked_fraction(weights, mask)
    return metrics


def correction_weights(capabilities, sampled: Tensor, old_logp: Tensor,
                       mask: Tensor) -> Tensor | None:
    """The weights correcting the engine's sampling distribution toward π_old (None: none):
    ``capabilities.importance_correction`` names an entry of ``r1kit.algo.correction``'s
    ``CORRECTIONS``, bounded by ``importance_floor`` and ``importance_cap``."""
    correct = CORRECTIONS[capabilities.importance_correction]
    return correct(sampled, old_logp, mask, capabilities.importance_floor,
                   capabilities.importance_cap)
