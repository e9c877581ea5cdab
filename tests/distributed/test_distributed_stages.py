"""Rejection sampling and eval spread over two CPU processes (DDP over gloo) through the CLI.

Rank 0 starts rank 1 from the stage itself when no Trainer has (``r1kit.run.distributed``);
each rank samples its own shards or held-out rows, rank 0 writes the run's files.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from r1kit.data.loading import load_splits
from r1kit.stages.eval.evaluation import Evaluator
from r1kit.plugin.manager import get_registry
from r1kit.rewards.harness import RewardSpec
from r1kit.rollout.batch import Rollout
from tests.conftest import REPO, compose_config, run_cli

TWO_RANKS = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
BASE = ["model=tiny", "data=arithmetic", "sampler.max_new_tokens=16", "data.val_size=4",
        "eval.k=2", "logger=csv", "trainer.enable_progress_bar=false"]
# one torch thread per process, whatever the number of processes: same arithmetic in every run
ENV = {"OMP_NUM_THREADS": "1"}
# random tiny model: keep one completion per prompt, whatever it wrote
KEEP_ANY = "filter: {dedupe: {}, max_per_prompt: {n: 1}}"


def _rs_stage(num_prompts, shard_size, filters=KEEP_ANY):
    return (f"+pipeline.stages.rs={{kind: rejection_sampling, overrides: {{rejection: "
            f"{{samples_per_prompt: 2, num_prompts: {num_prompts}, shard_size: {shard_size}}}, "
            f"{filters}}}}}")


def _records(shard_dir):
    return {p.name.removesuffix(".meta.json"): json.loads(p.read_text())
            for p in sorted(shard_dir.glob("shard-*.meta.json"))}


def _rows(path):
    return [json.loads(line) for line in path.open()]


def _train_prompts(n):
    cfg = compose_config(BASE)
    train, _ = load_splits(cfg.data, get_registry(), cfg.seed)
    return [row["prompt"] for row in train[:n]]


def test_two_ranks_sample_disjoint_halves_of_the_rejection_prompts(tmp_path):
    result = run_cli("pipeline=grpo", "~pipeline.stages.rl", _rs_stage(8, 2), *BASE,
                     *TWO_RANKS, f"run_dir={tmp_path}", env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    stage = tmp_path / "rs"
    records = _records(stage / "shards")
    # four shards of two prompts, dealt out in turn: each rank sampled half of the prompts
    assert [(r["rank"], r["world_size"], r["prompts"]) for r in records.values()] == [
        (0, 2, [0, 2]), (1, 2, [2, 4]), (0, 2, [4, 6]), (1, 2, [6, 8])]
    expected = _train_prompts(8)
    shards = {name: _rows(stage / "shards" / f"{name}.jsonl") for name in records}
    for name, record in records.items():  # a shard holds the prompts its record names
        assert [row["prompt"] for row in shards[name]] == expected[slice(*record["prompts"])]
    by_rank = {rank: {row["prompt"] for name, r in records.items() if r["rank"] == rank
                      for row in shards[name]} for rank in (0, 1)}
    assert len(by_rank[0]) == len(by_rank[1]) == 4 and not by_rank[0] & by_rank[1]
    # one merged dataset: the shards in prompt order; nothing left behind in temporary files
    dataset = _rows(stage / "dataset.jsonl")
    assert dataset == [row for rows in shards.values() for row in rows]
    assert [row["prompt"] for row in dataset] == expected
    assert not list(stage.rglob("*.tmp"))
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["metrics"] == {"sampled": 16, "kept": 8, "mixed": 0, "keep_rate": 0.5}


def test_filters_keeping_nothing_fail_on_both_ranks(tmp_path):
    keep_none = "filter: {length: {min_tokens: 100000}}"
    result = run_cli("pipeline=grpo", "~pipeline.stages.rl", _rs_stage(4, 2, keep_none),
                     *BASE, *TWO_RANKS, f"run_dir={tmp_path}", env=ENV, timeout=300)
    assert result.returncode != 0
    # rank 0 raised it, rank 1 got it from rank 0 (and neither waits for the other forever)
    assert "ValueError: stage rs: the filters kept none of 8 samples" in result.stderr
    assert "rank 0 failed: ValueError: stage rs: the filters kept none" in result.stderr
    assert not (tmp_path / "rs" / "dataset.jsonl").exists()


# ------------------------------------------------------------------------------- eval stage
# 1-digit addition, learned for a few seconds: a model that gets some held-out sums right
LEARNED = ["data.digits=1", "data.num_train=80", "data.num_val=20", "data.num_solutions=-1",
           "data.val_size=20", "eval.k=4", "sampler.max_new_tokens=24"]


@pytest.fixture(scope="module")
def learned_model(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sft")
    result = run_cli("pipeline=sft", *BASE, *LEARNED, "trainer.max_steps=100", "optim.lr=3e-3",
                     "optim.warmup_steps=10", "data.batch_size=32", f"run_dir={run_dir}",
                     env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir / "sft" / "model"


def _eval(run_dir, model, *extra):
    # near-greedy sampling (temperature 1e-5): the k samples of a row are the same whichever
    # rank draws them, so avg@k and maj@k can be compared across world sizes too
    result = run_cli("pipeline=grpo", "~pipeline.stages.rl", "+pipeline.stages.eval={kind: eval}",
                     *BASE, *LEARNED, f"model.path={model}", "sampler.temperature=1e-5",
                     *extra, f"run_dir={run_dir}", env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "eval" / "eval.json").read_text())


def test_eval_on_two_ranks_equals_eval_on_one(tmp_path, learned_model):
    one = _eval(tmp_path / "one", learned_model)
    two = _eval(tmp_path / "two", learned_model, *TWO_RANKS)
    assert set(one) == {"val/reward", "val/accuracy", "val/format", "val/avg@4", "val/maj@4"}
    assert 0 < one["val/accuracy"] < 1  # the model is right on some rows, not all
    assert two == pytest.approx(one, rel=1e-12)


NAN = float("nan")


class _FixedCollector:
    """Sample ``i`` of a row is ``row["outputs"][i]``, scored ``row["partial"][i]`` by a reward
    that may not apply (NaN); greedy decoding gives the first."""

    rewards = [RewardSpec(name="accuracy", fn=None), RewardSpec(name="partial", fn=None)]

    def sample(self, rows, num_samples, *, greedy=False):
        picks = [(row, i) for row in rows for i in range(num_samples)]
        texts = [row["outputs"][i] for row, i in picks]
        correct = torch.tensor([float(row["outputs"][i] == f"<answer>{row['answer']}</answer>")
                                for row, i in picks])
        partial = torch.tensor([row["partial"][i] for row, i in picks])
        rollout = Rollout(examples=[row for row, _ in picks], prompts=[""] * len(picks),
                          completions=texts, prompt_ids=[[]] * len(picks),
                          completion_ids=[[]] * len(picks), group_ids=torch.zeros(len(picks)),
                          truncated=torch.zeros(len(picks), dtype=torch.bool))
        rollout.reward_parts = {"accuracy": correct, "partial": partial}
        rollout.rewards = correct + partial.nan_to_num()
        return rollout


def _row(answer, outputs, partial):
    return {"answer": answer, "outputs": [f"<answer>{o}</answer>" for o in outputs],
            "partial": partial}


def test_evaluator_sums_over_shards_are_exact():
    """Two shards' sums and counts, added, give the metrics of the whole set: NaN-aware means,
    avg@k and maj@k included, where a mean of the shards' own metrics would not."""
    rows = [_row("1", "121", [0.5, 1.0, NAN]), _row("9", "899", [NAN, 0.0, 1.0]),
            _row("3", "433", [1.0, 0.5, 0.5]), _row("5", "665", [0.0, NAN, NAN]),
            _row("7", "766", [0.25, 1.0, 0.0])]
    collector = _FixedCollector()
    whole = Evaluator(collector, rows, every=1, k=3).run()
    assert whole == pytest.approx({
        "val/reward": (2 + 0.5 + 1.0 + 0.25) / 5, "val/accuracy": 2 / 5,
        "val/partial": (0.5 + 1.0 + 0.0 + 0.25) / 4,  # the rows it applies to
        "val/avg@3": 8 / 15,
        "val/maj@3": 3 / 5})  # rows 0, 1 and 2 vote for the right answer
    shards = [Evaluator(collector, rows[r::2], every=1, k=3) for r in (0, 1)]
    totals = sum(s._sums(s.metric_names()) for s in shards)
    for shard in shards:
        shard.reduce = lambda _: totals  # what the all-reduce would return to every rank
        assert shard.run() == pytest.approx(whole, rel=1e-12)
    own = [Evaluator(collector, rows[r::2], every=1, k=3).run() for r in (0, 1)]
    assert (own[0]["val/partial"] + own[1]["val/partial"]) / 2 != pytest.approx(
        whole["val/partial"])
    # a rank with no rows still takes part, and gets the whole set's metrics
    empty = Evaluator(collector, [], every=1, k=3, reduce=lambda _: totals)
    assert empty.run() == pytest.approx(whole, rel=1e-12)
    assert Evaluator(collector, [], every=1, k=3).run() == {}


