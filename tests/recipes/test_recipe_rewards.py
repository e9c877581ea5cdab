"""The shipped recipes judge completions in the context of their own templates: through the
trainer's reward path (``RolloutCollector``), through the rejection-sampling filters and
through ``python -m r1kit score``, on local data shaped like MATH and GSM8K."""

import json

import pytest

from r1kit.config.validate import validate
from r1kit.models.loading import model_source
from r1kit.stages.parts import build_parts
from tests.conftest import compose_config, run_cli
from tests.recipes.conftest import SHRINK, data_overrides, oracle_dist
from tests.recipes.oracle_sampler import responses

CASES = [("r1_zero", "math"), ("r1_zero", "gsm8k"), ("r1_full", "math"), ("r1_full", "gsm8k")]


def _stage_parts(experiment, preset, shaped, registry, tmp_path, kind):
    cfg = compose_config([f"+experiment={experiment}", *SHRINK,
                          *data_overrides(preset, shaped[preset])], run_dir=str(tmp_path))
    for stage in validate(cfg, registry).stages:
        if stage.kind == kind:
            scfg = stage.config
            return scfg, build_parts(scfg, registry, model_source(scfg.model, tmp_path))
    raise AssertionError(f"{experiment} has no {kind} stage")


@pytest.mark.parametrize("experiment,preset", CASES)
def test_well_formed_correct_completion_scores_format_and_accuracy_1(
        experiment, preset, shaped, with_oracle, tmp_path):
    scfg, parts = _stage_parts(experiment, preset, shaped, with_oracle, tmp_path, "grpo")
    assert scfg.data.template.endswith("Assistant: <think>")  # the shipped R1 template
    rollout = parts.collector.sample(parts.train_rows[:2], 4)
    fmt, acc = rollout.reward_parts["format"].tolist(), rollout.reward_parts["accuracy"].tolist()
    # per group: correct + well formed, wrong answer, doubled <think>, truncated
    assert fmt == [1.0, 1.0, 0.0, 0.0] * 2
    assert acc == [1.0, 0.0, 1.0, 0.0] * 2
    assert rollout.completions[0].startswith(" We add")  # continues the prompt's <think>
    if "language" in rollout.reward_parts:
        assert rollout.reward_parts["language"][0] == 1.0


@pytest.mark.parametrize("preset", ["math", "gsm8k"])
def test_rejection_sampling_filters_keep_the_correct_readable_samples(
        preset, shaped, with_oracle, tmp_path):
    _, parts = _stage_parts("r1_full", preset, shaped, with_oracle, tmp_path,
                            "rejection_sampling")
    assert [f.name for f in parts.collector.filters] == [
        "correct", "well_formatted", "language_consistent", "length", "dedupe",
        "max_per_prompt"]  # the shipped filters, all on
    kept = parts.collector.apply_filters(parts.collector.sample(parts.train_rows[:3], 8))
    # of 8 samples per prompt, 2 are correct and well formed, and identical: dedupe keeps one
    assert len(kept) == 3
    assert all(c.startswith(" We add") and "</think>" in c for c in kept.completions)


@pytest.mark.parametrize("preset", ["math", "gsm8k"])
def test_score_cli_judges_completions_with_the_presets_template(preset, shaped, tmp_path):
    rows = [json.loads(line) for line in (shaped[preset] / "test.jsonl").open()][:2]
    field = {"math": ("problem", "solution"), "gsm8k": ("question", "answer")}[preset]
    scored_in = tmp_path / "in.jsonl"
    with scored_in.open("w") as handle:
        for row in rows:
            prompt = row[field[0]]
            gold = row[field[1]].split("####")[-1].strip() if preset == "gsm8k" else row[field[1]]
            # what the model saw: the R1 template ends with <think>, so the completions do not
            rendered = f"User: {prompt}. Assistant: <think>"
            for completion, _ in responses(rendered)[:3]:
                handle.write(json.dumps({"prompt": prompt, "answer": gold,
                                         "completion": completion}) + "\n")
    out = tmp_path / "out.jsonl"
    result = run_cli("score", "reward=[accuracy,format,language]", f"+data={preset}",
                     f"input={scored_in}", f"output={out}", timeout=300,
                     env=oracle_dist(tmp_path / "dist"))
    assert result.returncode == 0, result.stderr[-2000:]
    scored = [json.loads(line) for line in out.open()]
    assert [(r["rewards"]["format"], r["rewards"]["accuracy"]) for r in scored] == \
        [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0)] * 2
    assert all(r["rewards"]["language"] == 1.0 for r in scored)
