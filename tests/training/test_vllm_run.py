"""A GRPO run with ``sampler=vllm`` trains, syncing weights each step and logging the
sampler/trainer log-prob mismatch."""

import csv

import pytest

from tests.conftest import REPO, SHRINK, run_cli

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


def test_lora_with_the_vllm_sampler_samples_with_the_current_adapters(tmp_path):
    # the engine gets the adapters merged into the base after every update: its log-probs of
    # the second step's tokens must agree with the trainer's (adapters on), under IcePop's
    # two-sided masking (one of the rollout corrections)
    # the `sevens` test reward (how many 7s) varies within a group, so step 1 has a gradient
    result = run_cli(*SHRINK, "pipeline=grpo", "sampler=vllm", "reward=[sevens]",
                     "trainer.max_steps=2", "optim.lr=3e-2", "model.lora.rank=8",
                     "sampler.importance_correction=icepop", f"run_dir={tmp_path}",
                     module="tests.distributed.learnable_main",
                     env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "rl" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("reward/mean")]
    assert len(rows) == 2
    assert float(rows[0]["train/grad_norm"]) > 0  # the adapters moved before step 2 sampled
    for row in rows:
        assert float(row["sampler/logprob_diff"]) < 1e-3, row["sampler/logprob_diff"]
        assert 0.0 <= float(row["sampler/is_masked_frac"]) <= 1.0
    assert (tmp_path / "rl" / "model" / "config.json").exists()  # merged export
