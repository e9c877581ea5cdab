"""The model card (``README.md`` in the Hugging Face format) of every exported stage model: how
it was made (base model, recipe, the exact command, the stage's config, library versions) and
what it scores. The metadata block is written by ``huggingface_hub``'s own card classes, so
the Hub reads it (base model, datasets, the held-out results as a model index)."""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from pathlib import Path

from omegaconf import OmegaConf

from r1kit.pipeline.report import stage_results
from r1kit.plugin.manager import distribution_version

CARD = "README.md"
#: metric -> how the card names it; the held-out metrics a model index reports
INDEXED = {"val/accuracy": "held-out accuracy (greedy)", "val/format": "format rate (greedy)"}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
VERSIONS = ("r1kit", "torch", "transformers", "lightning")


def hub_id(path: str | None) -> str | None:
    """``path`` when it names a Hub repository rather than a local directory."""
    if path and _HUB_ID.match(path) and not Path(path).exists():
        return path
    return None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float)
                                                    and math.isnan(value))


def _percent(value) -> str:
    return f"{100 * value:.1f}%" if _finite(value) else "-"


def _recipe(command: str | None) -> str | None:
    """The ``+experiment=...`` the command selected, if any."""
    for word in shlex.split(command or ""):
        if word.lstrip("+").startswith("experiment="):
            return word.lstrip("+")
    return None


def card_data(stage, metrics: dict, model_name: str):
    from huggingface_hub import EvalResult, ModelCardData

    cfg = stage.config
    data = cfg.data
    dataset = getattr(data, "path", None) if data.name == "hub" else None
    evals = [EvalResult(task_type="text-generation", dataset_type=dataset or data.name,
                        dataset_name=dataset or data.name, metric_type=key.split("/")[1],
                        metric_value=float(metrics[key]), metric_name=name,
                        dataset_split=getattr(data, "val_split", None))
             for key, name in INDEXED.items() if _finite(metrics.get(key))]
    return ModelCardData(
        base_model=hub_id(cfg.model.path), datasets=[dataset] if dataset else None,
        library_name="transformers", pipeline_tag="text-generation",
        tags=["r1kit", "reasoning", stage.kind], model_name=model_name if evals else None,
        eval_results=evals or None)


def card_text(*, stage, plan, results: dict, metrics: dict, command: str | None, source: str,
              run_name: str) -> str:
    """The whole card: metadata, then the account of how the model was made and its results.
    ``results``: stage name -> outputs, so far; ``metrics``: this model's final held-out
    metrics (its stage's, or those of an eval stage that scored this very model)."""
    from huggingface_hub import ModelCard

    cfg = stage.config
    name = f"{run_name}/{stage.name}"
    base = f"`{cfg.model.path}`" if cfg.model.path else \
        "r1kit's tiny model (random initialisation, built locally)"
    chain = " → ".join(f"**`{s.name}` ({s.kind})**" if s.name == stage.name
                       else f"`{s.name}` ({s.kind})" for s in plan.stages)
    versions = " · ".join(f"{lib} {distribution_version(lib) or '-'}" for lib in VERSIONS)
    lines = [
        f"# {name}", "",
        f"Stage `{stage.name}` ({stage.kind}) of the r1kit pipeline run `{run_name}`, "
        f"trained with r1kit {distribution_version('r1kit') or ''}.".replace(" .", "."), "",
        "## How it was made", "",
        f"- **Base model:** {base}",
        f"- **This stage started from:** `{source}`",
        f"- **Recipe:** {f'`{_recipe(command)}`, ' if _recipe(command) else ''}stages {chain}",
        f"- **Data:** `{cfg.data.name}`" + (f" (`{cfg.data.path}`)"
                                           if getattr(cfg.data, "path", None) else ""),
        f"- **Versions:** {versions}", "",
        "The exact command (rerunning it in the same directory resumes the run):", "",
        "```bash", command or "# run through the Python API (r1kit.pipeline.runner)", "```",
        "", "## Results", ""]
    rows = stage_results(results)
    if rows:
        lines += ["Held-out accuracy and format rate (greedy decoding) after each stage:", "",
                  "| stage | accuracy | format |", "|---|---|---|"]
        lines += [f"| {r['name']} | {_percent(r['accuracy'])} | {_percent(r['format'])} |"
                  for r in rows]
        lines.append("")
    metrics = {k: v for k, v in metrics.items() if _finite(v)}
    if metrics:
        lines += ["Final held-out metrics of this model:", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.4g} |" for k, v in metrics.items()]
        lines.append("")
    if not rows and not metrics:
        lines += ["No held-out metrics were measured (data.val_size=0).", ""]
    config = OmegaConf.to_yaml(OmegaConf.create(dataclasses.asdict(cfg)))
    lines += ["## The stage's config", "",
              "<details><summary>Resolved config (the root config with the stage's "
              "overrides)</summary>", "", "```yaml", config.rstrip(), "```", "", "</details>",
              ""]
    data = card_data(stage, metrics, name)
    return str(ModelCard("---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(lines)))


def write_model_card(model_dir: Path, **kwargs) -> Path:
    """Write ``model_dir/README.md`` (see ``card_text`` for the arguments)."""
    path = Path(model_dir) / CARD
    path.write_text(card_text(**kwargs), encoding="utf-8")
    return path
