"""policy_loss's optional terms: the entropy bonus, DeepSeek-V3.2's importance-weighted KL
(k3_is) and its off-policy sequence mask."""

import math

import pytest
import torch

from r1kit.algo import policy_loss
from r1kit.algo.kl import kl_k3, kl_k3_is
from r1kit.algo.offpolicy import off_policy_sequence_mask
from tests.algo.test_policy_loss import F64, LN2, close, hand_batch

W = [1 / 8, 1 / 12, 1 / 2]  # hand_batch's grpo weight of a token of each row


# ---- entropy bonus --------------------------------------------------------------------------

def test_entropy_bonus_value_and_gradient():
    b = hand_batch()
    h = torch.tensor([[1.0, 3.0, 99.0], [2.0, 2.0, 5.0], [4.0, 7.0, 7.0]], dtype=F64,
                     requires_grad=True)  # padding entries must not count
    out = policy_loss(**b, epsilon=0.2, entropy=h, entropy_coef=0.1)
    # agg(H) = ((2 + 3)/2 + 4)/2 = 3.25
    close(out.entropy, 3.25)
    close(out.loss, -(251 / 240 + 0.1 * 3.25))
    (grad,) = torch.autograd.grad(out.loss, h)
    close(grad, [[-0.1 * W[0], -0.1 * W[0], 0], [-0.1 * W[1]] * 3, [-0.1 * W[2], 0, 0]])


def test_entropy_without_coef_is_logged_only():
    b = hand_batch()
    h = torch.ones(3, 3, dtype=F64)
    out = policy_loss(**b, epsilon=0.2, entropy=h)
    close(out.entropy, 1.0)
    close(out.loss, -251 / 240)
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(**b, epsilon=0.2, entropy_coef=0.1)


# ---- k3_is ----------------------------------------------------------------------------------

def test_k3_is_hand_values_and_gradient():
    b = hand_batch()
    out = policy_loss(**b, epsilon=0.2, beta=0.1, kl_estimator="k3_is")
    # ρ · k3: row 0 [1.5 (1 − ln2), 0], row 1 [0, 0, 1.3 (ln2 − ½)], row 2 [1.05 (1 − ln2)]
    kl = ((1.5 * (1 - LN2) / 2 + 1.3 * (LN2 - 0.5) / 3) / 2 + 1.05 * (1 - LN2)) / 2
    close(out.kl, kl)
    close(out.loss, -(251 / 240 - 0.1 * kl))
    # ∂(ρ k3(x))/∂logp with x = ref − logp: ρ k3 − ρ (eˣ − 1) = −ρ x
    logp = torch.zeros(3, dtype=F64, requires_grad=True)
    old = torch.tensor([0.3, -0.2, 0.0], dtype=F64)
    ref = torch.tensor([LN2, -LN2, 1.0], dtype=F64)
    d = kl_k3_is(logp, ref, ratio=torch.exp(logp - old))
    (grad,) = torch.autograd.grad(d.sum(), logp)
    close(grad, -torch.exp(-old) * ref)


def test_k3_is_is_unbiased_under_the_behaviour_policy():
    """Exact expectations over a 4-token vocabulary, tokens drawn from π_old: E[ρ k3] is
    KL(π_θ ‖ π_ref) and E[∇(ρ k3)] its gradient; plain k3 is biased in both."""
    theta = torch.tensor([0.2, -0.5, 1.0, 0.1], dtype=F64, requires_grad=True)
    logp = torch.log_softmax(theta, 0)
    old = torch.log_softmax(torch.tensor([0.0, 0.3, 0.2, -0.4], dtype=F64), 0)
    ref = torch.log_softmax(torch.tensor([0.5, 0.0, -0.3, 0.2], dtype=F64), 0)
    kl = (logp.exp() * (logp - ref)).sum()
    (kl_grad,) = torch.autograd.grad(kl, theta, retain_graph=True)
    p_old = old.exp()
    estimate = (p_old * kl_k3_is(logp, ref, ratio=torch.exp(logp - old))).sum()
    (estimate_grad,) = torch.autograd.grad(estimate, theta, retain_graph=True)
    torch.testing.assert_close(estimate, kl)
    torch.testing.assert_close(estimate_grad, kl_grad)
    biased = (p_old * kl_k3(logp, ref)).sum()
    assert not torch.allclose(biased, kl)


def test_k3_is_needs_the_ratio():
    with pytest.raises(ValueError, match="ratio"):
        kl_k3_is(torch.zeros(2), torch.zeros(2))


# ---- off-policy sequence mask ---------------------------------------------------------------

def test_off_policy_mask_drops_drifted_negative_sequences():
    b = hand_batch()
    # mean log(π_old/π_θ) = −mean log ρ: row 0 −ln(1.35)/2 = −0.150 (A > 0),
    # row 1 −ln(0.715)/3 = 0.1118 (A < 0), row 2 −ln 1.05 (A > 0)
    out = policy_loss(**b, epsilon=0.2, off_policy_mask_delta=0.1)
    close(out.loss, -((1.05 + 0.0) / 2 + 2.1) / 2)  # row 1 dropped: 0 in its group's mean
    close(out.off_policy_masked_frac, 3 / 6)
    (grad,) = torch.autograd.grad(out.loss, b["logp"])
    assert torch.equal(grad[1], torch.zeros(3, dtype=F64))
    kept = policy_loss(**b, epsilon=0.2, off_policy_mask_delta=0.12)
    close(kept.loss, -251 / 240)
    close(kept.off_policy_masked_frac, 0.0)


def test_off_policy_mask_keeps_positive_advantages_and_empty_rows():
    logp = torch.zeros(3, 2)
    old = torch.full((3, 2), 5.0)  # far drifted everywhere
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    keep = off_policy_sequence_mask(logp, old, torch.tensor([1.0, -1.0, -1.0]), valid, 0.5)
    assert keep.tolist() == [True, False, True]
    assert math.isclose(float((old - logp)[1, 0]), 5.0)
