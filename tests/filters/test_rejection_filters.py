import pytest

from r1kit.config.schema import ConfigError
from r1kit.filters.rejection import (LengthOptions, MaxPerPromptOptions, correct, dedupe,
                                     language_consistent, length, max_per_prompt, well_formatted)
from r1kit.plugin.manager import BUILTIN_PLUGINS, build_registry, create_plugin_manager
from r1kit.api import plugin_options

NAN = float("nan")


@pytest.fixture
def scored(make_rollout):
    return make_rollout(
        ["a", "b", "c", "d", "e"], [0, 0, 1, 1, 1],
        reward_parts={"accuracy": [1.0, 0.0, NAN, 1.0, 0.5],
                      "format": [1.0, 1.0, 0.0, 1.0, 0.0],
                      "language": [0.99, 0.5, 0.95, 0.949, NAN]})


def test_correct(scored):
    assert correct(scored, plugin_options("filter", "correct")).completions == ["a", "d"]
    assert correct(scored,
                   plugin_options("filter", "correct", threshold=0.5)).completions == ["a", "d", "e"]
    assert correct(scored,
                   plugin_options("filter", "correct", keep_not_applicable=True)).completions == ["a", "c", "d"]
    kept = correct(scored, plugin_options("filter", "correct"))
    assert kept.group_ids.tolist() == [0, 1]
    assert kept.reward_parts["format"].tolist() == [1.0, 1.0]


def test_well_formatted(scored):
    assert well_formatted(scored,
                          plugin_options("filter", "well_formatted")).completions == ["a", "b", "d"]


def test_language_consistent(scored):
    assert language_consistent(scored,
                               plugin_options("filter", "language_consistent")).completions == ["a", "c"]
    assert language_consistent(scored,
                               plugin_options("filter", "language_consistent", keep_not_applicable=True)).completions == ["a", "c", "e"]


def test_filters_chain(scored):
    out = language_consistent(well_formatted(correct(scored,
                                                     plugin_options("filter", "correct")), plugin_options("filter", "well_formatted")), plugin_options("filter", "language_consistent"))
    assert out.completions == ["a"]


def test_missing_reward_names_it(make_rollout):
    r = make_rollout(["a"], [0], reward_parts={"format": [1.0]})
    with pytest.raises(ValueError, match=r"needs the reward 'accuracy'.*rewards computed: format"):
        correct(r, plugin_options("filter", "correct"))
    with pytest.raises(ValueError, match="needs the reward 'language'"):
        language_consistent(r, plugin_options("filter", "language_consistent"))
    with pytest.raises(ValueError, match="needs the reward 'judge'"):
        correct(r, plugin_options("filter", "correct", reward="judge"))


def test_length(make_rollout):
    r = make_rollout(["a", "b", "c", "d"], [0, 0, 0, 0],
                     completion_ids=[[1], [1, 2], [1, 2, 3, 4], [1] * 5])
    assert length(r,
                  plugin_options("filter", "length", min_tokens=2, max_tokens=4)).completions == ["b", "c"]
    assert length(r, plugin_options("filter", "length", min_tokens=4)).completions == ["c", "d"]
    with pytest.raises(ConfigError, match="filter.length.max_tokens"):
        LengthOptions(min_tokens=5, max_tokens=2)


def test_dedupe_within_group_after_whitespace_normalisation(make_rollout):
    r = make_rollout(["x  = 1\nso 2", " x = 1 so 2 ", "x = 1 so 3", "x = 1 so 2", "x=1 so 2"],
                     [0, 0, 0, 1, 1])
    # rows 0 and 1 differ only in spacing: one goes; row 3 is in another group: kept;
    # row 4 differs in a non-whitespace way ("x=1" vs "x = 1"): kept
    assert dedupe(r).completions == ["x  = 1\nso 2", "x = 1 so 3", "x = 1 so 2", "x=1 so 2"]


def test_max_per_prompt(make_rollout):
    r = make_rollout(["a", "b", "c", "d", "e", "f"], [0, 1, 0, 0, 1, 2])
    assert max_per_prompt(r,
                          plugin_options("filter", "max_per_prompt", n=2)).completions == ["a", "b", "c", "e", "f"]
    assert max_per_prompt(r,
                          plugin_options("filter", "max_per_prompt", n=1)).completions == ["a", "b", "f"]
    with pytest.raises(ConfigError, match="filter.max_per_prompt.n"):
        MaxPerPromptOptions(n=0)


def test_empty_rollout_passes_through(make_rollout):
    empty = correct(make_rollout(["a"], [0], reward_parts={"accuracy": [0.0]}),
                    plugin_options("filter", "correct"))
    assert len(empty) == 0
    for fn in (dedupe, lambda r: max_per_prompt(r,
                                                plugin_options("filter", "max_per_prompt", n=1)), lambda r: length(r, plugin_options("filter", "length", min_tokens=1))):
        assert len(fn(empty)) == 0


def test_registered_as_plugins_taking_typed_options(check_schema):
    mine = {"r1kit.filters.rejection"}
    others = [m for m in BUILTIN_PLUGINS if m not in mine]  # may not exist yet
    pm = create_plugin_manager(autoload=False, blocked=others)
    registry = build_registry(pm)
    assert registry.names("filter") == ["correct", "dedupe", "language_consistent", "length",
                                        "max_per_prompt", "well_formatted"]
    for entry in registry.entries("filter"):
        check_schema(entry)
