"""One tiny pipeline run shared by the tests of what a run leaves behind: a GRPO stage, a
rejection-sampling stage and an eval stage, logging to W&B (offline), TensorBoard and MLflow
(a file store in the run's temporary directory), with progress on, and ``hub.push=true``
against a stand-in for the Hub's API (nothing leaves the machine)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SHRINK, compose_config

COMMAND = "python -m r1kit pipeline=grpo +smoke=tiny 'logger.backends=[wandb,tensorboard,mlflow]'"
REPO_ID = "someone/tiny-r1"


@dataclass
class FakeHubApi:
    """Records what ``huggingface_hub.HfApi`` would have been asked to do."""

    calls: list = field(default_factory=list)

    def __call__(self, token=None):
        self.calls.append(("init", token))
        return self

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private, exist_ok))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, commit_message=None):
        card = (Path(folder_path) / "README.md").read_text()  # as it was when pushed
        self.calls.append(("upload_folder", repo_id, folder_path, commit_message, card))


@dataclass
class TinyRun:
    run_dir: Path
    mlruns: Path
    results: dict
    stderr: str
    hub: FakeHubApi


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    import huggingface_hub

    from r1kit.config.validate import validate
    from r1kit.pipeline.runner import run_pipeline
    from r1kit.plugin.manager import get_registry

    root = tmp_path_factory.mktemp("tiny_run")
    run_dir, mlruns = root / "run", root / "mlruns"
    rejection = ("{kind:rejection_sampling,overrides:{filter:{length:{min_tokens:1}},"
                 "rejection:{samples_per_prompt:2,num_prompts:8,shard_size:4}}}")
    cfg = compose_config([
        *SHRINK, "pipeline=grpo", f"+pipeline.stages.rs={rejection}",
        "+pipeline.stages.ev={kind:eval}",
        "trainer.max_steps=2", "logger.samples_every=1", "eval.every=2", "eval.k=2",
        "data.val_size=4", "eval.batch_size=2", "trainer.enable_progress_bar=true",
        "logger.backends=[wandb,tensorboard,mlflow]",
        f"logger.mlflow.tracking_uri=file:{mlruns}",
        "hub.push=true", f"hub.repo_id={REPO_ID}"], run_dir=str(run_dir))
    hub, stderr = FakeHubApi(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TOKEN", "hf_not_a_real_token")
        patch.setattr(huggingface_hub, "HfApi", hub)
        with contextlib.redirect_stderr(stderr):
            results = run_pipeline(validate(cfg, get_registry()), command=COMMAND)
    return TinyRun(run_dir, mlruns, results, stderr.getvalue(), hub)
