"""W&B's files are written by its wandb-core service, a separate process with its own working
directory: a relative run directory must still get its run file where the run is (a full test
session once lost a sweep job's run file into the service's directory)."""

from pathlib import Path

from r1kit.config.validate import validate
from r1kit.plugin.manager import get_registry
from r1kit.run.loggers import build_loggers, close_loggers
from tests.conftest import compose_config
from tests.run.wandb_records import offline_run


def test_a_relative_run_dir_gets_its_run_file_with_a_service_started_elsewhere(tmp_path,
                                                                              monkeypatch):
    import wandb

    started_in, run_in = tmp_path / "service_cwd", tmp_path / "run_cwd"
    started_in.mkdir(), run_in.mkdir()
    monkeypatch.chdir(started_in)
    # the service starts here (or is already running from wherever this session started it)
    wandb.init(mode="offline", dir=str(started_in), project="r1kit").finish()

    monkeypatch.chdir(run_in)
    plan = validate(compose_config(["pipeline=grpo", "model=tiny", "data=arithmetic",
                                    "logger.backends=[wandb]"], run_dir="runs/relative"),
                    get_registry())
    stage_dir = Path("runs/relative/rl")
    loggers = build_loggers(plan.stage("rl").config, stage_dir)
    loggers[-1].log_metrics({"reward/mean": 0.5}, step=0)
    close_loggers(loggers)

    assert offline_run(run_in / stage_dir)["job_type"] == "rl"
    assert not list(started_in.rglob("runs"))  # nothing under the service's directory
