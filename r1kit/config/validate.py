"""Validate a composed configuration before anything expensive (model, data) is loaded.

Hydra and the structured root schema already reject unknown top-level keys and wrong types in
fixed groups; this adds value checks (each schema's ``__post_init__``), the per-plugin option
schemas of the plugin groups, the Lightning Trainer's argument names, and every pipeline stage.
"""

from __future__ import annotations

import inspect

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from r1kit.config import schema
from r1kit.config.options import options_class, typed
from r1kit.config.schema import ConfigError, RootConfig, StageConfig, StageInfo
from r1kit.config.requirements import check_requirements
from r1kit.config.store import PLUGIN_GROUPS, option_defaults, schema_fields
from r1kit.plugin.registry import Registry, UnknownPluginError
from r1kit.stages import STAGE_MODULES

FIXED_GROUPS = {
    "model": schema.ModelConfig,
    "algo": schema.AlgoConfig,
    "optim": schema.OptimConfig,
    "logger": schema.LoggerConfig,
    "eval": schema.EvalConfig,
    "rejection": schema.RejectionConfig,
    "hub": schema.HubConfig,
}
STAGE_KINDS = tuple(STAGE_MODULES)


def plugin_options(group: str, name: str, node: dict, registry: Registry, key: str):
    """The typed options of plugin ``name`` of ``group`` from its config ``node``: an instance
    of its schema joined with the group's common fields (``options_class``)."""
    kind, common, _ = PLUGIN_GROUPS[group]
    try:
        entry = registry.get(kind, name)
    except UnknownPluginError as err:
        raise ConfigError(f"{key}: {err}") from None
    common_keys, own_keys = schema_fields(common), schema_fields(entry.schema)
    unknown = sorted(set(node) - common_keys - own_keys - {"name"})
    if unknown:
        valid = ", ".join(sorted(common_keys | own_keys)) or "none"
        raise ConfigError(f"{key}.{unknown[0]}: unknown key for {group} '{name}'; "
                          f"valid keys: {valid}")
    return typed(options_class(common, entry.schema), node, key)


def _check_selected(group: str, name: str, node: dict, registry: Registry, key: str) -> None:
    """A multi-select node that lacks fields its plugin's config node always has was not made
    by selecting the plugin: it holds options for a plugin the selection left out (an
    experiment's ``reward.format.*`` after ``reward=[accuracy]``)."""
    kind = PLUGIN_GROUPS[group][0]
    missing = set(option_defaults(group, registry.get(kind, name))) - set(node)
    if missing:
        raise ConfigError(f"{key}: options are set for {group} '{name}', which is not selected; "
                          f"add it ({group}=[...,{name}]) or drop its options")


def _check_filter_rewards(cfg: DictConfig) -> None:
    """A filter that keeps samples by a reward's score (its ``reward`` option) needs that
    reward computed; fail now rather than after a stage has sampled."""
    rewards = list(cfg.reward or {})
    for name, options in (OmegaConf.to_container(cfg.filter, resolve=True) or {}).items():
        for key in ("reward", "also"):  # ``also``: the rewards ``correct`` falls back on
            needed = (options or {}).get(key)
            for reward in [needed] if isinstance(needed, str) else needed or []:
                if isinstance(reward, str) and reward not in rewards:
                    raise ConfigError(
                        f"filter.{name}.{key}: filter '{name}' keeps samples by the reward "
                        f"'{reward}', which is not selected (reward=[{','.join(rewards)}]); "
                        "add it to reward=[...] or drop the filter")


