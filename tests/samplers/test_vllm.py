"""``sampler=vllm`` on the tiny model: generation layout, EOS/truncation, log-probs, weight sync.

One engine serves the whole module (its start-up is the cost). Every test first loads the
weights it needs into the engine (``load_weights``), so the tests do not depend on their order.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.models.tiny import ensure_tiny_model
from r1kit.samplers.hf import HFSampler
from r1kit.algo.mismatch import logprob_mismatch, sampler_logprob_tensor

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm")

from r1kit.samplers.vllm import VLLMSampler, vllm_sampler  # noqa: E402
from r1kit.api import plugin_options

MAX_NEW_TOKENS = 24
TEMPERATURE = 0.7
CONTEXT = 256  # the tiny model's max_position_embeddings


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return ensure_tiny_model(
        tmp_path_factory.mktemp("tiny"), seed=0, hidden_size=128, num_layers=4, num_heads=4,
        intermediate_size=512, max_position_embeddings=CONTEXT)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)


def load_policy(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def sampler(model_dir, tokenizer):
    s = vllm_sampler(load_policy(model_dir), tokenizer,
                     plugin_options("sampler", "vllm", max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, top_p=1.0, kv_cache_memory_bytes=64 * 2 ** 20))
    yield s
    s.close()


@pytest.fixture
def policy(model_dir, sampler):
    """A fresh policy with the checkpoint's weights, which the engine holds too."""
    model = load_policy(model_dir)
    sampler.load_weights(model)
    return model


@pytest.fixture
def prompts(tokenizer):
    return [tokenizer.encode("12+3="), tokenizer.encode("<think>hello")]


def trainer_logprobs(model, prompts, generation, temperature):
    """The trainer's log-probs of the engine's tokens, and the engine's own, aligned."""
    per_prompt = len(generation.completion_ids) // len(prompts)
    expanded = [p for p in prompts for _ in range(per_prompt)]
    ids, attention, positions, mask = pack(expanded, generation.completion_ids, pad_id=0,
                                           device="cpu")
    with torch.no_grad():
        logp, _ = completion_logprobs(model, ids, attention, positions, mask,
                                      temperature=temperature)
    return sampler_logprob_tensor(generation.logprobs, logp.size(1)), logp, mask


def check_layout(generation, n, eos, budget=MAX_NEW_TOKENS):
    assert len(generation.completion_ids) == len(generation.truncated) == n
    assert len(generation.logprobs) == n
    for tokens, truncated, logprobs in zip(generation.completion_ids, generation.truncated,
                                           generation.logprobs):
        assert 1 <= len(tokens) <= budget
        assert len(logprobs) == len(tokens)
        assert all(lp <= 0 and lp > float("-inf") for lp in logprobs)
        assert eos not in tokens[:-1]  # generation stops at the first EOS, which it keeps
        if truncated:
            assert len(tokens) == budget and tokens[-1] != eos
        else:
            assert tokens[-1] == eos


def test_is_a_sampler_and_runs_in_process(sampler):
    from r1kit.samplers.base import Sampler

    assert isinstance(sampler, VLLMSampler) and isinstance(sampler, Sampler)
    assert sampler.in_process  # sync_weights copies tensors, no IPC
    assert sampler.max_model_len == CONTEXT


def test_generate_layout_truncation_and_logprobs(sampler, policy, prompts, tokenizer):
    rng = torch.get_rng_state()
    generation = sampler.generate(prompts, 3)
    assert torch.equal(torch.get_rng_state(), rng)  # the trainer's RNG stream is untouched
    check_layout(generation, 6, tokenizer.eos_token_id)
    again = sampler.generate(prompts, 3)
    assert again.completion_ids != generation.completion_ids  # fresh seeds on every call
    assert sampler.generate([], 3).completion_ids == []


