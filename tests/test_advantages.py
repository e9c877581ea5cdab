"""Advantage estimators on crafted rewards, with expected values worked out by hand."""

import inspect
import math

import pytest
import torch

from r1kit.algo.advantages import (GRPOAdvantageOptions, ReinforcePPAdvantageOptions,
                              dr_grpo_advantages, grpo_advantages, reinforce_pp_advantages,
                              rloo_advantages)
from r1kit.config.schema import ConfigError
from r1kit.plugin.manager import BUILTIN_PLUGINS, build_registry, create_plugin_manager
from r1kit.api import plugin_options

F64 = torch.float64
# Four groups, uneven sizes, ids neither contiguous nor sorted, members interleaved:
#   id 7: rewards 1, 0, 0, 1   (mean 0.5)
#   id 3: rewards 2, 2, 2      (all equal)
#   id 9: reward 5             (a group of one)
#   id 1: rewards 0.5, 1.5     (mean 1)
REWARDS = torch.tensor([1.0, 2.0, 0.0, 0.5, 5.0, 2.0, 0.0, 1.5, 1.0, 2.0], dtype=F64)
GROUPS = torch.tensor([7, 3, 7, 1, 9, 3, 7, 1, 7, 3])
DEV = [0.5, 0, -0.5, -0.5, 0, 0, -0.5, 0.5, 0.5, 0]  # r − group mean


def expect(values):
    return torch.tensor(values, dtype=F64)


def test_grpo_unbiased_std():
    # id 7: Σ dev² = 4·¼ = 1, ÷(4−1) → std √(1/3) = 0.577350;  0.5/(0.577350 + 1e-4) = 0.865875
    # id 1: Σ dev² = ½, ÷(2−1) → std √½ = 0.707107;             0.5/(0.707107 + 1e-4) = 0.707007
    a7 = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    a1 = 0.5 / (math.sqrt(0.5) + 1e-4)
    torch.testing.assert_close(grpo_advantages(REWARDS, GROUPS,
                                               plugin_options("advantage", "grpo")),
                               expect([a7, 0, -a7, -a1, 0, 0, -a7, a1, a7, 0]))
    assert abs(a7 - 0.865875) < 1e-6 and abs(a1 - 0.707007) < 1e-6


def test_grpo_population_std():
    # both groups have population std 0.5: 0.5/(0.5 + 1e-4) = 0.999800
    a = 0.5 / 0.5001
    torch.testing.assert_close(grpo_advantages(REWARDS, GROUPS,
                                               plugin_options("advantage", "grpo", unbiased=False)),
                               expect([a, 0, -a, -a, 0, 0, -a, a, a, 0]))


def test_dr_grpo_no_std_division():
    torch.testing.assert_close(dr_grpo_advantages(REWARDS, GROUPS), expect(DEV))


def test_rloo_leave_one_out():
    # id 7: 1 − mean(0, 0, 1) = 2/3, 0 − mean(1, 0, 1) = −2/3;  id 1: 0.5 − 1.5 = −1, 1.5 − 0.5 = 1
    third = 2 / 3
    torch.testing.assert_close(rloo_advantages(REWARDS, GROUPS),
                               expect([third, 0, -third, -1, 0, 0, -third, 1, third, 0]))


def test_reinforce_pp_batch_std():
    # centred rewards DEV: six entries ±0.5, four zeros; batch mean 0, Σ dev² = 1.5,
    # unbiased std over 10 = √(1.5/9) = 0.408248;  0.5/0.408248 = 1.2247449
    a = 0.5 / (math.sqrt(1.5 / 9) + 1e-8)
    assert abs(a - 1.2247449) < 1e-6
    torch.testing.assert_close(reinforce_pp_advantages(REWARDS, GROUPS,
                                                       plugin_options("advantage", "reinforce_pp")),
                               expect([a if d > 0 else -a if d < 0 else 0 for d in DEV]))


def _with_defaults(fn, name):
    """``fn`` as r1kit calls it: with its typed options at their defaults."""
    def estimate(rewards, group_ids):
        return fn(rewards, group_ids, plugin_options("advantage", name))
    estimate.__name__ = name
    return estimate


ESTIMATORS = [_with_defaults(grpo_advantages, "grpo"), _with_defaults(dr_grpo_advantages, "dr_grpo"),
              _with_defaults(rloo_advantages, "rloo"),
              _with_defaults(reinforce_pp_advantages, "reinforce_pp")]


@pytest.mark.parametrize("fn", ESTIMATORS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_all_equal_rewards_give_exact_zero(fn, dtype):
    # 0.1 · 3 / 3 ≠ 0.1 in floating point: a mean-based check would leave ~1e-17/1e-4 residues
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, 0.3], dtype=dtype)
    out = fn(rewards, torch.tensor([0, 0, 0, 1, 1, 2]))
    assert torch.equal(out, torch.zeros(6, dtype=dtype))


@pytest.mark.parametrize("fn", ESTIMATORS)
def test_edge_batches_never_nan(fn):
    assert torch.equal(fn(torch.tensor([3.0]), torch.tensor([0])), torch.zeros(1))
    assert fn(torch.zeros(0), torch.zeros(0, dtype=torch.long)).shape == (0,)
    # integer rewards are promoted to float, not truncated
    out = fn(torch.tensor([1, 0]), torch.tensor([0, 0]))
    assert out.dtype == torch.float32 and out[0] > 0 > out[1]


@pytest.mark.parametrize("fn", ESTIMATORS)
def test_permutation_equivariant(fn):
    perm = torch.randperm(len(REWARDS), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fn(REWARDS[perm], GROUPS[perm]), fn(REWARDS, GROUPS)[perm])


def test_schemas_validate_values():
    with pytest.raises(ConfigError, match="advantage.epsilon"):
        GRPOAdvantageOptions(epsilon=0.0)
    with pytest.raises(ConfigError, match="advantage.epsilon"):
        ReinforcePPAdvantageOptions(epsilon=-1.0)


def test_registered_as_plugins_taking_typed_options():
    mine = {"r1kit.algo.advantages"}
    others = [m for m in BUILTIN_PLUGINS if m not in mine]  # may not exist yet
    pm = create_plugin_manager(autoload=False, blocked=others)
    registry = build_registry(pm)
    assert registry.names("advantage") == ["dr_grpo", "gdpo", "grpo", "pass_at_k",
                                           "reinforce_pp", "rloo"]
    for entry in registry.entries("advantage"):
        assert entry.provider.startswith("r1kit ")
        # (rewards, group_ids, options): the defaults live in the schema alone; estimators of
        # each reward's own scores also take them (and the weights) as keywords
        params = list(inspect.signature(entry.obj).parameters)
        extra = ["reward_parts", "reward_weights"] \
            if getattr(entry.obj, "uses_reward_parts", False) else []
        assert params == ["rewards", "group_ids", "options", *extra], entry.name
