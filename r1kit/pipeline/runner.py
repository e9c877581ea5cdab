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
from r1kit.models.loading import model_source
from r1kit.plugin.manager import get_plugin_manager, get_registry
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

    def callbacks(self, cfg) -> list:
        lists = self.hooks.r1kit_configure_callbacks(cfg=cfg)
        return [cb for cbs in lists if cbs for cb in cbs]

    def save_model(self, trainer, policy, tokenizer, metrics=None) -> dict:
        """Export the trained policy as an HF model directory the next stage loads."""
        out = self.stage_dir / "model"
        if trainer.is_global_zero:
            lora.export(policy).save_pretrained(out)  # LoRA: adapters merged into the base
            tokenizer.save_pretrained(out)
        trainer.strategy.barrier()
        return {"checkpoint": str(out), "metrics": metrics or {}}


def _write_manifest(stage_dir: Path, outputs: dict) -> None:
    tmp = stage_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(outputs, indent=2))
    os.replace(tmp, stage_dir / MANIFEST)  # atomic: a manifest is never half-written


def run_pipeline(plan: RunPlan) -> dict:
    """Run every stage of a validated plan (``r1kit.config.validate.validate``)."""
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
                               dict(results))
            outputs = importlib.import_module(STAGE_MODULES[stage.kind]).run(stage.config, ctx)
            if is_global_zero():
                _write_manifest(stage_dir, outputs)
                hooks.r1kit_on_stage_end(stage=stage.name, outputs=outputs)
        results[stage.name] = outputs
        source = outputs.get("checkpoint", source)
    if is_global_zero():
        write_report(run_dir, results)
    return results
