"""The ``rejection_sampling`` stage: k samples per prompt from the previous checkpoint, scored
by the reward plugins and kept by the filter plugins, written as a new SFT set.

Prompts are cut into shards of ``rejection.shard_size``, numbered over the whole prompt list.
Under several processes the shards not yet written are dealt out over the ranks, so each rank
samples its own prompts on its own device and writes only its own shard files; rank 0 then
merges the shards into ``dataset.jsonl``. Each shard is written atomically, so a rerun (with any
number of processes) skips the finished shards and redoes only the interrupted ones.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import torch

from r1kit.data.loading import load_rows
from r1kit.data.response import full_response
from r1kit.rewards.judge import counters as judge_counters
from r1kit.stages.parts import build_parts
from r1kit.run.distributed import join_ranks
from r1kit.run.progress import Progress, progress_enabled


def _rows_of(rollout) -> list[dict]:
    """The kept samples as SFT rows. A ``solution`` is the whole response, with what the
    prompt opened of it (the R1 template's trailing ``<think>``): the SFT stage trains on the
    part its own prompt leaves to the model (``r1kit.data.response.completion_target``), so
    the set is right under any template."""
    out = []
    for i in range(len(rollout)):
        row = dict(rollout.examples[i])
        row["solution"] = full_response(rollout.prompts[i], rollout.completions[i])
        row["rewards"] = {k: (None if math.isnan(float(v[i])) else float(v[i]))
                          for k, v in rollout.reward_parts.items()}
        out.append(row)
    return out


def _write_atomic(path: Path, lines: list[str], rank: int) -> None:
    """Write through a temporary name of this rank's own, then rename: a reader (or a resumed
    run) never sees half a file, and no two ranks ever write the same file."""
    tmp = path.with_name(f"{path.name}.rank{rank}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)
    os.replace(tmp, path)


def _jsonl(rows: list[dict]) -> list[str]:
    return [json.dumps(row) for row in rows]


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _shard(shard_dir: Path, index: int) -> Path:
    return shard_dir / f"shard-{index:05d}.jsonl"


def _unfinished(shard_dir: Path, shards: list[Path]) -> list[int]:
    """The numbers of the shards not written yet. A killed run may have left temporary files;
    no rank writes before this list is out, so they can go now."""
    for stale in shard_dir.glob("*.tmp"):
        stale.unlink()
    return [i for i, shard in enumerate(shards) if not shard.exists()]


def _shard_prompts(prompts: list, index: int, shard_size: int) -> list:
    return prompts[index * shard_size:(index + 1) * shard_size]


def _progress(cfg, ctx, ranks, prompts, pending: list[int], num_shards: int) -> Progress:
    """Rank 0's progress over its own shards (the shards are dealt out evenly, so its share
    tells how far the whole job is); a resumed stage counts only what is left."""
    enabled = progress_enabled(cfg.trainer, is_global_zero=ranks.is_global_zero)
    if enabled and len(pending) < num_shards:
        print(f"r1kit {ctx.name}: resuming, {num_shards - len(pending)} of {num_shards} "
              "shards already written", file=sys.stderr, flush=True)
    mine = pending[ranks.rank::ranks.world_size]
    label = f"r1kit {ctx.name}"
    if ranks.world_size > 1:
        label += f" (rank 0's share of {ranks.world_size} ranks)"
    total = sum(len(_shard_prompts(prompts, i, cfg.rejection.shard_size)) for i in mine)
    return Progress(total, label=label, unit="prompts", counters=("kept",), enabled=enabled)


def _sample_shard(cfg, parts, prompts, shard_dir: Path, index: int, ranks) -> int:
    rs = cfg.rejection
    start = index * rs.shard_size
    rows = _shard_prompts(prompts, index, rs.shard_size)
    # a shard's samples depend on its prompts and its number only, not on which rank (or how
    # many ranks, or which run of a resumed stage) samples it, for samplers that draw from
    # torch's RNG (``hf``; vLLM seeds its own engine)
    torch.manual_seed(cfg.seed + index)
    rollout = parts.collector.apply_filters(parts.collector.sample(rows, rs.samples_per_prompt))
    # who wrote the shard, written before it: a shard file always has its record next to it
    record = {"rank": ranks.rank, "world_size": ranks.world_size,
              "prompts": [start, start + len(rows)]}
    shard = _shard(shard_dir, index)
    _write_atomic(shard.with_suffix(".meta.json"), [json.dumps(record)], ranks.rank)
    _write_atomic(shard, _jsonl(_rows_of(rollout)), ranks.rank)
    return len(rollout)  # the samples kept


def _judge_metrics(ranks, before: dict) -> dict:
    """The judge's calls, cache hits and failures of this run of the stage, summed over ranks
    (unlike the counts read from the shard files, they cover only what this run asked: a
    resumed stage reports what the resumption cost). A collective: every rank calls it."""
    counts = judge_counters.judge_counts(before, judge_counters.counters())
    totals = ranks.sum(torch.tensor(list(counts.values()), dtype=torch.float64)).tolist()
    return dict(zip(counts, totals))


def _merge(cfg, ctx, shards: list[Path], sampled: int, val_rows: list[dict],
           extra_metrics: dict | None = None) -> dict:
    """Rank 0: the shards (in prompt order) plus the ``rejection.mix`` rows, as the new SFT
    set; the metrics are counted from the files, so they cover shards of earlier runs too."""
    dataset = [row for shard in shards for row in _read_jsonl(shard)]
    kept = len(dataset)
    mixed = 0
    if cfg.rejection.mix is not None:
        # every row of the mix's train split: nothing is held out of data that is only mixed in
        extra = load_rows(cfg.rejection.mix, ctx.registry, "train", cfg.seed)
        extra = [row for row in extra if row.get("solution")]
        dataset += extra
        mixed = len(extra)
    if not dataset:
        raise ValueError(f"stage {ctx.name}: the filters kept none of {sampled} samples, so "
                         "there is nothing to fine-tune on; check the model and the filters")
    _write_atomic(ctx.stage_dir / "dataset.jsonl", _jsonl(dataset), 0)
    _write_atomic(ctx.stage_dir / "val.jsonl", _jsonl(val_rows), 0)
    return {"dataset": str(ctx.stage_dir / "dataset.jsonl"),
            "metrics": {"sampled": sampled, "kept": kept, "mixed": mixed,
                        "keep_rate": kept / max(sampled, 1), **(extra_metrics or {})}}


def run(cfg, ctx) -> dict:
    ranks = join_ranks(cfg.trainer)  # before loading anything: the other ranks start sooner
    parts = build_parts(cfg, ctx.registry, ctx.model_source)
    if not parts.collector.filters:
        raise ValueError(f"stage {ctx.name}: rejection sampling needs filters (e.g. "
                         "filter: {correct: {}, well_formatted: {}, dedupe: {}, "
                         "max_per_prompt: {n: 1}})")
    rs = cfg.rejection
    prompts = parts.train_rows if rs.num_prompts is None else parts.train_rows[:rs.num_prompts]
    shard_dir = ctx.stage_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    shards = [_shard(shard_dir, i) for i in range(math.ceil(len(prompts) / rs.shard_size))]
    # rank 0's view of what is left, so every rank deals out the same list; dealing out only
    # the unfinished shards keeps the ranks equally busy on a resumed run too
    pending = ranks.on_rank_zero(lambda: _unfinished(shard_dir, shards))
    parts.policy.to(ranks.device)
    judged = judge_counters.counters()
    with _progress(cfg, ctx, ranks, prompts, pending, len(shards)) as progress:
        for index in pending[ranks.rank::ranks.world_size]:
            kept = _sample_shard(cfg, parts, prompts, shard_dir, index, ranks)
            progress.advance(len(_shard_prompts(prompts, index, rs.shard_size)), kept=kept)
    ranks.barrier()  # every shard is on disk
    scores_judge = parts.collector.scores_judge
    extra = _judge_metrics(ranks, judged) if scores_judge else {}
    # rank 0 merges; the broadcast of its result holds the others until dataset.jsonl exists,
    # and raises its error (no rows kept, say) on every rank
    return ranks.on_rank_zero(
        lambda: _merge(cfg, ctx, shards, len(prompts) * rs.samples_per_prompt, parts.val_rows,
                       extra))
