"""The judge's parts on their own: the prompt it reads, how its reply is read, its cache, and
the config checks that fail before anything loads."""

import pytest

from r1kit.api import ConfigError, plugin_options
from r1kit.rewards.judge.cache import ReplyCache, cache_key
from r1kit.rewards.judge.prompt import is_verifiable, judge_conversation, reasoning_stripped
from r1kit.rewards.judge.verdict import parse_reply


def _options(**values):
    return plugin_options("reward", "judge", **{"model": "m", "cache": None, **values})


# -- prompt -----------------------------------------------------------------------------------


def test_reasoning_is_stripped_and_an_unclosed_one_leaves_no_answer():
    assert reasoning_stripped("<think>a</think>x<think>b</think> 42 ") == "42"
    assert reasoning_stripped("plain 42") == "plain 42"
    assert reasoning_stripped("<think>still thinking") is None


def test_conversation_uses_the_whole_response_and_the_first_reference():
    row = {"prompt": " Capital? ", "solution": "long", "answer": "Paris",
           "rendered_prompt": "User: Capital? Assistant: <think>"}
    options = _options(template="{question}|{reference}|{response}", system="Be strict.")
    # the prompt opened <think>: the completion closes it, the answer follows
    assert judge_conversation(row, "hmm</think>Paris", options) == [
        {"role": "system", "content": "Be strict."},
        {"role": "user", "content": "Capital?|Paris|Paris"}]
    kept = judge_conversation(row, "hmm</think>Paris", _options(
        template="{response}", reasoning="keep"))
    assert kept[-1]["content"] == "<think>hmm</think>Paris"
    assert judge_conversation(row, "still thinking", options) == "no_response"
    assert judge_conversation({"prompt": "q"}, "x", options) == "no_reference"
    assert judge_conversation({"prompt": "q"}, "x", _options(template="{response}")) != \
        "no_reference"  # a template without {reference} needs none


def test_verifiable_rows_are_those_with_an_answer():
    assert is_verifiable({"answer": "4"}) and not is_verifiable({"answer": " "})
    assert not is_verifiable({"reference": "a poem"})


# -- verdict ----------------------------------------------------------------------------------


@pytest.mark.parametrize("reply, score", [
    ("Verdict: CORRECT", 1.0), ("verdict is...\nVerdict: INCORRECT", 0.0),
    ("Verdict: CORRECT ... on reflection Verdict: INCORRECT", 0.0),  # the last one decides
    ("Verdict: correct", None),  # strict: labels are matched exactly
    ("Verdict: MAYBE", None), ("CORRECT", None), ("", None)])
def test_verdicts_are_read_strictly(reply, score):
    assert parse_reply(reply, _options()) == score


@pytest.mark.parametrize("reply, score", [
    ("Score: 0.75", 0.75), ("Score: 1", 1.0), ("Score: 0.2 then Score: .5", 0.5),
    ("Score: 1.5", None), ("Score: -0.1", None), ("no score", None)])
def test_scores_must_be_in_the_unit_interval(reply, score):
    assert parse_reply(reply, _options(parse="score")) == score


def test_custom_pattern_and_labels():
    options = _options(pattern=r"\[\[(\w)\]\]", labels={"A": 1.0, "B": 0.5, "C": 0.0})
    assert parse_reply("I pick [[B]]", options) == 0.5
    assert parse_reply("I pick [[D]]", options) is None


# -- cache ------------------------------------------------------------------------------------


def test_cache_keys_by_identity_and_conversation_and_keeps_the_first_reply(tmp_path):
    cache = ReplyCache(tmp_path / "sub" / "c.sqlite")
    chat = [{"role": "user", "content": "q"}]
    key = cache_key("judge-a", chat)
    assert key != cache_key("judge-b", chat)
    assert key != cache_key("judge-a", [{"role": "user", "content": "q2"}])
    cache.put_many([(key, "judge-a", chat, "Verdict: CORRECT")])
    cache.put_many([(key, "judge-a", chat, "Verdict: INCORRECT")])  # ignored: already paid
    assert ReplyCache(tmp_path / "sub" / "c.sqlite").get_many([key, "other"]) == {
        key: "Verdict: CORRECT"}
    assert len(cache) == 1


# -- config checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("values, key", [
    ({"template": "{question} only"}, "reward.judge.template"),
    ({"template": "{response} {oops}"}, "reward.judge.template"),
    ({"pattern": "Verdict: (A|B"}, "reward.judge.pattern"),
    ({"pattern": "no group"}, "reward.judge.pattern"),
    ({"labels": {"CORRECT": 2}}, "reward.judge.labels.CORRECT"),
    ({"reasoning": "hide"}, "reward.judge.reasoning"),
    ({"on_unparseable": "guess"}, "reward.judge.on_unparseable"),
    ({"concurrency": 0}, "reward.judge.concurrency"),
    ({"retries": -1}, "reward.judge.retries"),
    ({"backend": "openai"}, "reward.judge.base_url"),
    ({"backend": "openai", "base_url": "localhost:8000"}, "reward.judge.base_url"),
    ({"backend": "opnai"}, "reward.judge.backend"),
    ({"backend_options": {"x": 1}}, "reward.judge.backend_options"),
    ({"api_key_env": "R1KIT_TEST_UNSET_KEY"}, "reward.judge.api_key_env"),
])
def test_bad_options_name_the_key(values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _options(**values)
