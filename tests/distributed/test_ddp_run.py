"""Two CPU processes (DDP over gloo) train GRPO end to end through the CLI.

Lightning's launcher re-runs the same command for rank 1; each rank samples its own prompts, so
a step holds 2 × data.batch_size groups; metrics are combined over ranks and only rank 0 writes
the run's files."""

import csv
import json
from collections import Counter
from pathlib import Path

import torch

from tests.conftest import run_cli

BATCH, G = 2, 4


def test_two_process_ddp_grpo_run_trains_end_to_end(tmp_path):
    result = run_cli(
        "pipeline=grpo", "model=tiny", "data=arithmetic", "trainer.devices=2",
        "trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.max_steps=2",
        f"data.batch_size={BATCH}", f"algo.group_size={G}", "sampler.max_new_tokens=16",
        "eval.every=0", "eval.k=1", "data.val_size=4", "logger=csv", "logger.samples_every=1",
        "trainer.enable_progress_bar=false", f"run_dir={tmp_path}", timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    stage = tmp_path / "rl"

    with (stage / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("reward/mean")]
    assert len(rows) == 2
    # counts are summed over ranks: both ranks' groups took part in every step
    assert [float(row["rollout/kept_groups"]) for row in rows] == [2 * BATCH] * 2
    assert all(row["train/loss"] != "" and row["train/grad_norm"] != "" for row in rows)

    # rank 0 alone writes the samples of both ranks: distinct prompts, nothing written twice
    samples = [json.loads(line) for line in (stage / "samples.jsonl").open()]
    per_step = Counter(sample["step"] for sample in samples)
    assert sorted(per_step.values()) == [2 * BATCH * G] * 2
    for step in per_step:
        groups = {s["group"]: s["prompt"] for s in samples if s["step"] == step}
        assert len(groups) == 2 * BATCH and len(set(groups.values())) == 2 * BATCH
    assert len({s["prompt"] for s in samples}) == 2 * 2 * BATCH  # no prompt seen twice

    manifest = json.loads((stage / "manifest.json").read_text())
    assert Path(manifest["checkpoint"], "config.json").exists()
    assert "val/accuracy" in manifest["metrics"]
    # a resume restores each rank's own data position and RNG
    checkpoint = torch.load(stage / "checkpoints" / "last.ckpt", weights_only=False)
    assert len(checkpoint["r1kit_stream_ranks"]) == 2 and len(checkpoint["r1kit_rng_ranks"]) == 2
