"""Filters applied to RL rollouts after rewards and before advantages (DAPO's data tricks).

Each is ``fn(rollout, **options) -> Rollout``; the options are the fields of its schema.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from r1kit import hookimpl
from r1kit.algo.groups import group_all_equal, group_index
from r1kit.config.schema import ConfigError
from r1kit.rollout.batch import Rollout


def zero_variance(rollout: Rollout, options=None) -> Rollout:
    """Drop every group whose rewards are all equal (DAPO dynamic sampling).

    Such a group has zero advantage everywhere, so it adds nothing to the policy gradient but
    still dilutes the batch (and the KL term alone would act on it). The trainer samples more
    prompts to refill the batch.
    """
    if len(rollout) == 0:
        return rollout
    index, num_groups = group_index(rollout.group_ids)
    keep = ~group_all_equal(rollout.rewards, index, num_groups)
    return rollout.select(keep.nonzero().flatten())


def _mask_truncated(rollout: Rollout, truncated: torch.Tensor, penalty: float) -> Rollout:
    return rollout.replace(loss_weights=torch.where(truncated, 0.0, rollout.loss_weights))


def _penalise_truncated(rollout: Rollout, truncated: torch.Tensor, penalty: float) -> Rollout:
    return rollout.replace(rewards=torch.where(truncated, penalty, rollout.rewards))


TRUNCATION_MODES = {"mask": _mask_truncated, "penalty": _penalise_truncated}


@dataclass
class TruncationOptions:
    #: mask: truncated completions get loss weight 0 (DAPO overlong filtering); they still
    #: count in their group's reward statistics. penalty: their reward is replaced by ``penalty``.
    mode: str = "mask"
    #: the reward a truncated completion gets in ``penalty`` mode (ignored in ``mask`` mode).
    penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in TRUNCATION_MODES:
            raise ConfigError(f"filter.truncation.mode: must be one of "
                              f"{', '.join(TRUNCATION_MODES)}, got {self.mode!r}")


def truncation(rollout: Rollout, options: TruncationOptions) -> Rollout:
    """Handle completions cut off by the length limit (``rollout.truncated``).

    A truncated completion has no final answer, so its reward says "too long", not "wrong"; by
    default it is kept out of the loss. ``reward_parts`` keep the raw rewards for logging.
    """
    apply = TRUNCATION_MODES[options.mode]
    return apply(rollout, rollout.truncated.bool(), options.penalty)


@dataclass
class OverlongOptions:
    #: L_max, in tokens: the length at (and beyond) which the penalty is −1. Usually the
    #: sampler's ``max_new_tokens``.
    max_length: int = MISSING
    #: L_cache, in tokens: the penalty ramps linearly from 0 to −1 over the last ``buffer``
    #: tokens before ``max_length`` (DAPO: 4096 of 20480).
    buffer: int = MISSING

    def __post_init__(self) -> None:
        if not 0 < self.buffer <= self.max_length:
            raise ConfigError(f"filter.overlong.buffer: must be in (0, max_length="
                              f"{self.max_length}], got {self.buffer}")


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int) -> torch.Tensor:
    """DAPO's soft overlong punishment, with ``L = lengths``::

        0                                   if L ≤ max_length − buffer
        ((max_length − buffer) − L) / buffer  if max_length − buffer < L ≤ max_length
        −1                                  if L > max_length
    """
    return ((max_length - buffer - lengths) / buffer).clamp(min=-1.0, max=0.0)


def overlong(rollout: Rollout, options: OverlongOptions) -> Rollout:
    """Add DAPO's length penalty (in [−1, 0], by ``len(completion_ids)``) to the rewards.

    A soft ramp instead of a cliff at the limit, so a reasoning trace slightly under the limit
    is not rewarded very differently from one slightly over it.
    """
    lengths = torch.tensor([len(ids) for ids in rollout.completion_ids],
                           dtype=rollout.rewards.dtype, device=rollout.rewards.device)
    return rollout.replace(rewards=rollout.rewards + overlong_penalty(
        lengths, options.max_length, options.buffer))


@hookimpl
def r1kit_register_filters(register):
    register("zero_variance", zero_variance)
    register("truncation", truncation, schema=TruncationOptions)
    register("overlong", overlong, schema=OverlongOptions)
