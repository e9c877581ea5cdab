import math

import torch

from r1kit.algo.kl import KL_ESTIMATORS, kl_k1, kl_k2, kl_k3

LN2 = math.log(2.0)


def test_hand_computed_values():
    # x = ref − logp ∈ {ln 2, 0, −ln 2}
    logp = torch.tensor([0.0, -1.0, -1.0], dtype=torch.float64)
    ref = torch.tensor([LN2, -1.0, -1.0 - LN2], dtype=torch.float64)
    # k1 = logp − ref
    torch.testing.assert_close(kl_k1(logp, ref),
                               torch.tensor([-LN2, 0.0, LN2], dtype=torch.float64))
    # k2 = ½ (logp − ref)²: ½ ln²2 = 0.2402265
    torch.testing.assert_close(kl_k2(logp, ref),
                               torch.tensor([0.2402265069591007, 0.0, 0.2402265069591007],
                                            dtype=torch.float64))
    # k3 = e^x − x − 1: 2 − ln2 − 1 = 0.3068528, 0, ½ + ln2 − 1 = 0.1931472
    torch.testing.assert_close(kl_k3(logp, ref),
                               torch.tensor([0.30685281944005466, 0.0, 0.1931471805599453],
                                            dtype=torch.float64))


def test_k3_nonnegative_and_zero_at_equality():
    gen = torch.Generator().manual_seed(0)
    logp = torch.randn(1000, generator=gen) * 3
    ref = torch.randn(1000, generator=gen) * 3
    assert (kl_k3(logp, ref) >= 0).all()
    # tiny differences: where exp(x) − x − 1 cancels catastrophically
    assert (kl_k3(logp, logp + 1e-7 * torch.randn(1000, generator=gen)) >= 0).all()
    assert torch.equal(kl_k3(logp, logp), torch.zeros(1000))


def test_k3_precise_near_zero():
    # e^x − x − 1 = x²/2 + x³/6 + …; in float32, exp(x) − x − 1 is all rounding noise at
    # |x| = 1e-4 (exp(x) carries ~6e-8 absolute error, the answer is 5e-9); expm1 keeps ~3 digits.
    x = torch.tensor([1e-4, -1e-4])
    naive = torch.exp(x) - x - 1
    assert not torch.allclose(naive, torch.tensor([5.0e-9, 5.0e-9]), rtol=0.1, atol=0)
    torch.testing.assert_close(kl_k3(torch.zeros(2), x), torch.tensor([5.0001667e-9, 4.9998333e-9]),
                               rtol=1e-2, atol=0)


def test_table_names():
    assert set(KL_ESTIMATORS) == {"k1", "k2", "k3", "k3_is"}
