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

    A sampler may expose a ``report_logprobs`` attribute: the trainer sets it to True when it
    can use the log-probs, so samplers that pay for them only do so then.
    """

    completion_ids: list[list[int]]
    truncated: list[bool]
    logprobs: list[list[float]] | None = None
    logprobs_exact: bool = False


@runtime_checkable
class Sampler(Protocol):
    def generate(self, prompt_ids: list[list[int]], num_samples: int, *,
                 greedy: bool = False) -> Generation:
        """Sample ``num_samples`` completions for every prompt (``greedy``: argmax decoding)."""

    def sync_weights(self, model) -> None:
        """Make the next ``generate`` use ``model``'s current weights."""
