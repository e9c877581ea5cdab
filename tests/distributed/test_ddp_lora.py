"""LoRA under two CPU processes (DDP over gloo): the run trains with β > 0 (its reference the base
with the adapters off) and rank 0 exports the merged model, whose changes are the adapted
projections' alone."""

import csv
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from tests.conftest import run_cli


def test_two_process_lora_grpo_run(tmp_path):
    result = run_cli(
        "pipeline=grpo", "model=tiny", "data=arithmetic", "reward=[sevens]", "model.lora.rank=4",
        "algo.beta=0.04",
        "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
        "trainer.max_steps=2", "data.batch_size=2", "algo.group_size=4",
        "sampler.max_new_tokens=8", "eval.every=0", "eval.k=1", "data.val_size=4",
        "logger=csv", "trainer.enable_progress_bar=false", "optim.lr=1e-2",
        f"run_dir={tmp_path}", timeout=400, module="tests.distributed.learnable_main")
    assert result.returncode == 0, result.stderr[-3000:]
    with (tmp_path / "rl" / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    assert len(rows) == 2 and all(row["train/kl"] != "" for row in rows)
    manifest = json.loads((tmp_path / "rl" / "manifest.json").read_text())
    exported = AutoModelForCausalLM.from_pretrained(manifest["checkpoint"])
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny_model")
    assert type(exported).__name__ == "Qwen2ForCausalLM"
    base_state = base.state_dict()
    changed = {name for name, p in exported.state_dict().items()
               if not torch.equal(p, base_state[name])}
    # the merged adapters changed the adapted projections and nothing else
    assert changed and all(name.split(".")[-2].endswith("proj") for name in changed)
    assert not any("embed" in name or "norm" in name for name in changed)
    assert not Path(manifest["checkpoint"], "adapter_config.json").exists()
