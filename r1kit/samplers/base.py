"""The sampler contract: what a sampler plugin's factory returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass
class Generation:
    """Completions for a batch of prompts, ``num_samples`` per prompt, prompt-major order.

    ``completion_ids[i]`` excludes the prompt and any padding, and includes the EOS token when
    the model produced one. ``truncated[i]`` is True when generation stopped at
    ``max_new_tokens`` instead of EOS. ``logprobs[i][t]`` is the sampler's own log-probability of
    token t (None when the engine does not report them). ``logprobs_exact`` says they are the
    training policy's own log-probs (same weights, same precision, the trainer's formula: an
    in-process sampler over the policy), so GRPO may use them as π_old instead of recomputing;
    an engine with its own kernels (vLLM) leaves it False and the trainer recomputes and
    compares.

    Which of these a sampler can give, and how the trainer should treat them, it declares in
    its :class:`SamplerCapabilities`.
    """

    completion_ids: list[list[int]]
    truncated: list[bool]
    logprobs: list[list[float]] | None = None
    logprobs_exact: bool = False


@dataclass
class SamplerCapabilities:
    """What a sampler declares to the trainer (``Sampler.capabilities``), instead of the trainer
    probing it for attributes."""

    #: It can return each sampled token's log-prob under the training policy itself
    #: (``Generation.logprobs_exact``) when asked with ``request_logprobs(True)``: GRPO with
    #: μ > 1 then takes π_old from it instead of a forward pass.
    exact_logprobs: bool = False
    #: The correction for the gap between its log-probs and the trainer's (an engine with
    #: its own kernels): an entry of ``r1kit.algo.correction.CORRECTIONS``: ``"none"``,
    #: ``"tis"`` (truncated importance sampling, ``min(π_old / π_sampler, importance_cap)`` per
    #: token), ``"token_mask"``, ``"icepop"``, ``"seq_tis"``, ``"seq_mask"``.
    importance_correction: str = "none"
    importance_cap: float = 2.0  #: upper bound of the ratio (truncation cap, mask upper edge)
    importance_floor: float = 0.5  #: lower edge of the masking corrections' band
    #: It generates with the training policy's own tensors (no weights of its own): pipelined
    #: rollouts (``algo.async_rollouts``) then give a second instance a copy of the weights.
    samples_policy_in_place: bool = False


@runtime_checkable
class Sampler(Protocol):
    """The engine that generates completions for the trainer, the rejection-sampling stage and
    evaluation; a sampler plugin's factory (``r1kit.api.SamplerFactory``) returns one.

    ``capabilities`` declares what beyond ``generate`` and ``sync_weights`` it offers and how
    the trainer must treat its log-probs.
    """

    capabilities: SamplerCapabilities

    def generate(self, prompt_ids: list[list[int]], num_samples: int, *,
                 greedy: bool = False) -> Generation:
        """Sample ``num_samples`` completions for every prompt (``greedy``: argmax decoding)."""

    def sync_weights(self, model) -> None:
        """Make the next ``generate`` use ``model``'s current weights."""

    def request_logprobs(self, wanted: bool) -> None:
        """Report (or stop reporting) log-probs; only called when ``exact_logprobs``."""


def sampler_capabilities(sampler) -> SamplerCapabilities:
    """What ``sampler`` declares; a third-party sampler that declares nothing can do nothing
    beyond ``generate`` and ``sync_weights``."""
    return getattr(sampler, "capabilities", None) or SamplerCapabilities()
