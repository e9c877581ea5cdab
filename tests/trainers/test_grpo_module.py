"""GRPOModule's own pieces, without a Trainer: the PolicyBatch it builds for each sampler
(where π_old comes from, how many forward passes that takes, the engine mismatch and TIS), the
skipped-step limit, and what its checkpoints carry."""

import random
from types import SimpleNamespace

import pytest
import torch

from r1kit.data.stream import PromptStream
from r1kit.models.tiny import build_model, build_tokenizer
from r1kit.rollout.batch import Rollout
from r1kit.samplers.base import SamplerCapabilities
from r1kit.algo.mismatch import importance_weights
from r1kit.stages.module_common import ResumeState
from r1kit.stages.grpo.module import GRPOModule, NothingToLearnError, SkippedSteps
from r1kit.config.schema import AlgoConfig

TOKENIZER = build_tokenizer()
MODEL = build_model(TOKENIZER, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                    max_position_embeddings=64, seed=0)


class _Sampler:
    def __init__(self, capabilities):
        self.capabilities, self.requested = capabilities, None

    def request_logprobs(self, wanted):
        self.requested = wanted


def _module(iterations=1, beta=0.0, capabilities=SamplerCapabilities()):
    cfg = SimpleNamespace(
        algo=AlgoConfig(iterations=iterations, beta=beta, max_skipped_steps=3,
                        micro_batch_size=4, skip_zero_advantage=True),
        sampler=SimpleNamespace(temperature=1.0, max_new_tokens=8),
        data=SimpleNamespace(batch_size=2), model=SimpleNamespace(attn_implementation=None),
        optim=SimpleNamespace())
    collector = SimpleNamespace(sampler=_Sampler(capabilities), filters=[])
    return GRPOModule(policy=MODEL, reference=None, tokenizer=TOKENIZER, collector=collector,
                      stream=None, advantage=(None, {}), cfg=cfg)


def _rollout(sampler_logprobs=None, exact=False) -> Rollout:
    completions = [[10, 11, 12], [13, 14], [15], [16, 17]]
    return Rollout(examples=[{}] * 4, prompts=["p"] * 4, completions=["c"] * 4,
                   prompt_ids=[[20, 21]] * 4, completion_ids=completions,
                   group_ids=torch.tensor([0, 0, 1, 1]), truncated=torch.zeros(4, dtype=bool),
                   sampler_logprobs=sampler_logprobs, sampler_logprobs_exact=exact)


SAMPLED = [[-1.0, -2.0, -0.5], [-0.25, -3.0], [-1.5], [-0.125, -0.75]]  # exact in float32
ADVANTAGES = torch.tensor([1.0, -1.0, 0.0, 0.0])  # group 1 has nothing to learn at β = 0


def _policy_batch(module, rollout, monkeypatch):
    passes = []
    original = GRPOModule._logprobs

    def counting(self, model, batch, rows=None):
        passes.append(None if rows is None else rows.tolist())
        return original(self, model, batch, rows)

    monkeypatch.setattr(GRPOModule, "_logprobs", counting)
    batch, mismatch = module._policy_batch(rollout, ADVANTAGES)
    return batch, mismatch, passes


def test_mu_one_takes_pi_old_from_the_update_itself(monkeypatch):
    batch, mismatch, passes = _policy_batch(_module(), _rollout(), monkeypatch)
    assert batch.old_logp is None and passes == [] and mismatch == {}


def test_mu_above_one_takes_exact_sampler_logprobs_without_a_pass(monkeypatch):
    module = _module(iterations=2, capabilities=SamplerCapabilities(exact_logprobs=True))
    assert module.collector.sampler.requested is True  # asked for them up front
    batch, mismatch, passes = _policy_batch(module, _rollout(SAMPLED, exact=True), monkeypatch)
    assert passes == [] and mismatch == {}
    assert batch.old_logp.tolist() == [[-1.0, -2.0, -0.5], [-0.25, -3.0, 0.0],
                                       [-1.5, 0.0, 0.0], [-0.125, -0.75, 0.0]]


def test_mu_above_one_runs_one_pass_over_the_rows_the_updates_compute(monkeypatch):
    batch, _, passes = _policy_batch(_module(iterations=2), _rollout(), monkeypatch)
    assert passes == [[0, 1]]  # β = 0: the zero-advantage group needs no π_old
    assert float(batch.old_logp[:2].min()) < 0 and float(batch.old_logp[2:].abs().sum()) == 0


def test_exact_logprobs_under_autocast_are_recomputed(monkeypatch):
    module = _module(iterations=2, capabilities=SamplerCapabilities(exact_logprobs=True))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batch, _, passes = _policy_batch(module, _rollout(SAMPLED, exact=True), monkeypatch)
    assert passes == [[0, 1]] and batch.old_logp is not None


@pytest.mark.parametrize("correction", ["none", "tis"])
def test_an_engine_sampler_is_compared_on_every_row_and_corrected_with_tis(monkeypatch,
                                                                           correction):
    capabilities = SamplerCapabilities(importance_correction=correction, importance_cap=1.5)
    module = _module(capabilities=capabilities)
    batch, mismatch, passes = _policy_batch(module, _rollout(SAMPLED), monkeypatch)
    assert passes == [None]  # every row, even at μ = 1 and for zero-advantage groups
    assert set(mismatch) == {"sampler/logprob_diff", "sampler/logprob_diff_max",
                             "sampler/ratio_mean", "sampler/kl", "sampler/is_masked_frac"}
    assert mismatch["sampler/is_masked_frac"] == 0.0  # none and tis drop no token
    assert mismatch["sampler/logprob_diff"] > 0
    if correction == "none":
        assert batch.is_weights is None
    else:
        sampled = torch.where(batch.mask != 0, torch.tensor(
            [row + [0.0] * (3 - len(row)) for row in SAMPLED]), 0.0)
        torch.testing.assert_close(batch.is_weights, importance_weights(
            sampled, batch.old_logp, batch.mask, cap=1.5))


def test_loss_weights_mask_completions_out_of_the_loss(monkeypatch):
    rollout = _rollout().replace(loss_weights=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    batch, _, _ = _policy_batch(_module(), rollout, monkeypatch)
    assert batch.mask.tolist() == [[1, 1, 1], [0, 0, 0], [1, 0, 0], [1, 1, 0]]


def test_skipped_steps_stop_the_run_only_in_a_row():
    steps = SkippedSteps(limit=2, filters=["zero_variance"])
    steps.record(True, {})
    steps.record(False, {})  # a step that learned resets the count
    steps.record(True, {})
    with pytest.raises(NothingToLearnError, match=r"2 training steps in a row.*zero_variance"):
        steps.record(True, {"rollout/sampled_groups": 8})


def test_checkpoints_carry_the_rng_and_the_stream_position():
    stream = PromptStream([{"i": i} for i in range(10)], seed=0)
    state = ResumeState(stream)
    stream.take(3)
    checkpoint = {}
    state.save(checkpoint)
    expected = (torch.rand(2).tolist(), random.random(), stream.take(2))
    stream.take(4)
    state.load(checkpoint, rank=0, world_size=1)
    assert (torch.rand(2).tolist(), random.random(), stream.take(2)) == expected
    state.load({}, rank=0, world_size=1)  # another tool's checkpoint: nothing to restore
