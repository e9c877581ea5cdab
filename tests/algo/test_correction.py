"""The rollout-correction family (sampler.importance_correction) on hand-computed ratios."""

import math

import pytest
import torch

from r1kit.algo.correction import CORRECTIONS, masked_fraction
from r1kit.samplers.base import SamplerCapabilities
from r1kit.stages.grpo.batch import correction_weights, engine_mismatch

# ρ = π_old/π_sampler per token (log ρ = old − sampled):
#   row 0: ρ = [e^0.2, e^−1, e^0.1]        (e^−1 = 0.368 is below the floor 0.5)
#   row 1: ρ = [e^1, e^0.5, pad]           (e^1 = 2.718 is above the cap 2)
#   row 2: ρ = [e^−0.1, pad, pad]
LOG_RATIO = torch.tensor([[0.2, -1.0, 0.1], [1.0, 0.5, 9e9], [-0.1, -9e9, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
SAMPLED = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, -0.7, -1.0], [-0.3, 0.0, 0.0]])
OLD = SAMPLED + LOG_RATIO
E = math.exp


def weights(name, low=0.5, high=2.0):
    return CORRECTIONS[name](SAMPLED, OLD, MASK, low, high)


def close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype))


def test_none_and_tis():
    assert weights("none") is None
    close(weights("tis"), [[E(0.2), E(-1), E(0.1)], [2.0, E(0.5), 0], [E(-0.1), 0, 0]])


def test_token_mask_drops_tokens_outside_the_band():
    close(weights("token_mask"), [[1, 0, 1], [0, 1, 0], [1, 0, 0]])


def test_icepop_keeps_the_ratio_inside_the_band():
    close(weights("icepop"), [[E(0.2), 0, E(0.1)], [0, E(0.5), 0], [E(-0.1), 0, 0]])
    # the paper's band [0.5, 5] keeps e^1
    close(weights("icepop", high=5.0)[1], [E(1), E(0.5), 0])


def test_sequence_truncation_uses_the_product():
    # Σ log ρ: row 0 −0.7, row 1 1.5 → e^1.5 = 4.48 capped at 2, row 2 −0.1
    close(weights("seq_tis"), [[E(-0.7)] * 3, [2.0, 2.0, 0], [E(-0.1), 0, 0]])


def test_sequence_mask_uses_the_geometric_mean():
    # mean log ρ: row 0 −0.7/3 (e^ = 0.79, kept), row 1 0.75 (e^ = 2.12 > 2, dropped), row 2 −0.1
    close(weights("seq_mask"), [[1, 1, 1], [0, 0, 0], [1, 0, 0]])


def test_masked_fraction_and_the_logged_metric():
    assert masked_fraction(None, MASK) == 0.0
    assert masked_fraction(weights("token_mask"), MASK) == pytest.approx(2 / 6)
    caps = SamplerCapabilities(importance_correction="seq_mask", importance_cap=2.0,
                               importance_floor=0.5)
    w = correction_weights(caps, SAMPLED, OLD, MASK)
    metrics = engine_mismatch(SAMPLED, OLD, MASK, w)
    assert metrics["sampler/is_masked_frac"] == pytest.approx(2 / 6)
    assert "sampler/logprob_diff" in metrics


def test_huge_log_ratios_do_not_overflow():
    old = SAMPLED + torch.tensor([[500.0, -500.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    for name in sorted(set(CORRECTIONS) - {"none"}):
        w = CORRECTIONS[name](SAMPLED, old, MASK, 0.5, 2.0)
        assert torch.isfinite(w).all(), name
