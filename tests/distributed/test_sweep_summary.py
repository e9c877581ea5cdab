"""``python -m r1kit -m``: every job in its own run directory, and a summary of their metrics."""

import csv
from pathlib import Path

from tests.conftest import run_cli

SHRUNK = ["pipeline=grpo", "model=tiny", "data=arithmetic", "trainer.max_steps=1",
          "data.batch_size=2", "data.val_size=4", "eval.k=1", "eval.every=0",
          "algo.group_size=2", "sampler.max_new_tokens=8", "logger=csv",
          "trainer.enable_progress_bar=false"]


def test_a_sweep_runs_every_job_in_its_own_directory_and_summarizes_them(tmp_path):
    result = run_cli("-m", "algo.epsilon=0.1,0.2", "algo.beta=0", *SHRUNK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    with (sweep_dir / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["algo.epsilon"] for row in rows] == ["0.1", "0.2"]
    assert {row["status"] for row in rows} == {"COMPLETED"}
    run_dirs = {row["run_dir"] for row in rows}
    assert len(run_dirs) == 2
    for run_dir in map(Path, run_dirs):
        assert run_dir.parent == tmp_path / "runs" and (run_dir / "rl" / "manifest.json").exists()
    assert all(row["rl/val/accuracy"] != "" for row in rows)  # read from each job's manifest
    assert "algo.epsilon" in result.stdout and "rl/val/accuracy" in result.stdout