class _BlankFields(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _check_response_template(cfg: DictConfig) -> None:
    """The format reward can only be earned if the prompt leaves the response open at a point
    a completion can continue from (``...Assistant: <think>`` can; ``...<answer>`` cannot)."""
    from r1kit.data.response import opened_response, satisfiable

    if "format" not in (cfg.reward or {}):
        return
    template = cfg.data.template
    try:
        prompt = template.format_map(_BlankFields())
    except (ValueError, IndexError, AttributeError) as err:
        raise ConfigError(f"data.template: not a format string over the row's fields ({err})")
    opened = opened_response(prompt)
    if opened and not satisfiable(opened):
        raise ConfigError(f"data.template: the prompt ends inside the response ({opened!r}) "
                          "where no completion can make <think>…</think><answer>…</answer>, so "
                          "the format reward could never be earned")


def _check_trainer(trainer: dict) -> None:
    import lightning

    valid = set(inspect.signature(lightning.Trainer.__init__).parameters) - {"self"}
    for name in trainer:
        if name not in valid:
            raise ConfigError(f"trainer.{name}: not an argument of lightning.Trainer")
    _check_sharding_device(trainer)


def _check_sharding_device(trainer: dict) -> None:
    """Lightning's FSDP strategy refuses a CPU accelerator, but only once the Trainer is built,
    after the models have loaded: say so now."""
    import torch

    strategy, accelerator = trainer.get("strategy"), trainer.get("accelerator", "auto")
    if not (isinstance(strategy, str) and strategy.startswith("fsdp")):
        return
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        raise ConfigError(f"trainer.strategy: {strategy} shards over GPUs only (Lightning's "
                          f"FSDP strategy refuses accelerator={accelerator} on this machine); "
                          "use trainer.strategy=ddp on CPU")


def _check_algo_variants(algo: schema.AlgoConfig) -> None:
    from r1kit.algo import loss

    for key, table in (("kl_estimator", loss.KL_ESTIMATORS), ("ratio_level", loss.RATIOS),
                       ("aggregation", loss.AGGREGATIONS)):
        value = getattr(algo, key)
        if value not in table:
            raise ConfigError(f"algo.{key}: unknown value {value!r}; valid: {', '.join(table)}")


def validate_stage(cfg: DictConfig, registry: Registry, prefix: str = "") -> RootConfig:
    """Validate one stage's full config (the root config, or root merged with a stage's
    overrides) and return it typed: fixed groups as their schemas, each plugin group as its
    plugins' typed options."""
    try:
        allowed = schema_fields(RootConfig)
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown top-level key; valid: "
                              f"{', '.join(sorted(allowed - {'stage'}))}")
        values = {group: typed(cls, OmegaConf.to_container(cfg[group], resolve=True), group)
                  for group, cls in FIXED_GROUPS.items()}
        _check_algo_variants(values["algo"])
        for group, (_, _, named) in PLUGIN_GROUPS.items():
            node = OmegaConf.to_container(cfg[group], resolve=True) or {}
            if named:
                values[group] = {}
                for name, options in node.items():
                    key = f"{group}.{name}"
                    values[group][name] = plugin_options(group, name, options or {}, registry, key)
                    _check_selected(group, name, options or {}, registry, key)
            else:
                if "name" not in node:
                    raise ConfigError(f"{group}: no {group} selected (use {group}=<name>)")
                values[group] = plugin_options(group, node["name"], node, registry, group)
        values["trainer"] = OmegaConf.to_container(cfg.trainer, resolve=True)
        _check_trainer(values["trainer"])
        if cfg.stage_max_steps is not None and cfg.stage_max_steps < 1:
            raise ConfigError(f"stage_max_steps: must be null or >= 1, got {cfg.stage_max_steps}")
        _check_response_template(cfg)
        _check_filter_rewards(cfg)
        mix = values["rejection"].mix
        if mix is not None:
            if not isinstance(mix, dict) or "name" not in mix:
                raise ConfigError("rejection.mix: must be a data node with a 'name' "
                                  "(e.g. {name: jsonl, path: general.jsonl})")
            values["rejection"].mix = plugin_options("data", mix["name"], mix, registry,
                                                     "rejection.mix")
        # a stage's own config has no pipeline (it is one of its stages)
        pipeline = cfg.get("pipeline")
        stages = OmegaConf.to_container(pipeline.stages, resolve=False) if pipeline else {}
        values["pipeline"] = schema.PipelineConfig(stages={
            name: _typed_stage(name, stage) for name, stage in stages.items()})
        stage = OmegaConf.to_container(cfg.stage) if cfg.get("stage") is not None else None
        scalars = {k: cfg[k] for k in ("seed", "deterministic", "run_dir", "checkpoint_every",
                                       "stage_max_steps")}
        return RootConfig(**values, **scalars,
                          stage=None if stage is None else StageInfo(**stage))
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def _typed_stage(name: str, stage) -> StageConfig:
    key = f"pipeline.stages.{name}"
    if not isinstance(stage, dict) or "kind" not in stage:
        raise ConfigError(f"{key}: needs a 'kind' ({', '.join(STAGE_KINDS)})")
    unknown = set(stage) - schema_fields(StageConfig)
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}: unknown key (valid: kind, overrides)")
    if stage["kind"] not in STAGE_KINDS:
        raise ConfigError(f"{key}.kind: unknown stage kind {stage['kind']!r}; "
                          f"valid: {', '.join(STAGE_KINDS)}")
    return StageConfig(kind=stage["kind"], overrides=stage.get("overrides") or {})


