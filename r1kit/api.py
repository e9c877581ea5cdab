"""The plugin API: everything a plugin package imports from r1kit, and nothing else.

A plugin is a module of hook implementations (``@hookimpl``, hooks in :mod:`r1kit.plugin.hookspecs`).
Its registration hooks receive a :class:`Register` and hand it objects of the seven plugin kinds;
the Protocols below are the contract of each kind, so that a type checker can check a plugin
against them and a plugin never has to import r1kit's internals (which may move; these names
do not). They are ``runtime_checkable``; ``isinstance`` checks that the members exist, not
their signatures.

============= ================================ ===================================
kind          register(name, obj) takes        selected in the config as
============= ================================ ===================================
reward        :class:`RewardFn`                ``reward=[name,...]``
sampler       :class:`SamplerFactory`          ``sampler=name``
advantage     :class:`AdvantageFn`             ``advantage=name``
filter        :class:`FilterFn`                ``filter=[name,...]``
dataset       :class:`DatasetFn`               ``data=name``
code_runner   :class:`CodeRunnerFactory`       ``reward.code.language=name``
judge_backend :class:`JudgeBackendFactory`     ``reward.judge.backend=name``
============= ================================ ===================================
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, TypeVar, runtime_checkable

import torch

from r1kit import hookimpl
from r1kit.config.schema import ConfigError, RootConfig
from r1kit.data.response import full_response, opened_response
from r1kit.rewards.code.runners import CodeRunner
from r1kit.rewards.judge.backends.base import JudgeFailure
from r1kit.rollout.batch import Rollout
from r1kit.samplers.base import Generation, Sampler, SamplerCapabilities

__all__ = [
    "hookimpl", "Register",
    "RewardFn", "full_response", "opened_response",
    "SamplerFactory", "Sampler", "SamplerCapabilities", "Generation",
    "AdvantageFn", "FilterFn", "Rollout", "DatasetFn", "CodeRunnerFactory", "CodeRunner",
    "JudgeBackendFactory", "JudgeBackend", "JudgeFailure",
    "ConfigError", "RootConfig", "plugin_options",
]

#: What a ``Register`` accepts: one plugin kind's Protocol.
_PluginT = TypeVar("_PluginT", contravariant=True)


@runtime_checkable
class Register(Protocol[_PluginT]):
    """The ``register`` callable each registration hook receives (``Register[RewardFn]`` in
    ``r1kit_register_rewards``, and so on).

    ``name`` must be a Python identifier: it becomes an option of the kind's config group, and
    registering it twice (in one plugin or across plugins) is an error naming both. ``schema``
    is an optional dataclass whose fields are the options ``obj`` accepts: they become the
    config node's typed keys with their defaults, and its ``__post_init__`` validates them when
    the config is composed (raise :class:`ConfigError` naming the key). The schema is the one
    place the options' defaults are written: ``obj`` receives the whole config node as one
    instance of it (see each kind's Protocol); :func:`plugin_options` builds one in tests.
    """

    def __call__(self, name: str, obj: _PluginT, schema: type | None = None) -> None: ...


@runtime_checkable
class RewardFn(Protocol):
    """Scores a batch of completions: one value per completion, ``None`` where the reward does
    not apply (it then adds nothing to the weighted total and is left out of its mean).

    ``examples[i]`` is the dataset row that produced ``completions[i]`` (its ``prompt``,
    ``answer`` and any other field), with ``rendered_prompt`` added: the prompt as the model saw
    it, template applied. A template may open the response itself (R1-Zero's ends with
    ``Assistant: <think>``); the completion then continues it, so judge the whole response,
    ``full_response(example["rendered_prompt"], completion)`` (``opened_response(prompt)`` is
    the part the prompt wrote).

    ``options`` is the config node ``reward.<name>`` as one typed object: an instance of the
    registered schema (``options.sample_timeout``), also carrying the harness's fields
    (``weight``, ``timeout``, ``on_error``, ``applies_to``). Each reward runs in a thread of its own, under its
    ``timeout``; an exception stops the run naming the reward and the sample (or, with
    ``on_error=skip``, the sample scores ``None`` and is counted), so raise rather than return
    0.0 for a sample you cannot judge.
    """

    def __call__(self, completions: list[str], examples: list[dict],
                 options: Any) -> list[float | None]: ...


@runtime_checkable
class SamplerFactory(Protocol):
    """Builds the sampler for a policy: ``model`` is the Hugging Face causal LM being trained,
    ``tokenizer`` its tokenizer, ``options`` the typed ``sampler`` node (an instance of the
    registered schema with ``max_new_tokens``, ``temperature`` and ``top_p``). Called when a
    stage that samples starts."""

    def __call__(self, model: torch.nn.Module, tokenizer: Any, options: Any) -> Sampler: ...


@runtime_checkable
class AdvantageFn(Protocol):
    """Turns each completion's scalar reward into its advantage, shared by all of its tokens.

    ``rewards`` and ``group_ids`` are 1-D and of equal length N; ``group_ids[i]`` (long) is the
    prompt group of completion ``i``. Returns a float tensor of N values, never NaN (a group of
    one or of equal rewards must still give numbers). ``options``: the typed ``advantage``
    node. An estimator of each reward's own scores sets ``fn.uses_reward_parts = True`` and
    then also receives ``reward_parts`` (``Rollout.reward_parts``) and ``reward_weights``
    (name -> configured weight) as keywords (the built-in ``gdpo`` and ``pass_at_k`` do).
    """

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor,
                 options: Any) -> torch.Tensor: ...


@runtime_checkable
class FilterFn(Protocol):
    """Decides what of a scored rollout is trained on: returns a subset
    (``rollout.select(indices)``) or a copy with changed ``rewards`` or ``loss_weights``
    (``rollout.replace(...)``), never the input modified in place.

    Filters run after rewards and before advantages, in the order of the ``filter`` list; the
    same filters pick samples in rejection sampling. Dropping whole groups makes the trainer
    sample more prompts to refill the batch. ``options``: the typed ``filter.<name>`` node.
    """

    def __call__(self, rollout: Rollout, options: Any) -> Rollout: ...


@runtime_checkable
class DatasetFn(Protocol):
    """The rows of ``split`` (``"train"`` or ``"val"``; an empty ``val`` makes r1kit hold out
    the last ``data.val_size`` training rows). Every process of a run calls it, so the rows
    must depend on nothing but the arguments (draw randomness from ``seed``).

    Each row is a dict with a ``prompt`` (str) and, for verifiable tasks, an ``answer``; every
    other field is kept and handed to rewards in ``examples``. ``options``: the typed ``data``
    node (the registered schema's fields plus ``batch_size``, ``template``, ``val_size``).
    """

    def __call__(self, split: str, seed: int, options: Any) -> Sequence[dict]: ...


@runtime_checkable
class CodeRunnerFactory(Protocol):
    """Makes the runner of one language for the ``code`` reward's sandbox: a :class:`CodeRunner`
    subclass itself, or a function of no arguments. Called on every call of the ``code`` reward
    whose ``language`` is the registered name.

    :class:`CodeRunner` is an abstract base class rather than a Protocol: subclass it, implement
    ``prepare`` and set ``fence_tags``; its other methods have defaults that the sandbox calls.
    """

    def __call__(self) -> CodeRunner: ...


@runtime_checkable
class JudgeBackend(Protocol):
    """A model the ``judge`` reward asks: ``complete`` returns one reply per chat conversation
    (``[{"role": "user", "content": ...}]``, a system message first when configured), in
    order: the reply's text, or a :class:`JudgeFailure` where that request failed after the
    backend's own retries (never an exception for one bad request: the other replies of the
    batch are still good). It may be called from several threads.

    ``identity`` names what answers (backend, model, decoding settings): the judge's reply
    cache is keyed by (identity, conversation), so a change of judge never reuses the old
    judge's replies.
    """

    identity: str

    def complete(self, conversations: list[list[dict]]) -> list[str | JudgeFailure]: ...


@runtime_checkable
class JudgeBackendFactory(Protocol):
    """Builds a judge backend from the typed ``reward.judge`` node (``options.model``,
    ``options.max_new_tokens``, ``options.temperature``; a backend's own options, typed by its
    registered schema, are ``options.backend_options``). Called once per process and options,
    on the judge's first call; the backend is then reused."""

    def __call__(self, options: Any) -> JudgeBackend: ...


def plugin_options(group: str, name: str, **values: Any) -> Any:
    """The typed options r1kit hands plugin ``name`` of config group ``group`` (``reward``,
    ``sampler``, ``advantage``, ``filter``, ``data``) for a node with ``values``: defaults
    filled in from its schema and the group's common fields, checks run. For tests of a
    plugin: ``countdown_reward(completions, rows, plugin_options("reward", "countdown"))``."""
    from r1kit.config.validate import plugin_options as typed_options
    from r1kit.plugin.manager import get_registry

    key = group if group in ("sampler", "advantage", "data") else f"{group}.{name}"
    return typed_options(group, name, {**values, "name": name} if key == group else values,
                         get_registry(), key)
