"""Every hook r1kit calls. Plugins implement them with ``@r1kit.api.hookimpl``.

Hooks are always called with keyword arguments. Registration hooks run once, when the plugin
manager is built (before Hydra composes the configuration, so registered names become config
options); lifecycle hooks run while a stage trains.

There are seven plugin kinds, one registration hook each: rewards, samplers, advantage
estimators, filters, datasets, code runners (the ``code`` reward's languages) and judge
backends (the models the ``judge`` reward asks). The
annotations are the contract: every r1kit type they name is importable from :mod:`r1kit.api`,
where each kind's Protocol spells out what the registered object must do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy
from r1kit.api import (AdvantageFn, CodeRunnerFactory, DatasetFn, FilterFn, JudgeBackendFactory,
                       Register, RewardFn, Rollout, RootConfig, SamplerFactory)

if TYPE_CHECKING:  # importing Lightning takes seconds; only the training stages need it
    import lightning

hookspec = pluggy.HookspecMarker("r1kit")


# ---------------------------------------------------------------------------------------------
# Registration: called once per plugin when the plugin manager is built.
# ``register(name, obj, schema=None)`` (``r1kit.api.Register``): ``name`` becomes a config
# option of the kind's group (``reward=[name]``, ``sampler=name``, ...); ``schema`` is an
# optional dataclass whose fields are the object's options: the one place their defaults and
# checks (``__post_init__``) are written. When a stage runs, the object receives its config node
# as ONE typed instance, ``options``: an instance of ``schema`` that also carries the fields
# every plugin of the group has (``r1kit.config.options.options_class``); without a schema,
# just those common fields. Registering a name twice, in one plugin or across plugins, is an
# error.
# ---------------------------------------------------------------------------------------------


@hookspec
def r1kit_register_rewards(register: Register[RewardFn]) -> None:
    """Register reward functions (selectable as ``reward=[name,...]``).

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)`` with ``fn(completions: list[str],
        examples: list[dict], options) -> list[float | None]`` (``r1kit.api.RewardFn``):
        ``examples[i]`` is the dataset row that produced ``completions[i]`` plus its
        ``rendered_prompt``, ``options`` the typed ``reward.<name>`` node (the schema's fields
        plus ``weight``, ``timeout``, ``on_error``, ``applies_to``); ``None`` means "does not
        apply to this sample".
    :return: nothing.
    """


@hookspec
def r1kit_register_samplers(register: Register[SamplerFactory]) -> None:
    """Register samplers, the engines that generate completions (``sampler=name``).

    Called once when the plugin manager is built.

    :param register: ``register(name, factory, schema=None)`` with ``factory(model, tokenizer,
        options) -> Sampler`` (``r1kit.api.SamplerFactory``), ``options`` the typed
        ``sampler`` node (the schema's fields plus ``max_new_tokens``, ``temperature``,
        ``top_p``). The sampler's ``generate(prompt_ids, num_samples, *,
        greedy=False) -> Generation`` returns ``num_samples`` completions per prompt,
        prompt-major; ``sync_weights(model)`` is called after optimizer steps; its
        ``capabilities`` say whether its log-probs are the policy's own.
    :return: nothing.
    """


@hookspec
def r1kit_register_advantages(register: Register[AdvantageFn]) -> None:
    """Register advantage estimators (``advantage=name``).

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)`` with ``fn(rewards: Tensor[N],
        group_ids: LongTensor[N], options) -> Tensor[N]`` (``r1kit.api.AdvantageFn``): each
        completion's reward to its advantage, given the prompt group of each; never NaN.
    :return: nothing.
    """


@hookspec
def r1kit_register_filters(register: Register[FilterFn]) -> None:
    """Register data filters, applied to rollouts in RL and to samples in rejection sampling
    (``filter=[name,...]``).

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)`` with ``fn(rollout: Rollout,
        options) -> Rollout`` (``r1kit.api.FilterFn``): a subset (``rollout.select(idx)``)
        or a copy with changed ``rewards`` or ``loss_weights``. Filters run after rewards and
        before advantages, in the order of the ``filter`` list; dropping whole groups makes
        the trainer sample more prompts (``algo.max_refill_rounds``).
    :return: nothing.
    """


@hookspec
def r1kit_register_datasets(register: Register[DatasetFn]) -> None:
    """Register dataset sources (``data=name``).

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)`` with ``fn(split: str, seed: int,
        options) -> Sequence[dict]`` (``r1kit.api.DatasetFn``): the rows of ``"train"`` or
        ``"val"``, each with a ``prompt`` and, for verifiable tasks, an ``answer``; every other
        field is handed to rewards in ``examples``. ``options``: the typed ``data`` node.
    :return: nothing.
    """


@hookspec
def r1kit_register_code_runners(register: Register[CodeRunnerFactory]) -> None:
    """Register language runners for the ``code`` reward's sandbox (Python is built in).

    Called once when the plugin manager is built.

    :param register: ``register(name, runner, schema=None)``; ``name`` is the language as the
        ``code`` reward's ``language`` option names it (``python``, ``cpp``), ``runner`` a
        ``r1kit.api.CodeRunner`` subclass (or a factory of no arguments,
        ``r1kit.api.CodeRunnerFactory``) that writes a program's files into the sandbox
        directory and returns the command that runs it.
    :return: nothing.
    """


@hookspec
def r1kit_register_judge_backends(register: Register[JudgeBackendFactory]) -> None:
    """Register the models the ``judge`` reward can ask (``reward.judge.backend=name``; built
    in: ``hf``, ``vllm``, ``openai``).

    Called once when the plugin manager is built.

    :param register: ``register(name, factory, schema=None)`` with ``factory(options) ->
        JudgeBackend`` (``r1kit.api.JudgeBackendFactory``), ``options`` the typed
        ``reward.judge`` node; a schema types ``reward.judge.backend_options``. The backend's
        ``complete(conversations)`` returns one reply text per chat conversation, or a
        ``r1kit.api.JudgeFailure`` where that request failed; its ``identity`` keys the
        judge's reply cache.
    :return: nothing.
    """


# ---------------------------------------------------------------------------------------------
# Lifecycle: called while a stage runs. Return values are ignored unless stated.
# ---------------------------------------------------------------------------------------------


@hookspec
def r1kit_configure_callbacks(cfg: RootConfig) -> list[lightning.Callback] | None:
    """Add Lightning callbacks to a training stage.

    Called once per training stage, before the Lightning ``Trainer`` is built.

    :param cfg: the stage's typed configuration (``r1kit.api.RootConfig``: ``cfg.algo.beta``,
        ``cfg.stage.name``, ``cfg.reward["accuracy"].weight``); treat it as read-only.
    :return: a list of ``lightning.Callback`` instances (or ``None``); all plugins' lists are
        concatenated.
    """


@hookspec
def r1kit_on_rollout(rollout: Rollout, step: int) -> None:
    """Inspect a scored rollout.

    Called on every rank after rewards, filters and advantages are computed for a training
    step, before the policy update.

    :param rollout: the ``r1kit.api.Rollout`` about to be trained on (do not modify it).
    :param step: the global optimizer step.
    :return: nothing.
    """


@hookspec
def r1kit_on_train_step_end(metrics: dict[str, float], step: int) -> None:
    """Observe the metrics of a finished optimizer step.

    Called on every rank after the step's metrics are computed and reduced over ranks (before
    they are logged).

    :param metrics: dict of metric name to float, as they are logged (the same on every rank).
    :param step: the global optimizer step.
    :return: nothing.
    """


@hookspec
def r1kit_on_stage_end(stage: str, outputs: dict[str, Any]) -> None:
    """Observe the end of a pipeline stage.

    Called once on rank zero after a stage writes its manifest.

    :param stage: the stage's name (e.g. ``"cold_start"``).
    :param outputs: dict of what the stage produced (``checkpoint`` path, ``dataset`` path,
        ``metrics``), as written to the manifest.
    :return: nothing.
    """
