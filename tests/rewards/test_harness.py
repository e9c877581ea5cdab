"""The reward harness: weights, None, failures (raise or skip), time limits, registration."""

import math
import threading
import time
from types import SimpleNamespace

import pytest

from r1kit.config.options import options_class
from r1kit.config.schema import RewardCommon
from r1kit.plugin.manager import BUILTIN_PLUGINS, build_registry, create_plugin_manager
from r1kit.rewards.harness import RewardError, RewardSpec, compute_rewards

COMPLETIONS = ["<think>a</think><answer>1</answer>", "<answer>2</answer>", "three"]
EXAMPLES = [{"prompt": "What is 0+1?", "answer": "1"}, {"prompt": "What is 1+1?", "answer": "2"},
            {"prompt": "Say three"}]


def constant(value):
    def reward(completions, examples, options=None):
        return [value] * len(completions)
    return reward


def by_length(completions, examples, options):
    return [options.scale * len(c) for c in completions]


def answer_or_none(completions, examples, options=None):
    return [1.0 if "answer" in ex else None for ex in examples]


def fails_on_three(completions, examples, options=None):
    if any(c == "three" for c in completions):
        raise ValueError("cannot score three")
    return [1.0] * len(completions)


RELEASE = threading.Event()  # set at teardown, so reward threads left waiting end with the test


@pytest.fixture(autouse=True)
def release_blocked_rewards():
    RELEASE.clear()
    yield
    RELEASE.set()


def hangs_on_three(completions, examples, options=None):
    if "three" in completions:
        RELEASE.wait(timeout=30)
    return [1.0] * len(completions)


def test_weighted_sum_and_parts():
    specs = [RewardSpec("one", constant(1.0), weight=0.5),
             RewardSpec("length", by_length, weight=2.0, options=SimpleNamespace(scale=0.1))]
    scores = compute_rewards(specs, COMPLETIONS, EXAMPLES)
    lengths = [0.1 * len(c) for c in COMPLETIONS]
    assert scores.parts == {"one": [1.0] * 3, "length": pytest.approx(lengths)}
    assert scores.total == pytest.approx([0.5 + 2 * n for n in lengths])
    assert scores.errors == {"one": 0, "length": 0}


def test_none_contributes_nothing_and_no_reward_gives_zero():
    specs = [RewardSpec("acc", answer_or_none, weight=3.0), RewardSpec("never", constant(None))]
    scores = compute_rewards(specs, COMPLETIONS, EXAMPLES)
    assert scores.parts["acc"] == [1.0, 1.0, None]
    assert scores.total == [3.0, 3.0, 0.0]


def test_failure_names_reward_plugin_and_sample():
    specs = [RewardSpec("ok", constant(1.0)), RewardSpec("picky", fails_on_three)]
    with pytest.raises(RewardError) as info:
        compute_rewards(specs, COMPLETIONS, EXAMPLES)
    message = str(info.value)
    assert "reward 'picky'" in message
    assert f"{__name__}.fails_on_three" in message  # the plugin that provided it
    assert "sample 2 (prompt 'Say three', completion 'three')" in message
    assert "ValueError: cannot score three" in message
    assert (info.value.reward, info.value.index) == ("picky", 2)
    assert isinstance(info.value.__cause__, ValueError)


def test_skip_mode_drops_only_failing_samples_and_counts_them():
    specs = [RewardSpec("one", constant(1.0)), RewardSpec("picky", fails_on_three, on_error="skip")]
    scores = compute_rewards(specs, COMPLETIONS, EXAMPLES)
    assert scores.parts["picky"] == [1.0, 1.0, None]  # never a silent 0.0
    assert scores.errors == {"one": 0, "picky": 1}
    assert scores.total == [2.0, 2.0, 1.0]


def test_timeout_raises_naming_the_slow_sample():
    specs = [RewardSpec("slow", hangs_on_three, timeout=0.3)]
    start = time.monotonic()
    with pytest.raises(RewardError, match=r"reward 'slow'.*sample 2 .*0.3 s time limit"):
        compute_rewards(specs, COMPLETIONS, EXAMPLES)
    assert time.monotonic() - start < 3  # the batch, then samples 0, 1 quickly and 2 timing out


def test_timeout_in_skip_mode_skips_the_batch_and_costs_one_time_limit():
    specs = [RewardSpec("one", constant(1.0)),
             RewardSpec("slow", hangs_on_three, timeout=0.3, on_error="skip")]
    start = time.monotonic()
    scores = compute_rewards(specs, COMPLETIONS, EXAMPLES)
    assert time.monotonic() - start < 1.5
    assert scores.parts["slow"] == [None, None, None]
    assert scores.errors == {"one": 0, "slow": 3}
    assert scores.total == [1.0, 1.0, 1.0]


