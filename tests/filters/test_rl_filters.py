import pytest
import torch

from r1kit.config.schema import ConfigError
from r1kit.filters.rl import (OverlongOptions, TruncationOptions, overlong, overlong_penalty,
                              truncation, zero_variance)
from r1kit.plugin.manager import BUILTIN_PLUGINS, build_registry, create_plugin_manager
from r1kit.api import plugin_options

NAN = float("nan")


def test_zero_variance_drops_constant_groups(make_rollout):
    r = make_rollout(["a", "b", "c", "d", "e", "f", "g"], [0, 0, 1, 5, 1, 2, 2],
                     rewards=[1.0, 1.0, 0.0, 3.0, 1.0, 0.5, 0.5],
                     reward_parts={"accuracy": [1, 1, 0, 1, 1, NAN, 0]})
    kept = zero_variance(r)
    # group 0 all 1.0 and group 2 all 0.5 go; group 5 has one member (no variance) and goes too
    assert kept.completions == ["c", "e"]
    assert kept.group_ids.tolist() == [1, 1]
    assert kept.rewards.tolist() == [0.0, 1.0]
    assert kept.reward_parts["accuracy"].tolist() == [0.0, 1.0]
    assert len(r) == 7  # the input is untouched


def test_zero_variance_can_drop_everything(make_rollout):
    r = make_rollout(["a", "b"], [0, 0], rewards=[0.2, 0.2])
    assert len(zero_variance(r)) == 0
    assert len(zero_variance(zero_variance(r))) == 0


def test_truncation_mask(make_rollout):
    r = make_rollout(["a", "b", "c"], [0, 0, 0], rewards=[1.0, 0.5, 0.0],
                     truncated=[False, True, False])
    out = truncation(r, plugin_options("filter", "truncation"))
    assert out.loss_weights.tolist() == [1.0, 0.0, 1.0]
    assert out.rewards.tolist() == [1.0, 0.5, 0.0]  # still counts in the group's statistics
    assert r.loss_weights.tolist() == [1.0, 1.0, 1.0]


def test_truncation_penalty(make_rollout):
    r = make_rollout(["a", "b", "c"], [0, 0, 0], rewards=[1.0, 0.5, 0.0],
                     truncated=[True, True, False], reward_parts={"accuracy": [1, 0.5, 0]})
    out = truncation(r, plugin_options("filter", "truncation", mode="penalty", penalty=-1.0))
    assert out.rewards.tolist() == [-1.0, -1.0, 0.0]
    assert out.loss_weights.tolist() == [1.0, 1.0, 1.0]
    assert out.reward_parts["accuracy"].tolist() == [1.0, 0.5, 0.0]  # raw parts kept for logs


def test_truncation_unknown_mode(make_rollout):
    r = make_rollout(["a"], [0])
    with pytest.raises(ValueError, match="mask, penalty"):
        truncation(r, plugin_options("filter", "truncation", mode="drop"))
    with pytest.raises(ConfigError, match="filter.truncation.mode"):
        TruncationOptions(mode="drop")


def test_overlong_penalty_values():
    # max_length 10, buffer 4: free up to 6 tokens, then −1/4 per token, −1 from 10 on
    lengths = torch.tensor([0.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0])
    assert overlong_penalty(lengths, 10, 4).tolist() == [0, 0, 0, -0.25, -0.5, -0.75, -1, -1]


def test_overlong_adds_to_rewards(make_rollout):
    r = make_rollout(["a", "b", "c"], [0, 0, 1], rewards=[1.0, 1.0, 0.5],
                     completion_ids=[[1] * 3, [1] * 8, [1] * 11])
    out = overlong(r, plugin_options("filter", "overlong", max_length=10, buffer=4))
    assert out.rewards.tolist() == [1.0, 0.5, -0.5]
    assert r.rewards.tolist() == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="buffer"):
        overlong(r, plugin_options("filter", "overlong", max_length=10, buffer=0))
    with pytest.raises(ConfigError, match="filter.overlong.buffer"):
        OverlongOptions(max_length=10, buffer=11)


def test_registered_as_plugins_taking_typed_options(check_schema):
    mine = {"r1kit.filters.rl"}
    others = [m for m in BUILTIN_PLUGINS if m not in mine]  # may not exist yet
    pm = create_plugin_manager(autoload=False, blocked=others)
    registry = build_registry(pm)
    assert registry.names("filter") == ["overlong", "truncation", "zero_variance"]
    for entry in registry.entries("filter"):
        check_schema(entry)
