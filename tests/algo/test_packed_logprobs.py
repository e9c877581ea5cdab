"""completion_logprobs packs padded rows together (no compute on padding) without changing the
log-probs, entropies or gradients."""

import random

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

from r1kit.algo import logprobs as lp


def _qwen2():
    config = Qwen2Config(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=128,
                         max_position_embeddings=256, pad_token_id=0)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config)


def _rollout(lengths):
    rng = random.Random(0)
    prompts = [[rng.randint(3, 49) for _ in range(rng.randint(2, 6))] for _ in lengths]
    completions = [[rng.randint(3, 49) for _ in range(n)] for n in lengths]
    return lp.pack(prompts, completions, 0, "cpu")


def _run(model, batch, packable):
    saved = lp.PACKABLE_ARCHITECTURES
    lp.PACKABLE_ARCHITECTURES = saved if packable else set()
    try:
        model.zero_grad()
        logp, entropy = lp.completion_logprobs(model, *batch, with_entropy=True, temperature=0.8)
        (logp * torch.linspace(-1, 1, logp.numel()).view_as(logp)).sum().backward()
        return logp.detach(), entropy, {n: p.grad.clone() for n, p in model.named_parameters()}
    finally:
        lp.PACKABLE_ARCHITECTURES = saved


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_equals_padded_logprobs_entropy_and_gradients(attention):
    model = _qwen2()
    model.set_attn_implementation(attention)
    batch = _rollout([1, 40, 3, 40, 12, 25, 7, 40, 2, 30])
    rows = lp._packing(model, batch[1])[0]
    assert rows < 10  # packing does happen here
    packed, padded = _run(model, batch, True), _run(model, batch, False)
    torch.testing.assert_close(packed[0], padded[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(packed[1], padded[1], rtol=0, atol=1e-5)
    for name, grad in padded[2].items():
        torch.testing.assert_close(packed[2][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_no_packing_when_it_saves_nothing_or_the_model_cannot():
    model = _qwen2()
    full = _rollout([40, 40, 40])
    assert lp._packing(model, full[1]) is None
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2))
    assert lp._packing(gpt2, _rollout([1, 40, 3])[1]) is None


@pytest.mark.parametrize("lengths", [[5], [1, 1, 1, 1], [60, 1, 59, 2, 30, 31]])
def test_packed_positions_restart_for_every_sequence(lengths):
    model = _qwen2()
    ids, attention, _, _ = _rollout(lengths)
    layout = lp._packing(model, attention)
    if layout is None:
        return
    rows, sizes, starts, positions = layout
    width = attention.size(1)
    for start, n in zip(starts, sizes):
        row, col = divmod(start, width)
        assert positions[row, col: col + n].tolist() == list(range(n))
