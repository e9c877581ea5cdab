"""The train/inference mismatch statistics and the TIS weights (pure tensor functions)."""

import math

import pytest
import torch

from r1kit.algo.mismatch import importance_weights, logprob_mismatch, sampler_logprob_tensor


def test_sampler_logprob_tensor_pads_with_zeros():
    out = sampler_logprob_tensor([[-1.0, -2.0], [], [-0.5]])
    assert out.dtype == torch.float32 and out.shape == (3, 2)
    assert out.tolist() == [[-1.0, -2.0], [0.0, 0.0], [-0.5, 0.0]]
    assert sampler_logprob_tensor([[-1.0]], width=3).shape == (1, 3)
    assert sampler_logprob_tensor([[], []]).shape == (2, 1)  # like pack's completion width
    with pytest.raises(ValueError, match="width"):
        sampler_logprob_tensor([[-1.0, -1.0]], width=1)


def test_mismatch_statistics_ignore_padding():
    sampler = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    trainer = torch.tensor([[-1.1, -1.8, 55.0], [-0.5, -9.0, 0.0]])  # padding is garbage
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    stats = logprob_mismatch(sampler, trainer, mask)
    diffs = torch.tensor([-0.1, 0.2, 0.0])
    assert stats["logprob_diff"] == pytest.approx(diffs.abs().mean().item(), abs=1e-6)
    assert stats["logprob_diff_max"] == pytest.approx(0.2, abs=1e-6)
    assert stats["ratio_mean"] == pytest.approx(diffs.exp().mean().item(), abs=1e-6)
    assert stats["kl"] == pytest.approx((diffs.exp() - 1 - diffs).mean().item(), abs=1e-6)
    assert stats["kl"] >= 0


def test_mismatch_of_identical_logprobs_is_perfect_agreement():
    logp = torch.log(torch.rand(4, 5))
    stats = logprob_mismatch(logp, logp.clone(), torch.ones(4, 5))
    assert stats == {"logprob_diff": 0.0, "logprob_diff_max": 0.0, "ratio_mean": 1.0, "kl": 0.0}
    empty = logprob_mismatch(logp, logp + 1, torch.zeros(4, 5))
    assert empty == {"logprob_diff": 0.0, "logprob_diff_max": 0.0, "ratio_mean": 1.0, "kl": 0.0}


def test_importance_weights_are_truncated_ratios():
    sampler = torch.tensor([[math.log(0.5), math.log(0.1), math.log(0.4), 0.0]])
    old = torch.tensor([[math.log(0.25), math.log(0.9), math.log(0.4), 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    weights = importance_weights(sampler, old, mask, cap=2.0)
    # 0.25/0.5 = 0.5 (kept), 0.9/0.1 = 9 -> capped at 2, equal probs -> 1, padding -> 0
    assert weights[0].tolist() == pytest.approx([0.5, 2.0, 1.0, 0.0], abs=1e-6)


def test_importance_weights_are_constants_and_finite():
    sampler = torch.tensor([[-100.0, -1.0]], requires_grad=True)
    old = torch.tensor([[0.0, float("-inf")]], requires_grad=True)
    mask = torch.tensor([[1.0, 0.0]])  # the -inf sits on padding
    weights = importance_weights(sampler, old, mask, cap=3.0)
    assert not weights.requires_grad
    assert weights.tolist() == [[3.0, 0.0]]  # exp(100) would overflow; capped, no nan
    with pytest.raises(ValueError, match="cap"):
        importance_weights(sampler, old, mask, cap=0.0)
