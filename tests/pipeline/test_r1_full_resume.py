"""The whole R1 pipeline, shrunk to the tiny model, killed mid-stage and rerun: finished stages
are skipped, the interrupted one resumes from its checkpoint, and the rest run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

STAGES = ["cold_start", "reasoning_rl", "rejection_sampling", "sft", "rl_all", "eval"]
SHRUNK = ["+experiment=r1_full", "model=tiny", "data=arithmetic", "logger=csv",
          "data.batch_size=2", "data.val_size=4", "algo.group_size=2",
          "sampler.max_new_tokens=12", "eval.every=0", "eval.k=2", "checkpoint_every=1",
          "trainer.enable_progress_bar=false", "rejection.num_prompts=4",
          "rejection.shard_size=2",
          # random tiny model: keep whatever it writes, so the SFT set is not empty
          "~pipeline.stages.rejection_sampling.overrides.filter",
          "+pipeline.stages.rejection_sampling.overrides.filter={dedupe: {}, "
          "max_per_prompt: {n: 1}}",
          *[f"pipeline.stages.{s}.overrides.trainer.max_steps={n}" for s, n in
            (("cold_start", 2), ("reasoning_rl", 6), ("sft", 2), ("rl_all", 2))]]


@pytest.mark.slow
def test_shrunk_r1_full_survives_kill_minus_9(tmp_path):
    command = [sys.executable, "-m", "r1kit", *SHRUNK, f"run_dir={tmp_path}"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    target = tmp_path / "reasoning_rl" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 400
    while not target.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "cold_start" / "manifest.json").exists()
    assert not (tmp_path / "reasoning_rl" / "manifest.json").exists()
    cold_manifest = (tmp_path / "cold_start" / "manifest.json").stat().st_mtime_ns

    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "stage cold_start already finished" in out
    assert "Restoring states from the checkpoint" in out
    assert (tmp_path / "cold_start" / "manifest.json").stat().st_mtime_ns == cold_manifest
    for stage in STAGES:
        assert (tmp_path / stage / "manifest.json").exists(), stage
    results = json.loads((tmp_path / "results.json").read_text())
    assert [s["name"] for s in results["stages"]] == ["cold_start", "reasoning_rl", "sft",
                                                      "rl_all", "eval"]
    assert (tmp_path / "curves.png").exists()
    rs = json.loads((tmp_path / "rejection_sampling" / "manifest.json").read_text())
    assert rs["metrics"]["sampled"] == 4 * 8  # num_prompts × the stage's own samples_per_prompt

    # a third run has nothing left to do
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert all(f"stage {s} already finished" in again.stdout for s in STAGES)
