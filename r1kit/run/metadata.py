"""Record what produced a run: the resolved config, plugins with versions, library versions."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from omegaconf import OmegaConf

from r1kit.plugin.manager import distribution_version

LIBRARIES = ("r1kit", "torch", "lightning", "transformers", "hydra-core", "pluggy",
             "math-verify", "vllm", "wandb", "datasets")


def write_metadata(run_dir: Path, cfg, registry) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    plugins = [{"kind": e.kind, "name": e.name, "provider": e.provider, "plugin": e.plugin}
               for e in registry.entries()]
    versions = {name: distribution_version(name) for name in LIBRARIES}
    versions["python"] = platform.python_version()
    (run_dir / "environment.json").write_text(json.dumps(
        {"libraries": versions, "plugins": plugins, "platform": platform.platform()}, indent=2))
