"""One of a GRPO step's μ policy updates (``accumulate_gradients``), and the step's metrics
from all μ of them (``combine_updates``).

The loss is computed in micro-batches within a token budget (``micro_batches``: rows longest
first, a group possibly spread over several), and weighted so that their summed gradient is
exactly the rank's whole batch's and, over ranks, the union's:

- each token carries its weight in the aggregation over the rank's whole batch
  (``Aggregation.weights``: ``1/(|o_i| G_g K)`` for ``grpo``, ``1/tokens`` for ``token_mean``,
  ``1/(rows · max_completion_length)`` for ``constant``), so a micro-batch's loss is its rows'
  share of the batch's loss, whichever rows it holds;
- the rank's loss is scaled by its share of every rank's units, ``world_size · U_rank /
  U_global`` (``Backprop.share``, ``U`` the aggregation's ``unit``: groups, tokens, rows): the
  strategy *averages* gradients over ranks (DDP, FSDP, DeepSpeed), and the average is then the
  gradient of the aggregation over the union of all ranks' batches, even when ranks hold
  different numbers of tokens or of groups (filters). A plain DDP average of per-rank token
  means is not the global token mean.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from r1kit.algo.logprobs import completion_logprobs
from r1kit.algo.loss import policy_loss
from r1kit.algo.aggregation import AGGREGATIONS
from r1kit.stages.module_common import Backprop
from r1kit.stages.grpo.batch import PolicyBatch, active_rows, micro_batches

#: loss terms that add up over micro-batches, each weighted like its loss: their sum is the
#: batch's value exactly (a skipped group contributes exactly 0 to each)
ADDITIVE_TERMS = ("loss", "surrogate", "kl")
#: per-token statistics: their mean over every token computed (of every micro-batch and rank),
#: whatever the aggregation and the micro-batch size
COMPUTED_ROW_STATS = ("clip_low_frac", "clip_high_frac", "ratio_mean", "entropy", "cov_frac",
                      "off_policy_masked_frac")


def microbatch_loss(policy, batch: PolicyBatch, weights, algo, *, temperature: float,
                    max_completion_length: int):
    """−J's share from ``batch``'s rows, with gradient, and its terms for logging; ``weights``
    ``(N, T)``: the aggregation's weights of these rows' tokens in the whole batch."""
    # the entropy carries a gradient only for an entropy bonus (else it is a logged statistic)
    logp, entropy = completion_logprobs(policy, batch.ids, batch.attention, batch.positions,
                                        batch.mask, with_entropy=True, temperature=temperature,
                                        chunk_tokens=algo.logprob_chunk_tokens,
                                        entropy_grad=algo.entropy_coef != 0)
    old = logp.detach() if batch.old_logp is None else batch.old_logp
    out = policy_loss(
        logp, old, batch.ref_logp, batch.advantages, batch.mask, batch.group_ids,
        epsilon=algo.epsilon, epsilon_high=algo.epsilon_high, beta=algo.beta,
        kl_estimator=algo.kl_estimator, ratio_level=algo.ratio_level,
        aggregation=algo.aggregation, max_completion_length=max_completion_length,
        token_weights=batch.is_weights, aggregation_weights=weights,
        surrogate=algo.policy_loss, surrogate_options=algo.surrogate_options(),
        entropy=entropy if algo.entropy_coef != 0 else None, entropy_coef=algo.entropy_coef,
        off_policy_mask_delta=algo.off_policy_mask_delta)
    terms = {"loss": out.loss, "surrogate": out.surrogate, "kl": out.kl,
             "clip_low_frac": out.clip_low_frac, "clip_high_frac": out.clip_high_frac,
             "ratio_mean": out.ratio_mean,
             "entropy": entropy.detach().sum() / batch.mask.sum().clamp(min=1),
             "cov_frac": out.cov_frac, "off_policy_masked_frac": out.off_policy_masked_frac}
    return out.loss, {key: float(value.detach()) for key, value in terms.items()}


def join_with_zero_gradient(policy, backward, device) -> None:
    """Backpropagate a zero loss through ``policy``: a rank with nothing to compute still
    joins the other ranks' gradient all-reduce, with zero gradients."""
    ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    backward(policy(input_ids=ids, use_cache=False).logits.sum() * 0.0)