def stage_config(cfg: DictConfig, name: str, registry: Registry) -> DictConfig:
    """The config one pipeline stage runs with: the root config with the stage's overrides.

    Fixed groups merge key by key. A plugin group that a stage names *replaces* the root's
    selection (``reward: {accuracy: {}}`` means "only accuracy"; ``data: {name: jsonl, ...}``
    starts from jsonl's defaults, not from the root dataset's options), because options of
    one plugin mean nothing to another.
    """
    stage = cfg.pipeline.stages[name]
    overrides = stage.get("overrides")
    overrides = OmegaConf.to_container(overrides, resolve=False) if overrides else {}
    base = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "pipeline"])
    for group, (kind, _, named) in PLUGIN_GROUPS.items():
        if group not in overrides:
            continue
        node = overrides.pop(group) or {}
        if named:
            fresh = {n: OmegaConf.merge(option_defaults(group, registry.get(kind, n)), o or {})
                     for n, o in node.items()}
        elif "name" in node and node["name"] != base[group].name:
            fresh = OmegaConf.merge(option_defaults(group, registry.get(kind, node["name"])),
                                    _kept_on_switch(group, base), node)
        else:
            fresh = OmegaConf.merge(base[group], node)
        base[group] = fresh
    merged = OmegaConf.merge(base, overrides)
    OmegaConf.set_struct(merged, False)
    merged.stage = StageInfo(name=name, kind=stage.kind)
    cap = merged.stage_max_steps
    if cap is not None:
        # trainer is Lightning's own arguments: a trainer preset need not name max_steps
        steps = merged.trainer.get("max_steps", -1)
        merged.trainer.max_steps = cap if steps is None or steps < 0 else min(steps, cap)
    return merged


#: Fields a stage keeps from the root when it switches to another plugin of the group: the
#: prompt template is the recipe's contract with the model (what the prompt opens of the
#: response), not a property of where the rows come from.
KEPT_ON_SWITCH = {"data": ("template",)}


def _kept_on_switch(group: str, base: DictConfig) -> dict:
    return {key: base[group][key] for key in KEPT_ON_SWITCH.get(group, ()) if key in base[group]}


@dataclass
class Stage:
    """One pipeline stage as it will run: its name, kind and whole typed config."""

    name: str
    kind: str
    config: RootConfig
    #: The stage names its own ``model.path`` (it starts from that model, not from the previous
    #: stage's output).
    sets_model_path: bool


@dataclass
class RunPlan:
    """What ``validate`` returns and the pipeline runs: the typed root config, every stage's
    typed config in order, and the composed config as the user wrote it (for the record)."""

    config: RootConfig
    stages: list[Stage]
    composed: DictConfig

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r}; stages: {', '.join(s.name for s in self.stages)}")


def validate(cfg: DictConfig, registry: Registry) -> RunPlan:
    """Raise ``ConfigError`` naming the first bad key, else return the typed ``RunPlan``;
    returns quickly (no model or data loads)."""
    root = validate_stage(cfg, registry)
    if not root.pipeline.stages:
        raise ConfigError("pipeline.stages: no stage to run")
    check_requirements(root)  # what the trackers and the hub push need, before any model loads
    stages = []
    for name, stage in root.pipeline.stages.items():
        key = f"pipeline.stages.{name}"
        try:
            merged = stage_config(cfg, name, registry)
        except UnknownPluginError as err:
            raise ConfigError(f"{key}.overrides: {err}") from None
        except OmegaConfBaseException as err:
            raise ConfigError(f"{key}.overrides: {err}") from None
        config = validate_stage(merged, registry, prefix=f"{key}.overrides → ")
        stages.append(Stage(name, stage.kind, config,
                            sets_model_path="path" in (stage.overrides.get("model") or {})))
    return RunPlan(root, stages, cfg)
