"""The accuracy reward's verdict counters are logged per step: how many of the step's samples
(every refill round) timed out (``reward_timeouts/accuracy``), took the fast path or went to
math-verify."""

import csv
from types import SimpleNamespace

import pytest

from r1kit.api import plugin_options
from r1kit.plugin import manager as pluginmanager
from r1kit.config.validate import validate
from r1kit.data.stream import PromptStream
from r1kit.models.tiny import build_tokenizer
from r1kit.rewards.accuracy import accuracy_reward
from r1kit.rewards.harness import RewardSpec
from r1kit.stages.module_common import SUMMED
from r1kit.rollout.collector import (ACCURACY_COUNTER_METRICS, FilterStep, RolloutCollector,
                                     accuracy_counts)
from tests.conftest import SHRINK, compose_config
from tests.trainers import scripted_sampler

ROWS = [{"prompt": f"{a}+{a}", "answer": str(2 * a)} for a in range(10, 30)]
TIMEOUT = 0.5  # s per math-verify check: the power tower never finishes


def _collector(rewards, filters=()):
    tokenizer = build_tokenizer()
    return RolloutCollector(sampler=scripted_sampler.ScriptedSampler(None, tokenizer),
                            tokenizer=tokenizer, model_cfg=SimpleNamespace(use_chat_template=False),
                            template="{prompt}=", rewards=rewards, filters=list(filters))


ACCURACY = RewardSpec("accuracy", accuracy_reward,
                      options=plugin_options("reward", "accuracy", sample_timeout=TIMEOUT))


def test_counts_are_the_difference_of_two_readings():
    before = {"fast_path": 5, "timeouts": 1}
    after = {"fast_path": 9, "timeouts": 3, "math_verify": 2}
    assert accuracy_counts(before, after) == {"reward_timeouts/accuracy": 2.0,
                                              "reward_fast_path/accuracy": 4.0,
                                              "reward_math_verify/accuracy": 2.0}
    # counts of different ranks add up
    assert all(metric.startswith(SUMMED) for metric in ACCURACY_COUNTER_METRICS.values())


def test_a_step_counts_its_samples_timeouts_in_every_refill_round():
    # 2 groups of 4 per round; a filter that keeps nothing makes the collector sample again
    drop_all = FilterStep("drop_all", lambda rollout, options: rollout.select([]), None)
    collector = _collector([ACCURACY], [drop_all])
    rollout, stats = collector.collect(PromptStream(ROWS, seed=0), 2, 4, max_refill_rounds=1)
    assert rollout is None and stats["rollout/refill_rounds"] == 1
    # each round: one power tower per group (timed out), three plain numbers (fast path)
    assert stats["reward_timeouts/accuracy"] == 2 * 2
    assert stats["reward_fast_path/accuracy"] == 2 * 2 * 3
    assert stats["reward_math_verify/accuracy"] == 0


def test_no_counts_without_the_accuracy_reward():
    format_only = RewardSpec("format", lambda completions, examples, options: [0.0] * len(completions))
    _, stats = _collector([format_only]).collect(PromptStream(ROWS, seed=0), 2, 4, 0)
    assert not any(key.startswith("reward_timeouts/") for key in stats)


@pytest.fixture
def with_scripted_sampler():
    registry = pluginmanager.install(extra_plugins=(scripted_sampler,))
    yield registry
    pluginmanager.reset()


def test_a_grpo_run_logs_each_steps_timeouts(tmp_path, with_scripted_sampler):
    from r1kit.pipeline.runner import run_pipeline

    cfg = compose_config([*SHRINK, "pipeline=grpo", "sampler=scripted", "reward=[accuracy]",
                          f"reward.accuracy.sample_timeout={TIMEOUT}", "trainer.max_steps=2",
                          "data.batch_size=2", "algo.group_size=4"], run_dir=str(tmp_path))
    run_pipeline(validate(cfg, with_scripted_sampler))
    with (tmp_path / "rl" / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("reward/mean")]
    assert [float(r["reward_timeouts/accuracy"]) for r in rows] == [2.0, 2.0]
    assert [float(r["reward_fast_path/accuracy"]) for r in rows] == [6.0, 6.0]
    assert [float(r["reward_math_verify/accuracy"]) for r in rows] == [0.0, 0.0]
