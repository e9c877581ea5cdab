"""End-to-end GRPO runs on the tiny model: learning, logging, determinism."""

import csv
import json
from pathlib import Path

import pytest

from r1kit.plugin import manager as pluginmanager
from r1kit.config.validate import validate
from tests.conftest import SHRINK, compose_config, run_cli
from tests.training import learnable_reward


def _metrics(run_dir: Path, stage: str = "rl") -> list[dict]:
    with (run_dir / stage / "metrics.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("reward/mean")]


@pytest.fixture
def with_test_reward():
    registry = pluginmanager.install(extra_plugins=(learnable_reward,))
    yield registry
    pluginmanager.reset()


def _train(overrides, run_dir, registry):
    from r1kit.pipeline.runner import run_pipeline

    cfg = compose_config([*SHRINK, "pipeline=grpo", *overrides], run_dir=str(run_dir))
    return run_pipeline(validate(cfg, registry))


@pytest.mark.slow
def test_reward_rises_on_a_trivially_learnable_reward(tmp_path, with_test_reward):
    _train(["reward=[sevens]", "trainer.max_steps=30", "optim.lr=3e-3", "algo.beta=0",
            "sampler.max_new_tokens=8", "algo.group_size=8"], tmp_path, with_test_reward)
    rewards = [float(r["reward/sevens"]) for r in _metrics(tmp_path)]
    assert len(rewards) == 30
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.2, (first, last)


def test_run_directory_records_metrics_samples_and_provenance(tmp_path, with_test_reward):
    _train(["reward=[sevens,format]", "trainer.max_steps=2", "logger.samples_every=1",
            "eval.every=2", "data.val_size=4"], tmp_path, with_test_reward)
    rows = _metrics(tmp_path)
    for key in ("reward/mean", "reward/sevens", "reward/format", "train/kl",
                "train/clip_low_frac", "train/clip_high_frac", "train/entropy",
                "completion/length", "train/grad_norm", "train/lr", "time/step_s",
                "throughput/tokens_per_s"):
        assert key in rows[0], key
    samples = [json.loads(line) for line in (tmp_path / "rl" / "samples.jsonl").open()]
    assert {"prompt", "completion", "rewards", "advantage"} <= set(samples[0])
    assert set(samples[0]["rewards"]) == {"sevens", "format"}
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["libraries"]["torch"] and any(p["name"] == "sevens" for p in env["plugins"])
    assert (tmp_path / "config.yaml").exists()
    manifest = json.loads((tmp_path / "rl" / "manifest.json").read_text())
    assert Path(manifest["checkpoint"], "config.json").exists()
    assert "val/format" in manifest["metrics"]


def test_seeded_deterministic_runs_give_identical_metrics(tmp_path, with_test_reward):
    common = ["reward=[sevens]", "trainer.max_steps=4", "deterministic=true", "seed=7",
              "algo.iterations=2"]
    _train(common, tmp_path / "a", with_test_reward)
    _train(common, tmp_path / "b", with_test_reward)
    drop = ("time/", "throughput/")
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(drop)} for r in rows]  # noqa: E731
    a, b = strip(_metrics(tmp_path / "a")), strip(_metrics(tmp_path / "b"))
    # μ = 2: one logged row per rollout, two optimizer steps each
    assert len(a) == 2 and a == b


