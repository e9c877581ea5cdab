"""With β = 0, groups whose advantages are all zero are skipped: the same gradient, fewer rows
through the model."""

import dataclasses

import pytest
import torch

from r1kit.algo.microbatch import learning_rows
from r1kit.config.schema import AlgoConfig
from r1kit.stages.grpo.update import accumulate_gradients
from tests.trainers.grouped_batch import grouped_batch

GROUPS, G = 4, 4


def _algo(**changes):
    # micro-batches of G rows (no token budget), so passes count rows
    base = dict(epsilon=0.2, epsilon_high=0.28, beta=0.0, kl_estimator="k3",
                ratio_level="token", aggregation="grpo", micro_batch_size=G,
                micro_batch_tokens=None, skip_zero_advantage=True)
    return AlgoConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def model_and_batch():
    # groups 0 and 2: all rewards equal
    return grouped_batch(groups=GROUPS, group_size=G, hidden_size=64, num_layers=2, seed=0,
                         prompt_length=lambda g: 3 + g,
                         completion_length=lambda g, i: 1 + (5 * g + 3 * i) % 11,
                         zero_groups=(0, 2))


def _run(model, batch, algo):
    rows = []  # the decoder runs once per micro-batch (the log-probs need its hidden states)
    # ids, or their embeddings where the head is tied to the input embedding (one gradient
    # buffer: r1kit.algo.tied_embedding)
    handle = model.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(
            (kwargs.get("input_ids") if kwargs.get("input_ids") is not None
             else kwargs["inputs_embeds"]).shape[0]),
        with_kwargs=True)
    model.zero_grad(set_to_none=True)
    try:
        terms = accumulate_gradients(model, batch, algo, temperature=1.0,
                                     max_completion_length=16)
    finally:
        handle.remove()
    return [p.grad.clone() for p in model.parameters()], terms, rows


def test_learning_rows_are_the_groups_with_a_nonzero_advantage(model_and_batch):
    _, batch = model_and_batch
    keep = learning_rows(batch.advantages, batch.mask, batch.group_ids)
    assert keep.tolist() == [False] * G + [True] * G + [False] * G + [True] * G
    mask = batch.mask.clone()
    mask[G:2 * G] = 0  # a group a filter removed entirely: nothing to learn either
    assert learning_rows(batch.advantages, mask, batch.group_ids)[G:2 * G].sum() == 0


@pytest.mark.parametrize("variant", [dict(aggregation="grpo"), dict(aggregation="token_mean"),
                                     dict(aggregation="constant"),
                                     dict(ratio_level="sequence", micro_batch_size=2 * G)])
def test_same_gradient_with_half_the_rows(model_and_batch, variant):
    model, batch = model_and_batch
    full_grads, full_terms, full_rows = _run(model, batch, _algo(skip_zero_advantage=False,
                                                                 **variant))
    grads, terms, rows = _run(model, batch, _algo(**variant))
    torch.testing.assert_close(grads, full_grads, rtol=1e-5, atol=1e-7)
    assert len(rows) * 2 == len(full_rows)  # half the groups: half the micro-batch passes
    assert terms["loss"] == pytest.approx(full_terms["loss"], rel=1e-5, abs=1e-7)
    assert terms["skipped_rows_frac"] == pytest.approx(0.5)
    assert full_terms["skipped_rows_frac"] == 0.0
    assert any(g.abs().sum() > 0 for g in grads)


def test_kl_term_keeps_every_group(model_and_batch):
    model, batch = model_and_batch
    grads, terms, rows = _run(model, batch, _algo(beta=0.04))
    reference, _, all_rows = _run(model, batch, _algo(beta=0.04, skip_zero_advantage=False))
    assert terms["skipped_rows_frac"] == 0.0 and rows == all_rows
    torch.testing.assert_close(grads, reference)


def test_all_groups_skipped_gives_zero_gradient(model_and_batch):
    model, batch = model_and_batch
    flat = dataclasses.replace(batch, advantages=torch.zeros_like(batch.advantages))
    grads, terms, rows = _run(model, flat, _algo())
    assert rows == [1]  # one 1-token pass that joins the (DDP) all-reduce with zeros
    assert all(float(g.abs().sum()) == 0.0 for g in grads)
    assert terms["skipped_rows_frac"] == 1.0 and terms["loss"] == 0.0
