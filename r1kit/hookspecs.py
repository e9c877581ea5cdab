"""Every hook r1kit calls. Plugins implement them with ``@r1kit.hookimpl``.

Hooks are always called with keyword arguments. Registration hooks run once, when the plugin
manager is built (before Hydra composes the configuration, so registered names become config
options); lifecycle hooks run while a stage trains.

The five plugin kinds and their contracts (what ``register`` accepts) are spelled out in each
registration hook below and in the README's "Writing a plugin" section.
"""

import pluggy

hookspec = pluggy.HookspecMarker("r1kit")


# ---------------------------------------------------------------------------------------------
# Registration: called once per plugin when the plugin manager is built.
# ``register(name, obj, schema=None)``: ``name`` becomes a config option of the kind's group
# (``reward=[name]``, ``sampler=name``, ...); ``schema`` is an optional dataclass whose fields
# are the options the object accepts (typed and validated when the config is composed).
# Registering a name twice, in one plugin or across plugins, is an error.
# ---------------------------------------------------------------------------------------------


@hookspec
def r1kit_register_rewards(register):
    """Register reward functions.

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)``. ``fn`` has the signature
        ``fn(completions: list[str], examples: list[dict], **options) -> list[float | None]``:
        ``examples[i]`` is the dataset row that produced ``completions[i]`` (its ``prompt`` and
        reference fields such as ``answer``), ``options`` are the keys of the reward's config
        node ``reward.<name>`` other than the harness keys ``weight``, ``timeout`` and
        ``on_error``. Return one value per completion; ``None``
        means "does not apply to this sample" (it contributes nothing to the weighted total and
        is left out of the reward's mean).
    :return: nothing.
    """


@hookspec
def r1kit_register_samplers(register):
    """Register samplers (the engines that generate completions).

    Called once when the plugin manager is built.

    :param register: ``register(name, factory, schema=None)``. ``factory(model, tokenizer,
        **options) -> r1kit.sampling.Sampler`` builds the sampler for a policy model;
        ``options`` are the keys of ``sampler`` other than ``name``. The sampler's
        ``generate(prompt_ids, num_samples, greedy=False) -> Generation`` returns
        ``num_samples`` completions per prompt, prompt-major, and ``sync_weights(model)`` is
        called after optimizer steps so the sampler generates from the current policy.
    :return: nothing.
    """


@hookspec
def r1kit_register_advantages(register):
    """Register advantage estimators.

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)``. ``fn(rewards: Tensor[N],
        group_ids: LongTensor[N], **options) -> Tensor[N]`` turns each completion's scalar
        reward into its advantage (shared by all of its tokens); ``group_ids[i]`` is the prompt
        group of completion ``i``. Must never return NaN.
    :return: nothing.
    """


@hookspec
def r1kit_register_filters(register):
    """Register data filters (applied to rollouts in RL, and to samples in rejection sampling).

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)``. ``fn(rollout: r1kit.rollout.Rollout,
        **options) -> Rollout`` returns the rollout to keep: a subset (``rollout.select(idx)``),
        or a copy with changed ``rewards`` or ``loss_weights``. Filters run after rewards and
        before advantages, in the order of the ``filter`` list. A filter that drops whole
        groups makes the trainer sample more prompts to refill the batch
        (``algo.max_refill_rounds``).
    :return: nothing.
    """


@hookspec
def r1kit_register_datasets(register):
    """Register dataset sources (selectable as ``data=<name>``).

    Called once when the plugin manager is built.

    :param register: ``register(name, fn, schema=None)``. ``fn(split: str, seed: int,
        **options) -> Sequence[dict]`` returns the rows of ``split`` (``"train"`` or ``"val"``);
        each row has a ``prompt`` (str) and, for verifiable tasks, an ``answer``; every other
        field is kept and handed to rewards as part of ``examples``. ``options`` are the keys of
        the dataset's schema (``data.<option>``).
    :return: nothing.
    """


@hookspec
def r1kit_register_code_runners(register):
    """Register language runners for the ``code`` reward's sandbox (Python is built in).

    Called once when the plugin manager is built.

    :param register: ``register(name, runner, schema=None)``; ``name`` is the language as the
        ``code`` reward's ``language`` option and fenced-block tags name it (``python``,
        ``cpp``). ``runner`` is a ``r1kit.rewards.code.runners.CodeRunner`` class (or factory)
        that prepares a program's files in the sandbox directory and returns the command to run.
    :return: nothing.
    """


# ---------------------------------------------------------------------------------------------
# Lifecycle: called while a stage runs. Return values are ignored unless stated.
# ---------------------------------------------------------------------------------------------


@hookspec
def r1kit_configure_callbacks(cfg):
    """Add Lightning callbacks to a training stage.

    Called once per training stage, before the Lightning ``Trainer`` is built.

    :param cfg: the resolved stage configuration (read-only ``DictConfig``).
    :return: a list of ``lightning.Callback`` instances (or ``None``); all plugins' lists are
        concatenated.
    """


@hookspec
def r1kit_on_rollout(rollout, step):
    """Inspect a scored rollout.

    Called on every rank after rewards, filters and advantages are computed for a training
    step, before the policy update.

    :param rollout: the ``r1kit.rollout.Rollout`` about to be trained on (do not modify it).
    :param step: the global optimizer step.
    :return: nothing.
    """


@hookspec
def r1kit_on_train_step_end(metrics, step):
    """Observe the metrics of a finished optimizer step.

    Called on every rank after the step's metrics are computed (before they are logged).

    :param metrics: dict of metric name to float, as they are logged.
    :param step: the global optimizer step.
    :return: nothing.
    """


@hookspec
def r1kit_on_stage_end(stage, outputs):
    """Observe the end of a pipeline stage.

    Called once on rank zero after a stage writes its manifest.

    :param stage: the stage's name (e.g. ``"cold_start"``).
    :param outputs: dict of what the stage produced (``checkpoint`` path, ``dataset`` path,
        ``metrics``), as written to the manifest.
    :return: nothing.
    """
