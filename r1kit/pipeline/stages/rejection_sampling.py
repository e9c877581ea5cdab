"""The ``rejection_sampling`` stage: k samples per prompt from the previous checkpoint, scored
by the reward plugins and kept by the filter plugins, written as a new SFT set.

Prompts are processed in shards; each shard is written atomically, so a rerun after a crash
skips the finished shards and redoes only the interrupted one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from omegaconf import OmegaConf

from r1kit.data.loading import load_splits
from r1kit.pipeline.components import build_parts


def _rows_of(rollout) -> list[dict]:
    out = []
    for i in range(len(rollout)):
        row = dict(rollout.examples[i])
        row["solution"] = rollout.completions[i]
        row["rewards"] = {k: (None if math.isnan(float(v[i])) else float(v[i]))
                          for k, v in rollout.reward_parts.items()}
        out.append(row)
    return out


def _write_atomic(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def run(cfg, ctx) -> dict:
    parts = build_parts(cfg, ctx.registry, ctx.model_source)
    if not parts.collector.filters:
        raise ValueError(f"stage {ctx.name}: rejection sampling needs filters (e.g. "
                         "filter: {correct: {}, well_formatted: {}, dedupe: {}, "
                         "max_per_prompt: {n: 1}})")
    rs = cfg.rejection
    prompts = parts.train_rows if rs.num_prompts is None else parts.train_rows[:rs.num_prompts]
    shard_dir = ctx.stage_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    parts.policy.to("cuda" if torch.cuda.is_available() else "cpu")
    kept = sampled = 0
    for index, start in enumerate(range(0, len(prompts), rs.shard_size)):
        shard = shard_dir / f"shard-{index:05d}.jsonl"
        if not shard.exists():
            rows = prompts[start:start + rs.shard_size]
            rollout = parts.collector.apply_filters(
                parts.collector.sample(rows, rs.samples_per_prompt))
            _write_atomic(shard, _rows_of(rollout))
        with shard.open() as handle:
            kept += sum(1 for _ in handle)
        sampled += min(rs.shard_size, len(prompts) - start) * rs.samples_per_prompt
    dataset = []
    for shard in sorted(shard_dir.glob("shard-*.jsonl")):
        with shard.open() as handle:
            dataset += [json.loads(line) for line in handle]
    mixed = 0
    if rs.mix is not None:
        mix_cfg = OmegaConf.create(OmegaConf.to_container(rs.mix, resolve=True))
        mix_cfg.setdefault("val_size", 0)
        extra, _ = load_splits(mix_cfg, ctx.registry, cfg.seed)
        extra = [row for row in extra if row.get("solution")]
        dataset += extra
        mixed = len(extra)
    if not dataset:
        raise ValueError(f"stage {ctx.name}: the filters kept none of {sampled} samples, so "
                         "there is nothing to fine-tune on; check the model and the filters")
    _write_atomic(ctx.stage_dir / "dataset.jsonl", dataset)
    _write_atomic(ctx.stage_dir / "val.jsonl", parts.val_rows)
    return {"dataset": str(ctx.stage_dir / "dataset.jsonl"),
            "metrics": {"sampled": sampled, "kept": kept, "mixed": mixed,
                        "keep_rate": kept / max(sampled, 1)}}
