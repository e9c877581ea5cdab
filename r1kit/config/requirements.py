"""What a valid config needs from outside the config itself, checked before any model loads:
the packages of the selected trackers, and for ``hub.push`` a Hugging Face token and a stage
that exports a model. A long run must not find out at its end that it cannot log or push."""

from __future__ import annotations

import importlib.util

from r1kit.config.schema import ConfigError, RootConfig

#: logger backend -> (modules any one of which it needs, the pip extra that installs them)
BACKEND_PACKAGES = {
    "wandb": (("wandb",), "wandb"),
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow"),
}
#: stage kinds that export a model (``StageContext.save_model``)
EXPORTING_KINDS = ("sft", "grpo")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def hub_token() -> str | None:
    """The token ``huggingface_hub`` would use: $HF_TOKEN, else the one ``hf auth login``
    stored."""
    from huggingface_hub import get_token

    return get_token()


def check_requirements(root: RootConfig) -> None:
    for name in root.logger.backends:
        if name in BACKEND_PACKAGES:
            modules, extra = BACKEND_PACKAGES[name]
            if not any(map(_installed, modules)):
                raise ConfigError(f"logger.backends: {name} needs the {modules[0]} package, "
                                  f"which is not installed: pip install 'r1kit[{extra}]'")
    if root.hub.push:
        kinds = [stage.kind for stage in root.pipeline.stages.values()]
        if not any(kind in EXPORTING_KINDS for kind in kinds):
            raise ConfigError(f"hub.push: no stage of the pipeline exports a model (stage "
                              f"kinds: {', '.join(kinds)}); only sft and grpo stages do")
        if not hub_token():
            raise ConfigError("hub.push: no Hugging Face token found; set HF_TOKEN or run "
                              "`hf auth login` (a token with write access to "
                              f"{root.hub.repo_id})")
