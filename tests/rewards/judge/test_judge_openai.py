"""``reward.judge.backend=openai`` against a local server that misbehaves on purpose: the batch
keeps going, each failure is counted by cause and logged, nothing is scored silently, and the
reply cache makes a second run free."""

import logging
import time

import pytest

from r1kit.api import plugin_options
from r1kit.rewards.harness import compute_rewards
from r1kit.rewards.judge import counters
from r1kit.rewards.judge.reward import close_backends, judge_reward
from r1kit.rewards.specs import reward_specs
from tests.rewards.judge.judge_stub import StubJudgeServer


@pytest.fixture
def stub():
    with StubJudgeServer(slow_seconds=1.0) as server:
        yield server
    close_backends()


def _options(stub, tmp_path, **extra):
    values = dict(backend="openai", model="stub-judge", base_url=stub.url, request_timeout=0.3,
                  retries=1, backoff=0.01, concurrency=4, cache=str(tmp_path / "cache.sqlite"))
    return plugin_options("reward", "judge", **{**values, **extra})


def _row(question, reference="Paris"):
    return {"prompt": question, "reference": reference, "rendered_prompt": question}


def _counted(fn):
    before = counters.counters()
    result = fn()
    return result, counters.judge_counts(before, counters.counters())


CASES = [  # (question, completion, score)
    ("Capital of France?", "<think>it is Paris</think>Paris", 1.0),
    ("Capital of France?", "<think>Paris? no</think>Lyon", 0.0),  # reasoning stripped
    ("[flaky] Capital?", "Paris", 1.0),  # a 500, then fine on the retry
    ("[slow] Capital?", "Paris", None),
    ("[broken] Capital?", "Paris", None),
    ("[garbled] Capital?", "Paris", None),
    ("[drop] Capital?", "Paris", None),
    ("[ramble] Capital?", "Paris", None),
]


def test_misbehaving_server_is_counted_and_nothing_is_scored_silently(stub, tmp_path, caplog):
    rows = [_row(q) for q, _, _ in CASES]
    completions = [c for _, c, _ in CASES]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="r1kit.rewards.judge"):
        scores, counts = _counted(lambda: judge_reward(completions, rows, _options(stub, tmp_path)))
    # bounded: the slow request costs (retries + 1) timeouts, concurrently with the rest
    assert time.monotonic() - started < 5
    assert scores == [score for _, _, score in CASES]
    assert counts["judge/calls"] == len(CASES) and counts["judge/cache_hits"] == 0
    assert counts["judge/failures"] == 5
    for cause in ("timeout", "http_error", "malformed_reply", "connection_error", "unparseable"):
        assert counts[f"judge/failures/{cause}"] == 1, cause
    assert counts["judge/retries"] == 5  # flaky, slow, broken, garbled, drop: once each
    # what reached the server: the reasoning stripped, the reference and question in place
    prompts = [r["prompt"] for r in stub.requests]
    assert not any("it is Paris" in p or "Paris? no" in p for p in prompts)
    logged = caplog.text
    for cause in ("timeout", "http_error", "malformed_reply", "connection_error"):
        assert f"failed ({cause}" in logged, cause
    assert "does not match" in logged and "Hard to say" in logged

    # a second run pays only for what failed: good replies (and the rambling one, a reply
    # the parser rejects) come from the cache
    stub.requests.clear()
    again, counts = _counted(lambda: judge_reward(completions, rows, _options(stub, tmp_path)))
    assert again == scores
    assert counts["judge/cache_hits"] == 4 and counts["judge/calls"] == 4
    assert len({r["prompt"] for r in stub.requests}) == 4


def test_zero_on_unparseable_and_raise_on_failure(stub, tmp_path):
    rows, completion = [_row("[ramble] Capital?")], ["Paris"]
    assert judge_reward(completion, rows, _options(stub, tmp_path, on_unparseable="zero")) == [0.0]
    options = _options(stub, tmp_path, on_failure="raise", retries=0)
    with pytest.raises(RuntimeError, match=r"failed \(http_error: HTTP 500"):
        judge_reward(["Paris"], [_row("[broken] Capital?")], options)