def test_r1_zero_recipe_shrunk_to_tiny_trains_and_logs(tmp_path):
    result = run_cli("+experiment=r1_zero", "model=tiny", "data=arithmetic",
                     "trainer.max_steps=3", "data.batch_size=4", "sampler.max_new_tokens=24",
                     f"run_dir={tmp_path}", env={"WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_metrics(tmp_path)) == 3
    assert list((tmp_path / "rl").glob("wandb/offline-run-*")), "wandb offline run missing"


def test_mu_above_one_takes_pi_old_from_the_sampler_without_a_forward(
        tmp_path, with_test_reward, monkeypatch):
    """μ = 2 with the HF sampler: π_old comes with the samples (no extra policy forward per
    rollout); only the reference (β > 0) is run by ``_logprobs``."""
    from r1kit.stages.grpo.module import GRPOModule

    calls, old = [], []
    original_logprobs, original_batch = GRPOModule._logprobs, GRPOModule._policy_batch

    def counting(self, model, batch, rows=None):
        calls.append("policy" if model is self.policy else "reference")
        return original_logprobs(self, model, batch, rows)

    def policy_batch(self, rollout, advantages):
        batch, mismatch = original_batch(self, rollout, advantages)
        old.append(batch.old_logp)
        return batch, mismatch

    monkeypatch.setattr(GRPOModule, "_logprobs", counting)
    monkeypatch.setattr(GRPOModule, "_policy_batch", policy_batch)
    _train(["reward=[sevens]", "trainer.max_steps=4", "algo.iterations=2", "algo.beta=0.04"],
           tmp_path, with_test_reward)
    assert calls == ["reference"] * 2  # 2 rollouts, μ = 2 optimizer steps each
    assert all(o is not None and float(o.min()) < 0 for o in old)
    rows = _metrics(tmp_path)
    # the first of the μ updates starts at π_old (ratios 1 up to float rounding) and the second
    # one optimizer step away: their mean stays near 1
    assert len(rows) == 2 and all(abs(float(r["train/ratio_mean"]) - 1) < 0.05 for r in rows)


def test_beta_zero_run_skips_exactly_the_groups_with_equal_rewards(tmp_path, with_test_reward):
    # 'sevens' on a random model with 4 new tokens: most groups score all zeros
    _train(["reward=[sevens]", "trainer.max_steps=3", "algo.beta=0", "logger.samples_every=1",
            "sampler.max_new_tokens=4"], tmp_path, with_test_reward)
    skipped = [float(r["train/skipped_rows_frac"]) for r in _metrics(tmp_path)]
    samples = [json.loads(line) for line in (tmp_path / "rl" / "samples.jsonl").open()]
    expected = []
    for step in sorted({s["step"] for s in samples}):
        rows = [s for s in samples if s["step"] == step]
        flat = {g for g in {s["group"] for s in rows}
                if all(s["advantage"] == 0 for s in rows if s["group"] == g)}
        expected.append(sum(s["group"] in flat for s in rows) / len(rows))
    assert skipped == pytest.approx(expected) and len(expected) == 3
    assert 0 < sum(skipped) < 3  # some groups skipped, some trained


def test_reference_logprobs_computed_while_scoring_match_a_fresh_forward(
        tmp_path, with_test_reward, monkeypatch):
    """β > 0: the reference pass runs while rewards are scored, on the raw rollout; after the
    zero-variance filter drops groups (and refills), the kept rows' reference log-probs are
    those a forward pass over the final batch gives."""
    import torch

    from r1kit.rollout import collector as rollouts
    from r1kit.stages.grpo.module import GRPOModule

    checked, overlapped = [], []
    original_batch, original_sample = GRPOModule._policy_batch, rollouts.RolloutCollector.sample

    def policy_batch(self, rollout, advantages):
        batch, mismatch = original_batch(self, rollout, advantages)
        assert rollout.reference_logprobs is not None
        fresh = self._logprobs(self.reference, batch)
        torch.testing.assert_close(batch.ref_logp, fresh, rtol=1e-5, atol=1e-5)
        checked.append(len(rollout))
        return batch, mismatch

    def sample(self, rows, num_samples, *, greedy=False, while_scoring=None):
        def spy(rollout):  # called while the rewards run: they are not known yet
            overlapped.append(bool(rollout.rewards.abs().sum() == 0))
            while_scoring(rollout)
        return original_sample(self, rows, num_samples, greedy=greedy,
                               while_scoring=None if while_scoring is None else spy)

    monkeypatch.setattr(GRPOModule, "_policy_batch", policy_batch)
    monkeypatch.setattr(rollouts.RolloutCollector, "sample", sample)
    _train(["reward=[sevens]", "trainer.max_steps=3", "algo.beta=0.04",
            "filter=[zero_variance]", "sampler.max_new_tokens=6"], tmp_path, with_test_reward)
    assert checked and overlapped and all(overlapped)
    assert len(overlapped) > len(checked) or any(n < 16 for n in checked)  # the filter acted


def test_bf16_mixed_run_keeps_the_frozen_reference_in_bf16(tmp_path, with_test_reward,
                                                          monkeypatch):
    import torch

    from r1kit.stages.grpo.module import GRPOModule

    seen = []
    original = GRPOModule._policy_batch

    def policy_batch(self, rollout, advantages):
        batch, mismatch = original(self, rollout, advantages)
        seen.append((next(self.reference.parameters()).dtype,
                     next(self.policy.parameters()).dtype, batch.ref_logp.dtype,
                     bool(torch.isfinite(batch.ref_logp).all()),
                     self.policy.config._attn_implementation,
                     self.reference.config._attn_implementation))
        return batch, mismatch

    monkeypatch.setattr(GRPOModule, "_policy_batch", policy_batch)
    _train(["reward=[sevens]", "trainer.max_steps=2", "algo.beta=0.04",
            "trainer.precision=bf16-mixed"], tmp_path, with_test_reward)
    # master weights stay float32; the reference, never updated, is stored in bf16; on a CPU
    # both models run eager attention (model.attn_implementation left at null)
    assert seen == [(torch.bfloat16, torch.float32, torch.float32, True, "eager", "eager")] * 2
    rows = _metrics(tmp_path)
    assert len(rows) == 2 and all(float(r["train/kl"]) >= 0 for r in rows)
