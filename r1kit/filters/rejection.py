"""Filters of the rejection-sampling stage: keep correct, readable, non-redundant samples.

DeepSeek-R1 (§2.3.3) samples k completions per prompt from the RL checkpoint and keeps only the
correct ones, dropping those with mixed languages, long paragraphs or code blocks. These filters
read ``rollout.reward_parts`` (each reward by name, NaN where a reward does not apply) and return
the kept subset, in the original order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from omegaconf import MISSING

from r1kit import hookimpl
from r1kit.config.schema import ConfigError
from r1kit.rollout.batch import Rollout


def _keep(rollout: Rollout, keep: torch.Tensor) -> Rollout:
    return rollout.select(keep.nonzero().flatten())


def _reward_part(rollout: Rollout, reward: str, filter_name: str) -> torch.Tensor:
    if reward not in rollout.reward_parts:
        have = ", ".join(sorted(rollout.reward_parts)) or "none"
        raise ValueError(f"filter '{filter_name}' needs the reward '{reward}': add it to the "
                         f"reward list (reward=[...,{reward}]) or set filter.{filter_name}.reward; "
                         f"rewards computed: {have}")
    return rollout.reward_parts[reward]


def _at_least(rollout: Rollout, filter_name: str, options: ThresholdOptions) -> Rollout:
    values = _reward_part(rollout, options.reward, filter_name)
    keep = values >= options.threshold  # NaN (reward not applicable) compares False: dropped...
    if options.keep_not_applicable:
        keep = keep | values.isnan()  # ...unless asked to keep what the reward cannot judge
    return _keep(rollout, keep)


@dataclass
class ThresholdOptions:
    """Options of the filters that keep samples by one reward's score."""

    reward: str = MISSING  #: the reward part that judges the samples
    threshold: float = 1.0  #: keep samples whose reward is >= threshold
    #: keep samples the reward does not apply to (NaN), e.g. prompts without a reference answer
    keep_not_applicable: bool = False


@dataclass
class CorrectOptions(ThresholdOptions):
    reward: str = "accuracy"  #: the reward part that judges correctness
    #: Rewards that decide where ``reward`` does not apply (NaN), in order: ``[judge]`` keeps
    #: the judged-correct samples of prompts no rule can check (R1's generative reward model).
    also: list = field(default_factory=list)


def correct(rollout: Rollout, options: CorrectOptions) -> Rollout:
    """Keep samples whose deciding reward is >= ``threshold``: ``reward_parts[reward]``, or
    where it does not apply the first of ``also`` that does (verified or judged correct)."""
    if not options.also:
        return _at_least(rollout, "correct", options)
    values = _reward_part(rollout, options.reward, "correct").clone()
    for name in options.also:
        fallback = _reward_part(rollout, name, "correct")
        values = torch.where(values.isnan(), fallback, values)
    keep = values >= options.threshold
    if options.keep_not_applicable:
        keep = keep | values.isnan()
    return _keep(rollout, keep)


@dataclass
class WellFormattedOptions(ThresholdOptions):
    #: the format reward is 0/1: with threshold 1, only fully well-formatted samples are kept
    reward: str = "format"


def well_formatted(rollout: Rollout, options: WellFormattedOptions) -> Rollout:
    """Keep samples with ``reward_parts[reward] >= threshold`` (think/answer tags in place)."""
    return _at_least(rollout, "well_formatted", options)


@dataclass
class LanguageConsistentOptions(ThresholdOptions):
    reward: str = "language"
    #: the language reward is the share of the target language; 0.95 tolerates a few
    #: symbols, formulas and names but not mixed-language reasoning
    threshold: float = 0.95


def language_consistent(rollout: Rollout, options: LanguageConsistentOptions) -> Rollout:
    """Keep samples with ``reward_parts[reward] >= threshold`` (no mixed languages)."""
    return _at_least(rollout, "language_consistent", options)


@dataclass
class LengthOptions:
    min_tokens: int = 0  #: keep completions with at least this many tokens
    max_tokens: Optional[int] = None  #: and at most this many (null: no upper bound)

    def __post_init__(self) -> None:
        if self.min_tokens < 0:
            raise ConfigError(f"filter.length.min_tokens: must be >= 0, got {self.min_tokens}")
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ConfigError(f"filter.length.max_tokens: must be >= min_tokens "
                              f"({self.min_tokens}), got {self.max_tokens}")


def length(rollout: Rollout, options: LengthOptions) -> Rollout:
    """Keep completions with ``min_tokens <= len(completion_ids) <= max_tokens``."""
    upper = float("inf") if options.max_tokens is None else options.max_tokens
    keep = torch.tensor([options.min_tokens <= len(ids) <= upper for ids in rollout.completion_ids],
                        dtype=torch.bool)
    return _keep(rollout, keep)


def dedupe(rollout: Rollout, options=None) -> Rollout:
    """Drop exact duplicates within a prompt group, keeping the first occurrence.

    Texts are compared after collapsing every run of whitespace to one space and stripping the
    ends, so samples differing only in spacing or line breaks count as duplicates (they would
    over-weight one solution in the SFT set). Equal texts in different groups are all kept.
    """
    seen: set[tuple[int, str]] = set()
    keep = []
    for group, text in zip(rollout.group_ids.tolist(), rollout.completions):
        key = (group, " ".join(text.split()))
        keep.append(key not in seen)
        seen.add(key)
    return _keep(rollout, torch.tensor(keep, dtype=torch.bool))


@dataclass
class MaxPerPromptOptions:
    n: int = MISSING  #: samples to keep per prompt group at most

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"filter.max_per_prompt.n: must be >= 1, got {self.n}")


def max_per_prompt(rollout: Rollout, options: MaxPerPromptOptions) -> Rollout:
    """Keep the first ``n`` samples of each prompt group (in rollout order); run it last."""
    n = options.n
    taken: dict[int, int] = {}
    keep = []
    for group in rollout.group_ids.tolist():
        taken[group] = taken.get(group, 0) + 1
        keep.append(taken[group] <= n)
    return _keep(rollout, torch.tensor(keep, dtype=torch.bool))


@hookimpl
def r1kit_register_filters(register):
    register("correct", correct, schema=CorrectOptions)
    register("well_formatted", well_formatted, schema=WellFormattedOptions)
    register("language_consistent", language_consistent, schema=LanguageConsistentOptions)
    register("length", length, schema=LengthOptions)
    register("dedupe", dedupe)
    register("max_per_prompt", max_per_prompt, schema=MaxPerPromptOptions)