def test_greedy_is_prompt_major_and_equals_hf(sampler, policy, prompts, tokenizer):
    generation = sampler.generate(prompts, 3, greedy=True)
    check_layout(generation, 6, tokenizer.eos_token_id)
    hf = HFSampler(policy, tokenizer,
                   plugin_options("sampler", "hf", max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE)).generate(prompts, 1, greedy=True)
    first, second = generation.completion_ids[:3], generation.completion_ids[3:]
    assert first == [hf.completion_ids[0]] * 3 and second == [hf.completion_ids[1]] * 3
    assert first[0] != second[0]


def test_eos_ends_a_completion(sampler, model_dir, prompts, tokenizer):
    eos = tokenizer.eos_token_id
    model = load_policy(model_dir)
    with torch.no_grad():  # make EOS likely (tied embeddings: its output logit grows)
        model.model.norm.weight.fill_(1.0)
        model.model.embed_tokens.weight[eos] *= 10
    sampler.load_weights(model)
    generation = sampler.generate(prompts, 8)
    check_layout(generation, 16, eos)
    assert not all(generation.truncated) and any(generation.truncated)
    # the log-probs of sampled tokens are those of the (temperature-scaled) trainer model,
    # EOS included
    engine, trainer, mask = trainer_logprobs(model, prompts, generation, TEMPERATURE)
    assert logprob_mismatch(engine, trainer, mask)["logprob_diff_max"] < 1e-4


def test_budget_stops_at_the_context_length(sampler, policy, tokenizer):
    long_prompt = tokenizer.encode("x" * (CONTEXT - 5))
    generation = sampler.generate([long_prompt], 2)
    check_layout(generation, 2, tokenizer.eos_token_id, budget=5)
    assert [len(c) for c in generation.completion_ids] == [5, 5]


def test_sync_weights_makes_engine_logprobs_match_the_trainer(sampler, policy, prompts,
                                                              tokenizer):
    # a few optimizer steps move the trainer away from the engine's weights
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    batch = torch.tensor([tokenizer.encode("<think>1+1=2</think><answer>2</answer>")])
    for _ in range(3):
        policy(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    policy.eval()

    stale = sampler.generate(prompts, 2)
    before = logprob_mismatch(*trainer_logprobs(policy, prompts, stale, TEMPERATURE))
    assert before["logprob_diff"] > 0.05  # the test can fail: stale weights do not match

    syncs = sampler.weight_syncs
    sampler.sync_weights(policy)
    assert sampler.weight_syncs == syncs + 1

    sampled = sampler.generate(prompts, 2)
    after = logprob_mismatch(*trainer_logprobs(policy, prompts, sampled, TEMPERATURE))
    assert after["logprob_diff"] < 1e-5 and after["logprob_diff_max"] < 1e-4
    assert after["ratio_mean"] == pytest.approx(1.0, abs=1e-5)

    greedy = sampler.generate(prompts, 1, greedy=True)
    hf = HFSampler(policy, tokenizer,
                   plugin_options("sampler", "hf", max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE)).generate(prompts, 1, greedy=True)
    assert greedy.completion_ids == hf.completion_ids
    # greedy log-probs are the untempered model's
    greedy_stats = logprob_mismatch(*trainer_logprobs(policy, prompts, greedy, 1.0))
    assert greedy_stats["logprob_diff_max"] < 1e-4


def test_sync_every_pushes_every_kth_call(sampler, policy, prompts, monkeypatch):
    monkeypatch.setattr(sampler, "sync_every", 2)
    monkeypatch.setattr(sampler, "_sync_calls", 0)
    before = sampler.generate(prompts, 1, greedy=True).completion_ids
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    syncs = sampler.weight_syncs
    sampler.sync_weights(policy)  # 1st call: skipped
    assert sampler.weight_syncs == syncs
    assert sampler.generate(prompts, 1, greedy=True).completion_ids == before
    sampler.sync_weights(policy)  # 2nd call: pushed
    assert sampler.weight_syncs == syncs + 1
    assert sampler.generate(prompts, 1, greedy=True).completion_ids != before
