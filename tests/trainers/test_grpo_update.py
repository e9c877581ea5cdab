"""One GRPO policy update (``accumulate_gradients``): the per-rank loss scale, micro-batching
that does not change the gradient, what a rank with nothing to learn reports; and the step's
metrics combined from its μ updates."""

import dataclasses

import pytest
import torch

from r1kit.algo.logprobs import completion_logprobs
from r1kit.algo.loss import policy_loss
from r1kit.stages.module_common import Backprop
from r1kit.stages.grpo.batch import active_rows
from r1kit.stages.grpo.update import (ADDITIVE_TERMS, COMPUTED_ROW_STATS,
                                        accumulate_gradients, combine_updates)
from tests.trainers.grouped_batch import grouped_batch
from r1kit.config.schema import AlgoConfig

GROUPS, G = 3, 4
COMMON = {"temperature": 1.0, "max_completion_length": 16}


def _algo(**changes):
    """The run-time ``algo`` config: DAPO's clip-higher over the schema's defaults."""
    return AlgoConfig(**{"epsilon_high": 0.28, "micro_batch_size": G, **changes})


@pytest.fixture(scope="module")
def model_and_batch():
    # group 0 has nothing to learn without the KL term
    return grouped_batch(groups=GROUPS, group_size=G, hidden_size=32, num_layers=1, seed=1,
                         prompt_length=lambda g: 2 + g,
                         completion_length=lambda g, i: 1 + (3 * g + 5 * i) % 7, zero_groups=(0,))


def _update(model, batch, algo, **kwargs):
    model.zero_grad(set_to_none=True)
    terms = accumulate_gradients(model, batch, algo, **COMMON, **kwargs)
    return [p.grad.clone() for p in model.parameters()], terms


def test_the_rank_share_makes_the_average_over_ranks_the_global_value():
    # this rank holds 3 of the 8 units on 2 ranks: its loss weighs 2 · 3/8
    backprop = Backprop(sum_over_ranks=lambda units: units + 5.0, world_size=2)
    assert backprop.share(3.0) == pytest.approx(0.75)
    assert Backprop(sum_over_ranks=lambda units: 0.0, world_size=2).share(0.0) == 0.0
    assert Backprop().share(7.0) == 1.0  # one process: the loss as it is


@pytest.mark.parametrize("aggregation", ["grpo", "token_mean", "constant"])
def test_micro_batches_of_whole_groups_give_the_whole_batch_gradient(model_and_batch,
                                                                     aggregation):
    model, batch = model_and_batch
    whole, whole_terms = _update(model, batch, _algo(aggregation=aggregation,
                                                     micro_batch_size=GROUPS * G))
    split, split_terms = _update(model, batch, _algo(aggregation=aggregation))
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-7)
    assert split_terms == pytest.approx(whole_terms, rel=1e-5, abs=1e-7)


def test_statistics_describe_the_rows_computed(model_and_batch):
    # β = 0: group 0 (all advantages 0) is skipped; the per-token statistics are those of
    # the two groups computed, not diluted by the skipped one
    model, batch = model_and_batch
    algo = _algo(beta=0.0, micro_batch_size=GROUPS * G)
    _, terms = _update(model, dataclasses.replace(batch, ref_logp=None), algo)
    rows = active_rows(batch, algo)
    assert rows.tolist() == list(range(G, GROUPS * G))
    part = batch.rows(rows)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, part.ids, part.attention, part.positions,
                                      part.mask)
        out = policy_loss(logp, part.old_logp, None, part.advantages, part.mask, part.group_ids,
                          epsilon=0.2, epsilon_high=0.28)
    assert terms["clip_low_frac"] == pytest.approx(float(out.clip_low_frac))
    assert terms["clip_high_frac"] == pytest.approx(float(out.clip_high_frac))
    assert terms["ratio_mean"] == pytest.approx(float(out.ratio_mean))
    assert terms["skipped_rows_frac"] == pytest.approx(1 / GROUPS)
    # the loss is the whole batch's: the skipped group counts in the grpo mean over groups
    assert terms["loss"] == pytest.approx(float(out.loss) * (GROUPS - 1) / GROUPS, rel=1e-5)


def test_a_rank_without_rows_joins_with_zero_gradients_and_reports_zeros(model_and_batch):
    model, _ = model_and_batch
    for p in model.parameters():
        p.grad = torch.ones_like(p)  # stale gradients must not survive
    model.zero_grad(set_to_none=True)
    terms = accumulate_gradients(model, None, _algo(), **COMMON, device=torch.device("cpu"))
    assert all(float(p.grad.abs().sum()) == 0.0 for p in model.parameters())
    # every term present (the mean over ranks counts this rank's zero share)
    assert set(terms) == {*ADDITIVE_TERMS, *COMPUTED_ROW_STATS, "skipped_rows_frac"}
    assert set(terms.values()) == {0.0}


def test_a_step_logs_the_mean_of_its_updates_and_the_largest_gradient_norm():
    updates = [{"train/loss": 0.5, "train/clip_low_frac": 0.0, "train/grad_norm": 1.0,
                "train/lr": 1e-3},
               {"train/loss": 0.1, "train/clip_low_frac": 0.2, "train/grad_norm": 3.0,
                "train/lr": 2e-3}]
    assert combine_updates(updates) == pytest.approx({
        "train/loss": 0.3, "train/clip_low_frac": 0.1, "train/grad_norm": 2.0,
        "train/grad_norm_max": 3.0, "train/lr": 2e-3})
    one = updates[:1]
    assert combine_updates(one) == {**one[0], "train/grad_norm_max": 1.0}  # μ = 1: as it was
