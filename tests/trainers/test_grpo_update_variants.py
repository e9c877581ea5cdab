"""Every split-exact surrogate, with the entropy bonus, k3_is and the off-policy mask on:
micro-batches (groups spread across them) give the whole batch's gradient through the model."""

import pytest
import torch

from r1kit.algo.surrogates import SURROGATES
from r1kit.config.schema import AlgoConfig
from tests.trainers.test_grpo_update import G, GROUPS, _update
from tests.trainers.test_grpo_update import model_and_batch  # noqa: F401 (the fixture)

SPLIT_EXACT = sorted(set(SURROGATES) - {"clip_cov", "kl_cov"})  # those select per micro-batch


@pytest.mark.parametrize("surrogate", SPLIT_EXACT)
def test_micro_batches_give_the_whole_batch_gradient(model_and_batch, surrogate):
    model, batch = model_and_batch
    options = dict(epsilon_high=0.28, policy_loss=surrogate, entropy_coef=0.05,
                   kl_estimator="k3_is", off_policy_mask_delta=0.05, micro_batch_tokens=None,
                   aggregation="token_mean")
    whole, whole_terms = _update(model, batch, AlgoConfig(**options,
                                                          micro_batch_size=GROUPS * G))
    split, split_terms = _update(model, batch, AlgoConfig(**options, micro_batch_size=3))
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-7)
    assert split_terms == pytest.approx(whole_terms, rel=1e-5, abs=1e-7)
    assert any(float(g.abs().sum()) > 0 for g in whole)


def test_the_entropy_bonus_changes_the_gradient(model_and_batch):
    model, batch = model_and_batch
    plain, _ = _update(model, batch, AlgoConfig(epsilon_high=0.28, micro_batch_size=G))
    bonus, terms = _update(model, batch, AlgoConfig(epsilon_high=0.28, micro_batch_size=G,
                                                    entropy_coef=0.1))
    assert not all(torch.allclose(a, b) for a, b in zip(plain, bonus))
    assert terms["entropy"] > 0