def test_a_timeout_error_raised_by_the_reward_is_a_failure_not_a_time_out():
    def raises_timeout(completions, examples, options=None):
        raise TimeoutError("remote judge timed out")
    with pytest.raises(RewardError, match="TimeoutError: remote judge timed out"):
        compute_rewards([RewardSpec("judge", raises_timeout, timeout=10)], COMPLETIONS, EXAMPLES)


def test_rewards_run_concurrently():
    def sleepy(completions, examples, options=None):
        time.sleep(0.4)
        return [0.0] * len(completions)
    start = time.monotonic()
    compute_rewards([RewardSpec(f"r{i}", sleepy) for i in range(3)], COMPLETIONS, EXAMPLES)
    assert time.monotonic() - start < 1.0  # 1.2 s if they ran one after another


@pytest.mark.parametrize("returned, match", [
    ([1.0, 1.0], "must return a list of 3 numbers or None.*got 2 values"),
    ("abc", "must return a list of 3"),
    ([1.0, "yes", 1.0], "returned 'yes' for sample 1 .*expected a finite number or None"),
    ([1.0, math.nan, 1.0], "returned nan for sample 1"),
])
def test_contract_violations_raise_even_in_skip_mode(returned, match):
    spec = RewardSpec("broken", lambda completions, examples, options: returned, on_error="skip")
    with pytest.raises(RewardError, match=match):
        compute_rewards([spec], COMPLETIONS, EXAMPLES)


def test_numbers_of_any_real_type_are_accepted_as_floats():
    scores = compute_rewards([RewardSpec("ints", constant(1)), RewardSpec("bools", constant(True))],
                             COMPLETIONS, EXAMPLES)
    assert scores.parts == {"ints": [1.0] * 3, "bools": [1.0] * 3}
    assert all(type(v) is float for v in scores.parts["ints"])


def test_bad_specs_and_inputs_are_rejected():
    with pytest.raises(ValueError, match="on_error"):
        RewardSpec("x", constant(1.0), on_error="ignore")
    with pytest.raises(ValueError, match="timeout"):
        RewardSpec("x", constant(1.0), timeout=0)
    with pytest.raises(ValueError, match="unique"):
        compute_rewards([RewardSpec("x", constant(1.0))] * 2, COMPLETIONS, EXAMPLES)
    with pytest.raises(ValueError, match="3 completions but 2 examples"):
        compute_rewards([RewardSpec("x", constant(1.0))], COMPLETIONS, EXAMPLES[:2])


def test_empty_batch():
    scores = compute_rewards([RewardSpec("x", constant(1.0))], [], [])
    assert (scores.parts, scores.total, scores.errors) == ({"x": []}, [], {"x": 0})


MINE = ("r1kit.rewards.accuracy", "r1kit.rewards.format", "r1kit.rewards.language")


def test_builtin_rewards_register_through_the_plugin_manager_and_run_in_the_harness():
    # Only these three modules: the other built-in plugins are not this test's business.
    pm = create_plugin_manager(autoload=False,
                               blocked=[name for name in BUILTIN_PLUGINS if name not in MINE])
    registry = build_registry(pm)
    assert registry.names("reward") == ["accuracy", "format", "language"]
    entry = registry.get("reward", "accuracy")
    assert entry.plugin == "r1kit.rewards.accuracy"
    assert entry.schema.__name__ == "AccuracyOptions"

    specs = [RewardSpec(name, registry.get("reward", name).obj, weight=weight,
                        options=options_class(RewardCommon, registry.get("reward", name).schema)())
             for name, weight in [("accuracy", 1.0), ("format", 0.5), ("language", 0.1)]]
    completions = ["<think>One plus one.</think><answer>2</answer>", "<answer>3</answer>"]
    examples = [{"prompt": "1+1?", "answer": "2"}, {"prompt": "1+1?", "answer": "2"}]
    scores = compute_rewards(specs, completions, examples)
    assert scores.parts == {"accuracy": [1.0, 0.0], "format": [1.0, 0.0], "language": [1.0, None]}
    assert scores.total == pytest.approx([1.6, 0.0])


def test_start_rewards_returns_while_the_rewards_run():
    """The caller works while rewards are scored: a reward that waits for the caller's signal
    finishes only because ``start_rewards`` returned first."""
    from r1kit.rewards.harness import start_rewards

    caller_ran = threading.Event()

    def waits_for_caller(completions, examples, options=None):
        assert caller_ran.wait(timeout=10), "start_rewards blocked until the reward finished"
        return [1.0] * len(completions)

    pending = start_rewards([RewardSpec("waits", waits_for_caller, weight=2.0, timeout=20)],
                            ["a", "b"], [{}, {}])
    caller_ran.set()
    scores = pending.result()
    assert scores.total == [2.0, 2.0] and scores.parts == {"waits": [1.0, 1.0]}
    with pytest.raises(ValueError, match="2 completions but 1 examples"):
        start_rewards([], ["a", "b"], [{}])  # bad input fails before anything runs
