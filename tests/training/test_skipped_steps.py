"""A run whose every group is filtered out ends in bounded time with a message, and a short
run writes the samples of its first and last steps."""

import json
import time

from tests.conftest import SHRINK, run_cli


def test_run_with_every_group_filtered_out_stops_with_a_clear_message(tmp_path):
    # the untrained tiny model never writes the R1 format, so every group's format rewards
    # are equal (all 0) and DAPO's dynamic sampling drops every group of every step
    started = time.monotonic()
    result = run_cli(*SHRINK, "pipeline=grpo", "reward=[format]", "filter=[zero_variance]",
                     "algo.max_refill_rounds=1", "algo.max_skipped_steps=3",
                     "trainer.max_steps=5", "sampler.max_new_tokens=4",
                     f"run_dir={tmp_path}", timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("r1kit: error: 3 training steps in a row had no group left")
    assert "zero_variance" in message and "same reward" in message
    assert time.monotonic() - started < 240
    # the skipped steps were logged, and nothing was learned
    log = (tmp_path / "rl" / "metrics.csv").read_text()
    assert "train/skipped" in log.splitlines()[0]
    assert not (tmp_path / "rl" / "manifest.json").exists()


def test_short_run_writes_samples_of_its_first_and_last_step(tmp_path):
    result = run_cli(*SHRINK, "pipeline=grpo", "reward=[format]", "trainer.max_steps=3",
                     "logger.samples_every=10", "sampler.max_new_tokens=4",
                     f"run_dir={tmp_path}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    samples = [json.loads(line) for line in (tmp_path / "rl" / "samples.jsonl").open()]
    assert sorted({s["step"] for s in samples}) == [1, 3]
    assert all(s["prompt"] and "completion" in s for s in samples)
