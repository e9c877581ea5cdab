"""GDPO's decoupled normalisation and the pass@k advantages, against hand-computed values."""

import math
from itertools import combinations
from types import SimpleNamespace

import pytest
import torch

from r1kit.algo.advantages import compute_advantages, grpo_advantages, GRPOAdvantageOptions
from r1kit.algo.multi_reward import GDPOAdvantageOptions, gdpo_advantages
from r1kit.algo.pass_at_k import PassAtKAdvantageOptions, pass_at_k_advantages, pass_at_k_group
from r1kit.api import plugin_options
from r1kit.config.schema import ConfigError
from r1kit.rewards.harness import RewardSpec

NAN = float("nan")
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1])


def test_gdpo_separates_what_grpo_collapses():
    # group 0: (accuracy, format) = (1,0), (0,1), (1,1), (0,0): GRPO on the totals 1, 1, 2, 0
    # gives the first two the same advantage; GDPO too (each is one reward's +, the other's −),
    # but group 1's (1, 0) vs (1, 1) differs in format only and keeps that signal
    parts = {"accuracy": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0]),
             "format": torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])}
    total = parts["accuracy"] + parts["format"]
    opts = GDPOAdvantageOptions(batch_normalize=False)
    a = gdpo_advantages(total, GROUPS, opts, reward_parts=parts,
                        reward_weights={"accuracy": 1.0, "format": 1.0})
    # group 0, each reward: values 1,0,1,0 / 0,1,1,0: dev ±0.5, unbiased std √(1/3)
    z = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    # group 1: accuracy all equal → 0; format 0, 1: dev ∓0.5, std √½
    y = 0.5 / (math.sqrt(0.5) + 1e-4)
    torch.testing.assert_close(a, torch.tensor([0.0, 0.0, 2 * z, -2 * z, -y, y]))


def test_gdpo_weights_nan_and_batch_normalization():
    parts = {"accuracy": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
             "judge": torch.tensor([NAN, NAN, 3.0, 1.0, NAN, NAN])}
    a = gdpo_advantages(torch.zeros(6), GROUPS, GDPOAdvantageOptions(batch_normalize=False),
                        reward_parts=parts, reward_weights={"accuracy": 1.0, "judge": 0.5})
    z = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    j = 1.0 / (math.sqrt(2.0) + 1e-4)  # judge scored rows 2, 3 only: dev ±1, std √2
    y = 0.5 / (math.sqrt(0.5) + 1e-4)
    expected = torch.tensor([z, -z, z + 0.5 * j, -z - 0.5 * j, y, -y])
    torch.testing.assert_close(a, expected)
    b = gdpo_advantages(torch.zeros(6), GROUPS, GDPOAdvantageOptions(), reward_parts=parts,
                        reward_weights={"accuracy": 1.0, "judge": 0.5})
    torch.testing.assert_close(b, (expected - expected.mean()) / (expected.std() + 1e-4))


def test_gdpo_with_one_reward_is_grpo():
    r = torch.tensor([1.0, 0.0, 0.5, 0.0, 2.0, 1.0])
    a = gdpo_advantages(r, GROUPS, GDPOAdvantageOptions(batch_normalize=False),
                        reward_parts={"x": r}, reward_weights={"x": 1.0})
    torch.testing.assert_close(a, grpo_advantages(r, GROUPS, GRPOAdvantageOptions()))
    # all-equal everywhere: zeros, not NaN, even after the batch normalisation
    flat = gdpo_advantages(torch.ones(6), GROUPS, GDPOAdvantageOptions(),
                           reward_parts={"x": torch.ones(6)}, reward_weights={})
    assert torch.equal(flat, torch.zeros(6))


def brute_force_pass_at_k(correct, k):
    """The paper's definition: mean over all k-subsets containing i of the subset's reward
    (1 if any member is correct), minus the mean over all k-subsets, over their std."""
    n = len(correct)
    subsets = list(combinations(range(n), k))
    reward = {s: float(any(correct[j] for j in s)) for s in subsets}
    mean = sum(reward.values()) / len(subsets)
    std = math.sqrt(mean * (1 - mean))
    if std == 0:
        return [0.0] * n
    return [(sum(reward[s] for s in subsets if i in s) / sum(1 for s in subsets if i in s)
             - mean) / std for i in range(n)]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("correct", [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 0, 1, 1, 0, 1]])
def test_pass_at_k_matches_the_subset_definition(correct, k):
    a_pos, a_neg = pass_at_k_group(len(correct), correct.count(0), k)
    got = [a_pos if c else a_neg for c in correct]
    assert got == pytest.approx(brute_force_pass_at_k(correct, k))


def test_pass_at_k_hand_values():
    # N = 4, one correct, k = 2: R̄ = 1 − C(3,2)/C(4,2) = ½, σ = ½
    # A_pos = (1 − ½)/½ = 1;  A_neg = (1 − ½ − C(2,1)/C(3,1))/½ = (½ − ⅔)·2 = −⅓
    assert pass_at_k_group(4, 3, 2) == pytest.approx((1.0, -1 / 3))
    # k = 1 is GRPO with the population std: p = ¼, σ = √(3)/4
    s = math.sqrt(3) / 4
    assert pass_at_k_group(4, 3, 1) == pytest.approx((0.75 / s, -0.25 / s))
    # all wrong / all correct / k beyond the group: 0
    assert pass_at_k_group(4, 4, 2) == (0.0, 0.0)
    assert pass_at_k_group(4, 0, 2) == (0.0, 0.0)
    assert pass_at_k_group(2, 1, 8) == (0.0, 0.0)


def test_pass_at_k_on_a_rollout_with_a_named_reward():
    rollout = SimpleNamespace(
        rewards=torch.tensor([1.5, 0.5, 0.5, 0.2, 1.0, 0.0]), group_ids=GROUPS,
        reward_parts={"accuracy": torch.tensor([1.0, 0.0, 0.0, NAN, 1.0, 0.0]),
                      "format": torch.tensor([0.5, 0.5, 0.5, 0.2, 0.0, 0.0])})
    opts = PassAtKAdvantageOptions(k=2, reward="accuracy")
    a = compute_advantages(pass_at_k_advantages, rollout, opts, [RewardSpec("accuracy", None)])
    # group 0: one correct of 4 (NaN counts as wrong); group 1: 1 of 2, k = 2 → σ = 0
    torch.testing.assert_close(a, torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3, 0.0, 0.0]))
    with pytest.raises(ConfigError, match="advantage.reward"):
        pass_at_k_advantages(rollout.rewards, GROUPS, PassAtKAdvantageOptions(reward="nope"),
                             reward_parts=rollout.reward_parts, reward_weights={})


def test_registered_as_plugins_with_checked_options():
    assert plugin_options("advantage", "pass_at_k", k=8).k == 8
    assert plugin_options("advantage", "gdpo").batch_normalize is True
    with pytest.raises(ConfigError, match="advantage.k"):
        plugin_options("advantage", "pass_at_k", k=0)