def test_refused_request_is_not_retried_and_the_key_is_sent(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("STUB_JUDGE_KEY", "s3cret")
    options = _options(stub, tmp_path, api_key_env="STUB_JUDGE_KEY", retries=3)
    scores, counts = _counted(lambda: judge_reward(
        ["Paris", "Paris"], [_row("[deny] Capital?"), _row("Capital?")], options))
    assert scores == [None, 1.0]
    assert counts["judge/failures/http_error"] == 1 and counts["judge/retries"] == 0
    assert {r["authorization"] for r in stub.requests} == {"Bearer s3cret"}
    assert stub.requests[0]["body"]["model"] == "stub-judge"


def test_cache_second_run_makes_no_call_and_a_new_judge_does(stub, tmp_path):
    rows = [_row(f"Capital, take {i}?") for i in range(6)]
    completions = ["Paris", "Rome"] * 3
    first, counts = _counted(lambda: judge_reward(completions, rows, _options(stub, tmp_path)))
    assert first == [1.0, 0.0] * 3 and counts["judge/calls"] == 6
    stub.requests.clear()
    second, counts = _counted(lambda: judge_reward(completions, rows, _options(stub, tmp_path)))
    assert second == first and counts["judge/calls"] == 0 and counts["judge/cache_hits"] == 6
    assert stub.requests == []
    # another model (another judge identity) is asked again; identical prompts are asked once
    third, counts = _counted(lambda: judge_reward(
        completions + completions, rows + rows, _options(stub, tmp_path, model="other")))
    assert third == first + first and counts["judge/calls"] == 6
    assert counts["judge/cache_hits"] == 0


def test_routing_only_unverifiable_rows_through_the_harness(stub, tmp_path):
    rewards = {"accuracy": plugin_options("reward", "accuracy"),
               "judge": _options(stub, tmp_path, only_unverifiable=True)}
    rows = [{"prompt": "2+2?", "answer": "4", "rendered_prompt": "2+2?"},
            _row("[yes] Write a haiku.", reference="any haiku"),
            _row("[no] Write a haiku.", reference="any haiku"),
            {"prompt": "Say hi.", "rendered_prompt": "Say hi."}]  # no reference: not judged
    from r1kit.plugin.manager import get_registry
    scores = compute_rewards(reward_specs(rewards, get_registry()),
                             ["<answer>4</answer>", "an old pond", "a frog", "hi"], rows)
    assert scores.parts["accuracy"] == [1.0, None, None, None]
    assert scores.parts["judge"] == [None, 1.0, 0.0, None]
    assert len(stub.requests) == 2


def test_a_training_steps_rollout_stats_count_the_judge(stub, tmp_path):
    """The GRPO path: ``RolloutCollector.collect``'s stats carry the judge's counts, which sum
    over ranks like the other counters."""
    from r1kit.config.schema import ModelConfig
    from r1kit.models.tiny import build_tokenizer
    from r1kit.plugin.manager import get_registry
    from r1kit.rollout.collector import RolloutCollector
    from r1kit.samplers.base import Generation
    from r1kit.stages.module_common import SUMMED

    tokenizer = build_tokenizer()

    class Repeats:  # every sample of a prompt says "Paris"
        def generate(self, prompt_ids, num_samples, *, greedy=False):
            ids = [tokenizer.encode("Paris") for _ in range(len(prompt_ids) * num_samples)]
            return Generation(completion_ids=ids, truncated=[False] * len(ids), logprobs=None)

    class Stream:
        def take(self, n):
            return [_row("Capital of France?"), _row("[broken] Capital?")][:n]

    specs = reward_specs({"judge": _options(stub, tmp_path, retries=0)}, get_registry())
    collector = RolloutCollector(sampler=Repeats(), tokenizer=tokenizer, model_cfg=ModelConfig(),
                                 template="{prompt}", rewards=specs, filters=[])
    rollout, stats = collector.collect(Stream(), num_prompts=2, group_size=3,
                                       max_refill_rounds=0)
    # identical samples of a prompt are asked once; failures count the samples not scored
    assert stats["judge/calls"] == 2 and stats["judge/failures/http_error"] == 3
    assert rollout.reward_parts["judge"][:3].tolist() == [1.0] * 3
    assert rollout.reward_parts["judge"][3:].isnan().all()  # failed: not judged
    assert all(key.startswith(SUMMED) for key in stats if key.startswith("judge/"))
