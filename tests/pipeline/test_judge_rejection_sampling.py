"""Rejection sampling with the judge (R1's generative reward model), shrunk: verifiable prompts
are kept by the accuracy rule, the others by a judge served over HTTP (the local stub), and the
judge's calls, cache hits and failures are in the stage's metrics; a rerun pays only for what
failed."""

import json

from r1kit.config.validate import validate
from r1kit.pipeline.runner import run_pipeline
from r1kit.plugin.manager import get_registry
from r1kit.rewards.judge.reward import close_backends
from tests.conftest import SHRINK, compose_config
from tests.rewards.judge.judge_stub import StubJudgeServer

SAMPLES = 2


def _rows(tmp_path):
    rows = [{"prompt": f"{i}+1=", "answer": str(i + 1)} for i in range(2)]  # verifiable
    rows += [{"prompt": f"[yes] Greet {i}.", "reference": "Hello!", "task": "general"}
             for i in range(3)]
    rows += [{"prompt": "[no] Greet.", "reference": "Hello!", "task": "general"},
             {"prompt": "[broken] Greet.", "reference": "Hello!", "task": "general"},
             {"prompt": "[ramble] Greet.", "reference": "Hello!", "task": "general"}]
    path, val = tmp_path / "mixed.jsonl", tmp_path / "val.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    val.write_text(json.dumps(rows[0]) + "\n")
    return path, val, rows


def _cfg(run_dir, data, val, url):
    judge = (f"{{backend: openai, model: stub-judge, base_url: '{url}', only_unverifiable: true,"
             " reasoning: keep, retries: 1, backoff: 0.01, request_timeout: 5}")
    return compose_config([
        *SHRINK, "pipeline=sft", "pipeline.stages.sft.kind=rejection_sampling",
        "data=jsonl", f"data.path={data}", f"+data.val_path={val}",
        "reward=[accuracy,judge]", f"reward.judge={judge}",
        # the tiny random model is never right by rule: only judged samples can be kept
        "+pipeline.stages.sft.overrides.filter={correct: {also: [judge]}}",
        f"rejection.samples_per_prompt={SAMPLES}", "rejection.shard_size=4"],
        run_dir=str(run_dir))


def test_judged_correct_unverifiable_samples_are_kept_and_counted(tmp_path):
    data, val, rows = _rows(tmp_path)
    run_dir = tmp_path / "run"
    try:
        with StubJudgeServer() as stub:
            outputs = run_pipeline(validate(_cfg(run_dir, data, val, stub.url),
                                            get_registry()))["sft"]
            kept = [json.loads(line) for line in open(outputs["dataset"])]
            metrics = outputs["metrics"]
            judged = [r for r in rows if "reference" in r]
            # every sample of a judged prompt is asked once (distinct completions; the broken
            # prompt's requests fail, the rambling one's replies are unparseable)
            asked = len({r["prompt"] for r in stub.requests})
            assert metrics["judge/calls"] == asked <= len(judged) * SAMPLES
            assert metrics["judge/cache_hits"] == 0
            # distinct requests of the broken prompt (each tried twice: retries=1)
            broken = sum("[broken]" in r["prompt"] for r in stub.requests) // 2
            assert broken >= 1
            # failures count samples not scored: every sample of the broken prompt and of the
            # rambling one
            assert metrics["judge/failures/http_error"] == SAMPLES
            assert metrics["judge/failures/unparseable"] == SAMPLES
            assert metrics["judge/failures"] == 2 * SAMPLES
            # the SFT set: judged-correct general samples only, with their judge score
            assert {r["prompt"] for r in kept} == {f"[yes] Greet {i}." for i in range(3)}
            assert all(r["rewards"]["judge"] == 1.0 and r["rewards"]["accuracy"] is None
                       for r in kept)
            assert all(r["solution"] for r in kept)

            # rerun the stage from scratch: the same samples (seeded shards), all but the
            # failed requests answered by the cache in the run directory
            for shard in (run_dir / "sft" / "shards").glob("shard-*"):
                shard.unlink()
            (run_dir / "sft" / "manifest.json").unlink()
            stub.requests.clear()
            again = run_pipeline(validate(_cfg(run_dir, data, val, stub.url),
                                          get_registry()))["sft"]["metrics"]
            assert again["judge/calls"] == broken
            assert again["judge/cache_hits"] == asked - broken
            assert {r["prompt"] for r in stub.requests} <= {
                r["prompt"] for r in stub.requests if "[broken]" in r["prompt"]}
    finally:
        close_backends()


def test_shrunk_r1_full_with_the_served_judge_option(tmp_path):
    """``+rs_judge=served`` on r1_full: cold start -> reasoning RL -> rejection sampling with
    the judge (the later stages dropped to keep it short)."""
    data, val, rows = _rows(tmp_path)
    for row in rows:  # the cold-start stage fine-tunes on worked solutions
        row["solution"] = f"<think>ok</think><answer>{row.get('answer', 'Hello!')}</answer>"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rs = "pipeline.stages.rejection_sampling.overrides"
    try:
        with StubJudgeServer() as stub:
            cfg = compose_config([
                "+experiment=r1_full", "+rs_judge=served", *SHRINK, "data=jsonl",
                f"data.path={data}", f"+data.val_path={val}", "algo.group_size=2",
                "data.batch_size=2", "sampler.max_new_tokens=12",
                *[f"~pipeline.stages.{s}" for s in ("sft", "rl_all", "eval")],
                *[f"pipeline.stages.{s}.overrides.trainer.max_steps=1"
                  for s in ("cold_start", "reasoning_rl")],
                f"{rs}.rejection.samples_per_prompt={SAMPLES}",
                # the tiny model writes no well-formed English: keep the judge's verdict alone
                f"~{rs}.filter.well_formatted", f"~{rs}.filter.language_consistent",
                f"{rs}.reward.judge.base_url={stub.url}", f"{rs}.reward.judge.model=stub",
                f"+{rs}.reward.judge.reasoning=keep"], run_dir=str(tmp_path / "run"))
            plan = validate(cfg, get_registry())
            assert "judge" not in plan.stage("reasoning_rl").config.reward  # RS only
            outputs = run_pipeline(plan)["rejection_sampling"]
        kept = [json.loads(line) for line in open(outputs["dataset"])]
        general = {r["prompt"] for r in kept if r.get("task") == "general"}
        assert general == {f"[yes] Greet {i}." for i in range(3)}  # max_per_prompt n=2
        metrics = outputs["metrics"]
        assert metrics["judge/calls"] >= 3 and metrics["judge/failures"] >= 2
        assert "judge/cache_hits" in metrics
    finally:
        close_backends()
