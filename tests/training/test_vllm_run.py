"""A GRPO run with ``sampler=vllm`` trains, syncing weights each step and logging the
sampler/trainer log-prob mismatch."""

import csv

import pytest

from tests.conftest import SHRINK, run_cli

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm


def test_grpo_with_the_vllm_sampler_trains_and_logs_the_mismatch(tmp_path):
    result = run_cli(*SHRINK, "pipeline=grpo", "sampler=vllm", "reward=[format]",
                     "trainer.max_steps=2", "optim.lr=1e-3", "sampler.importance_correction=tis",
                     f"run_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "rl" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("reward/mean")]
    assert len(rows) == 2
    # the engine samples from the trainer's weights: after the first update is pushed, the
    # two sets of log-probs for the second step's tokens must still agree
    for row in rows:
        assert float(row["sampler/logprob_diff"]) < 1e-3, row["sampler/logprob_diff"]
    assert (tmp_path / "rl" / "manifest.json").exists()
