"""Rejection sampling writes a filtered SFT set in shards and resumes shard by shard."""

import json

from r1kit.config.validate import validate
from r1kit.pipeline.runner import run_pipeline
from r1kit.plugin.manager import get_registry
from tests.conftest import SHRINK, compose_config


def _cfg(run_dir, extra=()):
    return compose_config([
        *SHRINK, "pipeline=sft", "pipeline.stages.sft.kind=rejection_sampling",
        "+pipeline.stages.sft.overrides.filter={length: {min_tokens: 1}, dedupe: {}, "
        "max_per_prompt: {n: 2}}",
        "rejection.samples_per_prompt=3", "rejection.num_prompts=10", "rejection.shard_size=4",
        *extra], run_dir=str(run_dir))


def test_writes_shards_filters_and_resumes(tmp_path):
    cfg = _cfg(tmp_path)
    outputs = run_pipeline(validate(cfg, get_registry()))["sft"]
    shards = sorted((tmp_path / "sft" / "shards").glob("shard-*.jsonl"))
    assert len(shards) == 3  # 10 prompts in shards of 4
    rows = [json.loads(line) for line in open(outputs["dataset"])]
    assert rows and all({"prompt", "solution", "answer", "rewards"} <= set(r) for r in rows)
    per_prompt = {}
    for row in rows:
        per_prompt[row["prompt"]] = per_prompt.get(row["prompt"], 0) + 1
    assert max(per_prompt.values()) <= 2  # max_per_prompt
    assert outputs["metrics"]["sampled"] == 30
    records = [json.loads(p.read_text()) for p in sorted(
        (tmp_path / "sft" / "shards").glob("shard-*.meta.json"))]
    assert records == [{"rank": 0, "world_size": 1, "prompts": p} for p in
                       ([0, 4], [4, 8], [8, 10])]

    # simulate a crash during the last shard: finished shards must not be redone
    before = {s.name: s.stat().st_mtime_ns for s in shards[:2]}
    shards[2].unlink()
    stale = shards[2].with_name(shards[2].name + ".rank1.tmp")  # a killed rank's half-write
    stale.write_text("{")
    (tmp_path / "sft" / "manifest.json").unlink()
    run_pipeline(validate(_cfg(tmp_path), get_registry()))
    assert not stale.exists()
    after = {s.name: s.stat().st_mtime_ns for s in sorted(
        (tmp_path / "sft" / "shards").glob("shard-*.jsonl"))[:2]}
    assert before == after
    assert (tmp_path / "sft" / "shards" / shards[2].name).exists()


def test_mixes_in_non_reasoning_rows(tmp_path):
    general = tmp_path / "general.jsonl"
    general.write_text("\n".join(json.dumps({"prompt": f"hello {i}", "solution": "hi",
                                             "task": "general"}) for i in range(5)) + "\n")
    cfg = _cfg(tmp_path / "run", [f"+rejection.mix={{name: jsonl, path: {general}}}"])
    outputs = run_pipeline(validate(cfg, get_registry()))["sft"]
    assert outputs["metrics"]["mixed"] == 5
    rows = [json.loads(line) for line in open(outputs["dataset"])]
    assert sum(r.get("task") == "general" for r in rows) == 5
