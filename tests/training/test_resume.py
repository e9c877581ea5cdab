"""kill -9 mid-run, rerun the same command: training resumes from the last checkpoint and ends
where an uninterrupted run ends (optimizer, step, data position and RNG all restored)."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO, SHRINK

ARGS = [*SHRINK, "pipeline=grpo", "reward=[format]", "trainer.max_steps=40", "checkpoint_every=2",
        "deterministic=true", "seed=3", "optim.lr=1e-3", "algo.beta=0.04"]


def _command(run_dir):
    return [sys.executable, "-m", "r1kit", *ARGS, f"run_dir={run_dir}"]


def _steps(run_dir: Path) -> list[int]:
    with (run_dir / "rl" / "metrics.csv").open() as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get("reward/mean")]


def _wait_for(path: Path, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_and_rerun_resumes_to_the_same_result(tmp_path):
    reference = subprocess.run(_command(tmp_path / "straight"), cwd=REPO, capture_output=True,
                               text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(_command(run_dir), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(run_dir / "rl" / "checkpoints" / "last.ckpt", proc)
    # past the first checkpoint and mid-run: kill as soon as a later step is logged
    deadline = time.monotonic() + 120
    while not (run_dir / "rl" / "metrics.csv").exists() or max(_steps(run_dir), default=0) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "rl" / "manifest.json").exists(), "run finished before the kill"

    resumed = subprocess.run(_command(run_dir), cwd=REPO, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout
    assert _steps(run_dir) == list(range(40))  # every step exactly once, none lost or doubled
    assert _steps(run_dir) == _steps(tmp_path / "straight")
    a = load_file(run_dir / "rl" / "model" / "model.safetensors")
    b = load_file(tmp_path / "straight" / "rl" / "model" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