# ---------------------------------------------------------------------------- kill -9, rerun
def test_rejection_sampling_on_two_ranks_survives_kill_minus_9(tmp_path):
    """A GRPO step (its Trainer starts rank 1), rejection sampling killed mid-way, rerun: the
    rerun resumes straight into rejection sampling (the stage starts rank 1 itself), keeps the
    finished shards, then SFT on its output (a Trainer after the stage's own launch) and eval."""
    command = [sys.executable, "-m", "r1kit", "pipeline=grpo", _rs_stage(24, 2),
               "+pipeline.stages.sft={kind: sft, overrides: {data: {name: stage_output, "
               "stage: rs}}}", "+pipeline.stages.eval={kind: eval}", *BASE, *TWO_RANKS,
               "trainer.max_steps=1", "data.batch_size=2", "algo.group_size=2", "eval.every=0",
               "sampler.max_new_tokens=32", f"run_dir={tmp_path}"]
    env = {**os.environ, **ENV}
    # its own process group: kill -9 takes rank 1 down with rank 0, as a crash of the node would
    log = tmp_path / "killed-run.log"  # a file, not a pipe nobody reads while it runs
    with log.open("w") as handle:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=handle, start_new_session=True)
    shard_dir = tmp_path / "rs" / "shards"
    deadline = time.monotonic() + 300
    while len(list(shard_dir.glob("shard-*.jsonl"))) < 2:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # a shard is finished when its .jsonl exists (its record is written just before it)
    done = [p.name.removesuffix(".jsonl") for p in shard_dir.glob("shard-*.jsonl")]
    assert 2 <= len(done) < 12
    finished = {p.name: p.stat().st_mtime_ns for name in done
                for p in (shard_dir / f"{name}.jsonl", shard_dir / f"{name}.meta.json")}
    assert not (tmp_path / "rs" / "manifest.json").exists()

    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage rl already finished" in result.stdout
    # the shards written before the kill (and their records) were kept, not redone
    assert {name: (shard_dir / name).stat().st_mtime_ns for name in finished} == finished
    records = _records(shard_dir)
    assert len(records) == 12 and all(r["world_size"] == 2 for r in records.values())
    # the shards left were dealt out afresh over both ranks
    redone = [r["rank"] for name, r in records.items() if name not in done]
    assert redone == [i % 2 for i in range(len(redone))]
    dataset = _rows(tmp_path / "rs" / "dataset.jsonl")
    assert [row["prompt"] for row in dataset] == _train_prompts(24)
    assert not list((tmp_path / "rs").rglob("*.tmp"))
    for stage in ("rl", "rs", "sft", "eval"):
        assert (tmp_path / stage / "manifest.json").exists(), stage
