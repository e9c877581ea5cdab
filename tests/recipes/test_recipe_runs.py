"""The shipped recipes run end to end, shrunk to the tiny model, on local data shaped like
their real datasets, with their templates, rewards and filters as shipped."""

import csv
import json

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForSequenceClassification

from r1kit.models.tiny import build_tokenizer
from tests.conftest import run_cli
from tests.recipes import shaped_data
from tests.recipes.conftest import SHRINK, data_overrides, oracle_dist, r1_full_overrides

R1_FULL_STAGES = ["cold_start", "reasoning_rl", "rejection_sampling", "sft", "rl_all", "eval"]


def _metrics(stage_dir) -> list[dict]:
    with (stage_dir / "metrics.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("reward/mean")]


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory):
    """A small sequence-classification reward model, saved as a hub model would be."""
    path = tmp_path_factory.mktemp("rm")
    tokenizer = build_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=128,
                         num_labels=1, pad_token_id=tokenizer.pad_token_id,
                         max_position_embeddings=1024)
    torch.manual_seed(0)
    Qwen2ForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def general_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("general") / "general.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in shaped_data.general_rows()))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["math", "gsm8k"])
def test_r1_zero_trains_on_shaped_data_with_its_template(preset, shaped, tmp_path):
    result = run_cli("+experiment=r1_zero", *SHRINK, *data_overrides(preset, shaped[preset]),
                     f"run_dir={tmp_path}", env=oracle_dist(tmp_path / "dist"), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _metrics(tmp_path / "rl")
    assert len(rows) == 2
    # the oracle's four kinds per group: half well formed, half correct
    assert {float(r["reward/format"]) for r in rows} == {0.5}
    assert {float(r["reward/accuracy"]) for r in rows} == {0.5}
    samples = [json.loads(line) for line in (tmp_path / "rl" / "samples.jsonl").open()]
    assert samples and samples[0]["prompt"].endswith("Assistant: <think>")
    assert (tmp_path / "rl" / "manifest.json").exists()


@pytest.mark.slow
def test_r1_full_runs_every_stage_on_math_shaped_data(shaped, reward_model_dir, general_file,
                                                      tmp_path):
    result = run_cli("+experiment=r1_full", *SHRINK, *data_overrides("math", shaped["math"]),
                     *r1_full_overrides(reward_model_dir, general_file, shaped["math"]),
                     f"run_dir={tmp_path}", env=oracle_dist(tmp_path / "dist"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in R1_FULL_STAGES:
        assert (tmp_path / stage / "manifest.json").exists(), stage
    # cold start trained on MATH solutions written as R1 responses
    # rejection sampling kept the correct, well-formed samples as whole responses
    kept = [json.loads(line) for line in (tmp_path / "rejection_sampling" / "dataset.jsonl").open()]
    assert len(kept) == 4  # num_prompts=4, one distinct correct sample each
    assert all(row["solution"].startswith("<think> We add") for row in kept)
    assert all(row["rewards"]["accuracy"] == 1.0 and row["rewards"]["format"] == 1.0
               for row in kept)
    # rl_all: rule rewards on the reasoning rows, the reward model on the general ones
    rows = _metrics(tmp_path / "rl_all")
    assert rows and all(r["reward/reward_model"] not in ("", "nan") for r in rows)
    assert all(r["reward/accuracy"] not in ("", "nan") for r in rows)
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["val/accuracy"] == 1.0 and report["val/format"] == 1.0


def _start(args, env):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    return subprocess.Popen([sys.executable, "-m", "r1kit", *args], cwd=REPO,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_r1_full_on_two_ranks_shards_rejection_sampling_and_resumes_after_kill(
        shaped, reward_model_dir, general_file, tmp_path):
    import os
    import signal
    import time

    args = ["+experiment=r1_full", *SHRINK, *data_overrides("gsm8k", shaped["gsm8k"]),
            *r1_full_overrides(reward_model_dir, general_file, shaped["math"]),
            "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
            "rejection.num_prompts=8",
            # slow sampling in rejection sampling only, so the kill lands in the middle of it
            "+pipeline.stages.rejection_sampling.overrides.sampler.delay=4",
            f"run_dir={tmp_path}"]
    env = {**oracle_dist(tmp_path / "dist"), "OMP_NUM_THREADS": "1"}
    shards = tmp_path / "rejection_sampling" / "shards"
    first = _start(args, env)
    deadline = time.monotonic() + 400
    while not list(shards.glob("shard-*.jsonl")):
        assert first.poll() is None, first.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "rejection sampling never wrote a shard"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # both ranks: Lightning started rank 1 in this session
    first.wait()
    before = {p.name: p.read_text() for p in shards.glob("shard-*.jsonl")}
    assert 1 <= len(before) < 4 and not (tmp_path / "rejection_sampling" / "manifest.json").exists()

    second = _start(args, env)
    _, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    for stage in R1_FULL_STAGES:
        assert (tmp_path / stage / "manifest.json").exists(), stage
    # the shards finished before the kill were kept as they were, the others were sampled
    after = {p.name: p.read_text() for p in shards.glob("shard-*.jsonl")}
    assert len(after) == 4 and all(after[name] == text for name, text in before.items())
    # every shard written by one rank, both ranks took part, prompts disjoint and complete
    records = [json.loads(p.read_text()) for p in sorted(shards.glob("shard-*.meta.json"))]
    assert [r["prompts"] for r in records] == [[0, 2], [2, 4], [4, 6], [6, 8]]
    assert {r["rank"] for r in records} == {0, 1} and {r["world_size"] for r in records} == {2}
    assert not list((tmp_path / "rejection_sampling").rglob("*.tmp"))
    kept = [json.loads(line) for line in (tmp_path / "rejection_sampling" / "dataset.jsonl").open()]
    assert len(kept) == 8 and len({row["prompt"] for row in kept}) == 8
    assert all(row["solution"].startswith("<think> We add") for row in kept)
