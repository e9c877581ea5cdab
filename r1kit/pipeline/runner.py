"""Run the configured stages in order; finished stages (with a manifest) are skipped on rerun,
an interrupted one resumes from its last checkpoint.

Each training stage starts from the model the previous stage produced (the initial model for
the first); a stage whose overrides set ``model.path`` starts from that instead.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from r1kit.config.validate import RunPlan
from r1kit.models import lora
from r1kit.models.export import full_state_dict
from r1kit.models.loading import model_source
from r1kit.plugin.manager import get_plugin_manager, get_registry
from r1kit.config.requirements import EXPORTING_KINDS
from r1kit.pipeline.hub import push_model
from r1kit.pipeline.model_card import write_model_card
from r1kit.pipeline.report import write_report
from r1kit.run.metadata import write_metadata
from r1kit.run.ranks import is_global_zero
from r1kit.stages import MANIFEST, STAGE_MODULES



@dataclass
class StageContext:
    name: str
    stage_dir: Path
    run_dir: Path
    model_source: str
    registry: object
    hooks: object
    previous: dict = field(default_factory=dict)  # stage name -> its outputs, so far
    plan: RunPlan | None = None  # the whole run (for the model card)
    command: str | None = None  # the command line that started the run, when known

    def callbacks(self, cfg) -> list:
        lists = self.hooks.r1kit_configure_callbacks(cfg=cfg)
        return [cb for cbs in lists if cbs for cb in cbs]

    def save_model(self, trainer, policy, tokenizer, metrics=None) -> dict:
        """Export the trained policy as an HF model directory the next stage loads, with its
        model card (``README.md``)."""
        out = self.stage_dir / "model"
        outputs = {"checkpoint": str(out), "metrics": metrics or {},
                   "started_from": self.model_source}
        # every rank: sharded weights (FSDP) are gathered, for rank 0 to write; a LoRA policy
        # is written with its adapters merged into the base instead
        weights = None if lora.is_lora(policy) else full_state_dict(policy)
        if trainer.is_global_zero:
            lora.export(policy).save_pretrained(out, state_dict=weights)
            tokenizer.save_pretrained(out)
            if self.plan is not None:
                self.write_card(out, {**self.previous, self.name: outputs}, outputs["metrics"])
        trainer.strategy.barrier()
        return outputs

    def write_card(self, model_dir: Path, results: dict, metrics: dict) -> None:
        write_model_card(model_dir, stage=self.plan.stage(self.name), plan=self.plan,
                         results=results, metrics=metrics, command=self.command,
                         source=self.model_source, run_name=self.run_dir.resolve().name)


def _write_manifest(stage_dir: Path, outputs: dict) -> None:
    tmp = stage_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(outputs, indent=2))
    os.replace(tmp, stage_dir / MANIFEST)  # atomic: a manifest is never half-written


def run_pipeline(plan: RunPlan, command: str | None = None) -> dict:
    """Run every stage of a validated plan (``r1kit.config.validate.validate``); ``command``
    is the command line that started it, for the model cards."""
    cfg = plan.config
    run_dir = Path(cfg.run_dir)
    registry, hooks = get_registry(), get_plugin_manager().hook
    if is_global_zero():
        write_metadata(run_dir, plan.composed, registry)
    source = model_source(cfg.model, run_dir)
    results: dict[str, dict] = {}
    for stage in plan.stages:
        stage_dir = run_dir / stage.name
        stage_dir.mkdir(parents=True, exist_ok=True)
        manifest = stage_dir / MANIFEST
        if stage.sets_model_path:
            source = model_source(stage.config.model, run_dir)
        if manifest.exists():
            outputs = json.loads(manifest.read_text())
            print(f"r1kit: stage {stage.name} already finished ({manifest}); skipping")
        else:
            L.seed_everything(cfg.seed, workers=True, verbose=False)
            ctx = StageContext(stage.name, stage_dir, run_dir, source, registry, hooks,
                               dict(results), plan=plan, command=command)
            outputs = importlib.import_module(STAGE_MODULES[stage.kind]).run(stage.config, ctx)
            if is_global_zero():
                _write_manifest(stage_dir, outputs)
                hooks.r1kit_on_stage_end(stage=stage.name, outputs=outputs)
        results[stage.name] = outputs
        source = outputs.get("checkpoint", source)
    if is_global_zero():
        write_report(run_dir, results)
        _finish_final_model(plan, results, command, run_dir, registry, hooks)
    return results


def _final_model(plan: RunPlan, results: dict) -> tuple[str, dict] | None:
    """The stage of the last exported model, and its metrics: its own final held-out ones,
    updated with those of the eval stages after it (they scored that very model)."""
    names = [s.name for s in plan.stages]
    exported = [s.name for s in plan.stages
                if s.kind in EXPORTING_KINDS and "checkpoint" in results.get(s.name, {})]
    if not exported:
        return None
    name = exported[-1]
    metrics = dict(results[name].get("metrics", {}))
    for stage in plan.stages[names.index(name) + 1:]:
        if stage.kind == "eval":
            metrics.update(results.get(stage.name, {}).get("metrics", {}))
    return name, metrics


def _finish_final_model(plan: RunPlan, results: dict, command, run_dir: Path, registry,
                        hooks) -> None:
    """Rank 0, after the last stage: the final model's card gets every stage's results (an
    eval stage after it included), then ``hub.push`` uploads it."""
    final = _final_model(plan, results)
    if final is None:
        return
    name, metrics = final
    outputs = results[name]
    model_dir = Path(outputs["checkpoint"])
    ctx = StageContext(name, run_dir / name, run_dir, outputs.get("started_from", "?"),
                       registry, hooks, plan=plan, command=command)
    ctx.write_card(model_dir, results, metrics)
    if plan.config.hub.push:
        url = push_model(model_dir, plan.config.hub,
                         message=f"r1kit: run {run_dir.resolve().name}, stage {name}")
        print(f"r1kit: pushed {model_dir} to {url}")
