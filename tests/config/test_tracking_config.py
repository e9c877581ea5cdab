"""logger.backends, eval.batch_size and hub.* are checked at validation time, before any model
loads: a wrong backend, a missing package, a push with no repository, no token or no model."""

import pytest

from r1kit.config import requirements
from r1kit.config.schema import ConfigError
from r1kit.config.validate import validate
from r1kit.plugin.manager import get_registry
from tests.conftest import SHRINK, compose_config, run_cli


def _validate(overrides, tmp_path):
    return validate(compose_config([*SHRINK, *overrides], run_dir=str(tmp_path)),
                    get_registry())


@pytest.fixture
def no_hf_token(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))


@pytest.mark.parametrize("overrides, message", [
    (["logger.backends=[wandb,neptune]"], "logger.backends: unknown backend 'neptune'"),
    (["logger.backends=[mlflow,mlflow]"], "logger.backends: lists a backend twice"),
    (["logger.wandb.mode=cloud"], "logger.wandb.mode: must be online, offline or disabled"),
    (["logger.samples_every=-1"], "logger.samples_every"),
    (["eval.batch_size=-2"], "eval.batch_size: must be >= 0"),
    (["hub.push=true"], "hub.repo_id: required with hub.push=true"),
    (["hub.push=true", "hub.repo_id=no-namespace"], "hub.repo_id: must be namespace/name"),
])
def test_bad_values_name_their_key(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _validate(overrides, tmp_path)


def test_the_logger_presets_select_backends_and_the_csv_stays(tmp_path):
    for preset, backends in (("csv", []), ("wandb", ["wandb"]),
                             ("tensorboard", ["tensorboard"]), ("mlflow", ["mlflow"])):
        cfg = compose_config([f"logger={preset}"], run_dir=str(tmp_path))
        assert list(cfg.logger.backends) == backends
    # listing the CSV is allowed (it is always written)
    assert _validate(["logger.backends=[csv,tensorboard]"], tmp_path).config.logger.backends \
        == ["csv", "tensorboard"]


def test_a_backend_whose_package_is_missing_says_which_extra_installs_it(tmp_path, monkeypatch):
    real = requirements._installed
    monkeypatch.setattr(requirements, "_installed", lambda m: m != "mlflow" and real(m))
    with pytest.raises(ConfigError, match=r"logger.backends: mlflow needs the mlflow package.*"
                                          r"pip install 'r1kit\[mlflow\]'"):
        _validate(["logger.backends=[mlflow]"], tmp_path)


def test_hub_push_needs_a_token(tmp_path, no_hf_token):
    with pytest.raises(ConfigError, match="hub.push: no Hugging Face token found; set HF_TOKEN"):
        _validate(["hub.push=true", "hub.repo_id=me/model"], tmp_path)


def test_hub_push_needs_a_stage_that_exports_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    with pytest.raises(ConfigError, match="hub.push: no stage of the pipeline exports a model"):
        _validate(["pipeline=sft", "pipeline.stages.sft.kind=eval", "hub.push=true",
                   "hub.repo_id=me/model"], tmp_path)
    assert _validate(["hub.push=true", "hub.repo_id=me/model"], tmp_path).config.hub.private


def test_the_command_line_fails_fast_without_a_token_and_leaves_no_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("hub.push=true", "hub.repo_id=me/model", f"run_dir={run_dir}",
                     env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf_home")}, timeout=120)
    assert result.returncode == 2
    assert "r1kit: error: hub.push: no Hugging Face token found" in result.stderr
    assert not run_dir.exists()


def test_where_a_run_logs_is_not_part_of_its_run_directory(tmp_path):
    result = run_cli("logger=wandb", "logger.backends=[tensorboard,mlflow]", "logger.group=g",
                     "logger.wandb.mode=online", "hub.push=true", "hub.repo_id=me/m",
                     "algo.beta=0", "--cfg", "job", "--resolve", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "run_dir: runs/algo.beta=0\n" in result.stdout  # adding a tracker resumes the run
