"""The pieces that fill a GRPO step's PolicyBatch: row selection, micro-batches, where π_old
comes from, the reference log-probs computed while scoring, the engine-sampler correction."""


import pytest
import torch

from r1kit.rollout.batch import Rollout
from r1kit.samplers.base import SamplerCapabilities
from r1kit.stages.grpo.batch import (BEHAVIOUR_SOURCE, PolicyBatch, active_rows,
                                       behaviour_source, correction_weights, micro_batches,
                                       padded_reference, sampler_logprobs_kind, token_layout)
from r1kit.config.schema import AlgoConfig


def _rollout(sampler_logprobs=None, exact=False) -> Rollout:
    return Rollout(examples=[{}] * 4, prompts=["p"] * 4, completions=["c"] * 4,
                   prompt_ids=[[5, 6]] * 2 + [[7]] * 2, completion_ids=[[8], [8, 9], [9], []],
                   group_ids=torch.tensor([0, 0, 1, 1]), truncated=torch.zeros(4, dtype=bool),
                   sampler_logprobs=sampler_logprobs, sampler_logprobs_exact=exact)


@pytest.mark.parametrize("logprobs, exact, autocast, kind", [
    (None, False, False, "none"),
    ([[-1.0]] * 4, True, False, "exact"),
    # an in-process sampler under autocast no longer computes what the trainer's forward does
    ([[-1.0]] * 4, True, True, "none"),
    ([[-1.0]] * 4, False, False, "engine"),
    ([[-1.0]] * 4, False, True, "engine"),
])
def test_what_the_sampler_logprobs_are_to_the_trainer(logprobs, exact, autocast, kind):
    assert sampler_logprobs_kind(_rollout(logprobs, exact), autocast=autocast) == kind


@pytest.mark.parametrize("iterations, kind, source", [
    (1, "none", "current"),  # μ = 1: the update's own detached log-probs, no extra pass
    (1, "exact", "current"),
    (1, "engine", "forward"),  # an engine's log-probs are compared with the trainer's
    (2, "none", "forward"),  # the policy moves between the μ updates: π_old is kept
    (2, "exact", "sampler"),  # ...taken from the sampler when they are the policy's own
    (4, "engine", "forward"),
])
def test_where_pi_old_comes_from(iterations, kind, source):
    assert behaviour_source(iterations, kind) == source


def test_every_case_of_the_pi_old_table_is_a_known_source():
    assert {(mu, kind) for mu in (False, True) for kind in ("none", "exact", "engine")} == \
        set(BEHAVIOUR_SOURCE)
    assert set(BEHAVIOUR_SOURCE.values()) == {"current", "sampler", "forward"}


def _batch(advantages, mask=None) -> PolicyBatch:
    n = len(advantages)
    mask = torch.ones(n, 3) if mask is None else mask
    return PolicyBatch(ids=torch.zeros(n, 5, dtype=torch.long), attention=torch.ones(n, 5),
                       positions=torch.zeros(n, 3, dtype=torch.long), mask=mask,
                       group_ids=torch.tensor([0, 0, 1, 1, 2, 2]),
                       advantages=torch.tensor(advantages))


def test_zero_advantage_groups_are_left_out_only_without_kl():
    batch = _batch([0.0, 0.0, 1.0, -1.0, 0.0, 0.5])
    skip = AlgoConfig(beta=0.0, skip_zero_advantage=True)
    assert active_rows(batch, skip).tolist() == [2, 3, 4, 5]
    for algo in (AlgoConfig(beta=0.04, skip_zero_advantage=True),
                 AlgoConfig(beta=0.0, skip_zero_advantage=False)):
        assert active_rows(batch, algo).tolist() == list(range(6))


def test_micro_batches_pack_the_given_rows_longest_first_within_the_token_budget():
    # rows 0..5 of lengths 2+1, 2+2, 1+1, 1+0 (prompt + completion), row 4 and 5 longer
    batch = token_layout(Rollout(
        examples=[{}] * 6, prompts=["p"] * 6, completions=["c"] * 6,
        prompt_ids=[[5, 6]] * 2 + [[7]] * 2 + [[5, 6, 7]] * 2,
        completion_ids=[[8], [8, 9], [9], [], [8, 9, 9], [9]],
        group_ids=torch.tensor([0, 0, 1, 1, 2, 2]), truncated=torch.zeros(6, dtype=bool)),
        0, "cpu")
    rows = torch.tensor([0, 1, 2, 3, 4])  # row 5 not computed
    lengths = batch.attention.sum(1).tolist()
    assert lengths == [3, 4, 2, 1, 6, 4]
    algo = AlgoConfig(micro_batch_tokens=8, micro_batch_size=16)
    chunks = [c.tolist() for c in micro_batches(batch, rows, algo)]
    # longest first; rows × longest row ≤ 8; group 0 (rows 0, 1) spans two micro-batches
    assert chunks == [[4], [1, 0], [2, 3]]
    for chunk in chunks:
        assert len(chunk) * max(lengths[i] for i in chunk) <= 8
    # a row over the budget is a pass of its own; the row cap still applies
    assert [c.tolist() for c in micro_batches(batch, rows, AlgoConfig(micro_batch_tokens=5))] \
        == [[4], [1], [0], [2, 3]]
    assert [c.tolist() for c in micro_batches(
        batch, rows, AlgoConfig(micro_batch_tokens=None, micro_batch_size=2))] == \
        [[4, 1], [0, 2], [3]]


def test_rows_slice_every_tensor_and_keep_absent_ones_absent():
    batch = _batch([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    batch.old_logp = torch.arange(18.0).view(6, 3)
    part = batch.rows(torch.tensor([4, 1]))
    assert part.advantages.tolist() == [4.0, 1.0] and part.group_ids.tolist() == [2, 0]
    assert part.old_logp.tolist() == [[12.0, 13.0, 14.0], [3.0, 4.0, 5.0]]
    assert part.ref_logp is None and part.is_weights is None and len(part) == 2


def test_reference_computed_while_scoring_is_laid_out_like_the_batch():
    batch = token_layout(_rollout(), pad_id=0, device="cpu")
    assert batch.mask.tolist() == [[1, 0], [1, 1], [1, 0], [0, 0]]
    ref = padded_reference([torch.tensor([-1.0]), torch.tensor([-2.0, -3.0]),
                            torch.tensor([-4.0]), torch.tensor([])], batch.mask)
    assert ref.tolist() == [[-1.0, 0.0], [-2.0, -3.0], [-4.0, 0.0], [0.0, 0.0]]


def test_importance_weights_only_where_the_sampler_asks_for_them():
    sampled = torch.tensor([[-1.0, -2.0], [-1.0, -0.5]])
    old = torch.tensor([[-0.5, -2.5], [-1.0, 3.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert correction_weights(SamplerCapabilities(), sampled, old, mask) is None
    tis = SamplerCapabilities(importance_correction="tis", importance_cap=1.5)
    weights = correction_weights(tis, sampled, old, mask)
    # min(π_old / π_sampler, cap) per token, 0 at padding
    expected = torch.tensor([[1.5, torch.exp(torch.tensor(-0.5))], [1.0, 0.0]])
    torch.testing.assert_close(weights, expected)
