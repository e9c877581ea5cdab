"""``reward.judge.backend=hf``: a tiny local causal LM as the judge. The verdicts and batching
are checked on a scripted ``generate`` (a random tiny model says nothing parseable); one real
call checks the model's own replies flow through (counted as unparseable, not scored)."""

import pytest
import torch

from r1kit.api import plugin_options
from r1kit.models.tiny import ensure_tiny_model
from r1kit.rewards.judge import counters
from r1kit.rewards.judge.reward import close_backends, get_backend, judge_reward

TEMPLATE = "Q:{question} R:{reference} A:{response} ->"


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    return ensure_tiny_model(tmp_path_factory.mktemp("judge"), seed=0, hidden_size=64,
                             num_layers=1, num_heads=2, intermediate_size=128,
                             max_position_embeddings=256)


@pytest.fixture(autouse=True)
def fresh_backends():
    yield
    close_backends()


def _options(judge_dir, tmp_path, **extra):
    return plugin_options("reward", "judge", **{
        "backend": "hf", "model": str(judge_dir), "template": TEMPLATE, "max_new_tokens": 8,
        "cache": str(tmp_path / "cache.sqlite"), **extra})


ROWS = [{"prompt": f"q{i}", "reference": "7", "rendered_prompt": f"q{i}"} for i in range(5)]
COMPLETIONS = ["<think>3+4</think>7", "8", "it is 7", "<think>7?</think>6", "7"]


def test_verdicts_and_batches_on_a_scripted_generate(judge_dir, tmp_path, monkeypatch):
    options = _options(judge_dir, tmp_path, batch_size=2)
    judge = get_backend(options)
    tokenizer, batches = judge.tokenizer, []

    def scripted_generate(input_ids, attention_mask, max_new_tokens, **kwargs):
        batches.append(len(input_ids))
        # left padding: every prompt ends at the last column, where generation continues
        assert bool(attention_mask[:, -1].all())
        replies = []
        for ids in input_ids:
            prompt = tokenizer.decode(ids, skip_special_tokens=True)
            verdict = "CORRECT" if prompt.split("A:")[1].startswith("7") else "INCORRECT"
            replies.append(tokenizer.encode(f" Verdict: {verdict}"))
        width = max(map(len, replies))
        new = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in replies])
        return torch.cat([input_ids, new], dim=1)

    monkeypatch.setattr(judge.model, "generate", scripted_generate)
    before = counters.counters()
    scores = judge_reward(COMPLETIONS, ROWS, options)
    # the response read is the one after </think> (reasoning stripped): "7", "8", "it is 7"...
    assert scores == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert batches == [2, 2, 1]
    counts = counters.judge_counts(before, counters.counters())
    assert counts["judge/calls"] == 5 and counts["judge/failures"] == 0
    # keeping the reasoning changes what the judge reads (so the cache key, too)
    kept = judge_reward(COMPLETIONS[:1], ROWS[:1], _options(judge_dir, tmp_path, batch_size=2,
                                                            reasoning="keep"))
    assert kept == [0.0]  # "<think>3+4..." does not start with 7


def test_a_real_tiny_model_call(judge_dir, tmp_path):
    options = _options(judge_dir, tmp_path, batch_size=4, temperature=0.8, seed=3)
    rng = torch.get_rng_state()
    before = counters.counters()
    scores = judge_reward(COMPLETIONS, ROWS, options)
    counts = counters.judge_counts(before, counters.counters())
    assert torch.equal(torch.get_rng_state(), rng)  # the trainer's RNG is left alone
    # a random model writes no verdict: every reply is counted, none is scored
    assert scores == [None] * 5
    assert counts["judge/calls"] == 5 and counts["judge/failures/unparseable"] == 5
    ask = [[{"role": "user", "content": "Q:q0 ->"}], [{"role": "user", "content": "Q:q1 ->"}]]
    replies = get_backend(options).complete(ask)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    assert get_backend(options).complete(ask) == replies  # seeded: the same call, the same replies