def accumulate_gradients(policy, batch: PolicyBatch | None, algo, *, temperature: float,
                         max_completion_length: int, backprop: Backprop = Backprop(),
                         device=None) -> dict:
    """Backpropagate −J over ``batch`` into ``policy``'s gradients, in micro-batches within
    ``algo.micro_batch_tokens`` (see the module docstring for the weights); returns the loss
    terms.

    With β = 0 and ``algo.skip_zero_advantage`` the groups whose advantages are all zero are
    not computed (``active_rows``): the gradient is unchanged and their passes are saved.
    Every micro-batch but the last runs under ``backprop.no_sync()``, so every rank makes exactly
    one synchronising ``backward`` whatever its number of micro-batches; a rank with nothing to
    compute (``batch`` None: no group left; or every group skipped) makes a zero one.

    The terms are this rank's share of the values over every rank's rows, so that their mean
    over ranks (``reduce_metrics``) is that value: ``ADDITIVE_TERMS`` weighted like the loss,
    ``COMPUTED_ROW_STATS`` by the rank's share of the tokens computed, and
    ``skipped_rows_frac`` the share of rows not computed.

    :param device: where the policy lives (needed when nothing is computed).
    """
    aggregation = AGGREGATIONS[algo.aggregation]
    chunks = [] if batch is None else micro_batches(batch, active_rows(batch, algo), algo)
    units, token_weights = 0.0, None
    if batch is not None:
        valid = batch.mask.bool()
        units = float(aggregation.unit(valid, batch.group_ids, max_completion_length))
        token_weights = aggregation.weights(valid, batch.group_ids, max_completion_length)
    loss_scale = backprop.share(units)
    weights = [loss_scale] * len(chunks)  # each micro-batch's loss is its share already
    tokens = [float(batch.mask[c].bool().sum()) for c in chunks]
    stats_scale = backprop.share(sum(tokens))  # this rank's share of the tokens computed
    if not chunks:
        join_with_zero_gradient(policy, backprop.backward, device)
    chunk_terms = backward_micro_batches(policy, batch, token_weights, chunks, weights, algo,
                                         backprop, temperature=temperature,
                                         max_completion_length=max_completion_length)
    terms = rank_terms(chunk_terms, weights, tokens, stats_scale)
    computed_rows = sum(len(chunk) for chunk in chunks)
    terms["skipped_rows_frac"] = 0.0 if batch is None else \
        (1.0 - computed_rows / len(batch)) * loss_scale
    return terms


def backward_micro_batches(policy, batch: PolicyBatch, token_weights, chunks, weights, algo,
                           backprop: Backprop, **loss_options) -> list[dict]:
    """Backpropagate each micro-batch's loss times its weight; only the last ``backward``
    synchronises the ranks. Returns each micro-batch's loss terms."""
    chunk_terms = []
    for index, (chunk, weight) in enumerate(zip(chunks, weights)):
        with nullcontext() if index == len(chunks) - 1 else backprop.no_sync():
            loss, terms = microbatch_loss(policy, batch.rows(chunk), token_weights[chunk], algo,
                                          **loss_options)
            backprop.backward(loss * weight)
        chunk_terms.append(terms)
    return chunk_terms


def rank_terms(chunk_terms: list[dict], weights: list[float], tokens: list[float],
               stats_scale: float) -> dict:
    """This rank's loss terms from its micro-batches': ``ADDITIVE_TERMS`` weighted like the
    losses they come with, ``COMPUTED_ROW_STATS`` their token mean times ``stats_scale`` (the
    rank's share of every rank's computed tokens)."""
    terms = {key: sum(t[key] * w for t, w in zip(chunk_terms, weights))
             for key in ADDITIVE_TERMS}
    computed = sum(tokens)
    for key in COMPUTED_ROW_STATS:
        token_sum = sum(t[key] * n for t, n in zip(chunk_terms, tokens))
        terms[key] = token_sum * stats_scale / computed if computed else 0.0
    return terms


def combine_updates(updates: list[dict]) -> dict:
    """A step's ``train/*`` metrics from its μ updates' (one dict each, same keys).

    Each term is its mean over the updates: the step's loss is the mean of the μ losses it
    minimised, its clip fractions the mean share of clipped tokens, and so on (the last update
    alone would describe only the policy furthest from π_old). The gradient norm is that mean
    and also its max, ``train/grad_norm_max``: a spike in one update is what clipping acts on,
    and a mean over μ hides it. The learning rate is the last update's: a position on the
    schedule, not a measurement.
    """
    combined = {key: sum(update[key] for update in updates) / len(updates)
                for key in updates[0]}
    combined["train/grad_norm_max"] = max(update["train/grad_norm"] for update in updates)
    combined["train/lr"] = updates[-1]["train/lr"]
    return combined
