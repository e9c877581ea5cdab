"""``sampler=hf``'s own decoding loop (r1kit.samplers.kv_decode) samples what ``generate`` would."""

import pytest
import torch
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

from r1kit.samplers import kv_decode
from r1kit.samplers.hf import HFSampler
from r1kit.api import plugin_options

PAD, EOS = 0, 1


def _model(cls, config_cls, **extra):
    config = config_cls(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128,
                        tie_word_embeddings=True, pad_token_id=PAD, eos_token_id=EOS, **extra)
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():  # non-trivial biases and norm weights
        for name, param in model.named_parameters():
            if "bias" in name or "norm" in name:
                param.add_(torch.randn_like(param) * 0.2)
    return model


MODELS = {
    "qwen2": lambda: _model(Qwen2ForCausalLM, Qwen2Config, num_key_value_heads=4),
    "qwen2-gqa": lambda: _model(Qwen2ForCausalLM, Qwen2Config, num_key_value_heads=2),
    "llama-bias": lambda: _model(LlamaForCausalLM, LlamaConfig, num_key_value_heads=2,
                                 attention_bias=True, mlp_bias=True),
    "qwen3": lambda: _model(Qwen3ForCausalLM, Qwen3Config, num_key_value_heads=2, head_dim=16),
    "llama-yarn": lambda: _model(LlamaForCausalLM, LlamaConfig, num_key_value_heads=2,
                                 rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                               "original_max_position_embeddings": 32}),
}


def _left_pad(prompts):
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return ids, mask


# groups of identical prompts (shared prefill), and prompts of different lengths (left padding)
PROMPTS = [p for p in ([5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16], [17]) for _ in range(3)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_greedy_equals_generate_with_eos_stops(name):
    model = MODELS[name]()
    assert kv_decode.supports(model)
    ids, mask = _left_pad(PROMPTS)
    free = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=30,
                          pad_token_id=PAD, eos_token_id=None)[:, ids.shape[1]:]
    # an EOS that some rows emit (at different steps) and others never do: rows finish early
    counts = torch.bincount(free.flatten(), minlength=64)
    rows_with = torch.tensor([(free == t).any(1).sum() for t in range(64)])
    candidates = [t for t in counts.argsort(descending=True).tolist()
                  if 0 < rows_with[t] < len(PROMPTS)]
    eos = candidates[0]
    expected = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                              max_new_tokens=30, pad_token_id=PAD,
                              eos_token_id=eos)[:, ids.shape[1]:]
    got = kv_decode.sample(model, ids, mask, max_new_tokens=30, greedy=True, eos_token_id=eos,
                           pad_token_id=PAD)
    assert torch.equal(got, expected)


def test_first_token_distribution_follows_temperature_and_top_p():
    model = MODELS["qwen2"]()
    prompt = [5, 6, 7]
    logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].double()
    temperature, top_p = 0.7, 0.8
    scores = logits / temperature
    probs = scores.softmax(-1)
    # transformers' top-p rule: drop the smallest tokens whose cumulative mass is <= 1 - top_p
    order = probs.argsort()
    drop = probs[order].cumsum(0) <= 1 - top_p
    drop[-1] = False
    kept = probs.clone()
    kept[order[drop]] = 0
    expected = kept / kept.sum()
    n = 20000
    ids, mask = _left_pad([prompt] * n)
    torch.manual_seed(1)
    first = kv_decode.sample(model, ids, mask, max_new_tokens=1, greedy=False,
                             temperature=temperature, top_p=top_p, eos_token_id=EOS,
                             pad_token_id=PAD)[:, 0]
    freq = torch.bincount(first, minlength=64).double() / n
    assert freq[expected == 0].sum() == 0  # nothing outside the nucleus
    assert (freq - expected).abs().max() < 0.015


def test_sampled_rows_of_a_group_differ_and_end_with_padding_after_eos():
    model = MODELS["qwen2"]()
    ids, mask = _left_pad(PROMPTS)
    torch.manual_seed(0)
    out = kv_decode.sample(model, ids, mask, max_new_tokens=20, greedy=False, eos_token_id=EOS,
                           pad_token_id=PAD)
    assert len({tuple(row) for row in out.tolist()}) == len(PROMPTS)
    for row in out.tolist():
        if EOS in row:
            assert set(row[row.index(EOS) + 1:]) <= {PAD}


def test_unsupported_models_and_generation_configs_fall_back():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2))
    assert not kv_decode.supports(gpt2)
    model = MODELS["qwen2"]()
    model.generation_config.repetition_penalty = 1.1  # a logits processor we do not replicate
    assert not kv_decode.supports(model)
    sliding = _model(Qwen2ForCausalLM, Qwen2Config, use_sliding_window=True, sliding_window=4,
                     max_window_layers=0)
    assert not kv_decode.supports(sliding)


class _Tok:
    pad_token_id, eos_token_id = PAD, EOS


def test_hf_sampler_same_completions_and_flags_with_and_without_fast_decode():
    model = MODELS["qwen2-gqa"]()
    prompts = [[5, 6, 7, 8], [9, 10]]
    out = {}
    for fast in (True, False):
        sampler = HFSampler(model, _Tok(),
                            plugin_options("sampler", "hf", max_new_tokens=12, temperature=1.0, fast_decode=fast))
        out[fast] = sampler.generate(prompts, 3, greedy=True)
    assert out[True].completion_ids == out[False].completion_ids
    assert out[True].truncated == out[False].truncated
    sampler = HFSampler(model, _Tok(),
                        plugin_options("sampler", "hf", max_new_tokens=500, temperature=1.0))
    gen = sampler.generate([[5] * 120], 2)  # 128 positions: at most 8 new tokens fit
    assert all(len(c) <= 8 for c in gen.completion_ids)


@pytest.mark.parametrize("name", ["qwen2-gqa", "llama-bias"])
def test_reported_logprobs_are_the_policy_logprobs_the_trainer_computes(name):
    """π_old straight from the sampler: each sampled token's log-prob equals the trainer's
    ``completion_logprobs`` (temperature-scaled, before top-p) on the same completions."""
    from r1kit.algo.logprobs import completion_logprobs, pack

    model = MODELS[name]()
    prompts = [[5, 6, 7, 8], [9, 10, 11]]
    sampler = HFSampler(model, _Tok(),
                        plugin_options("sampler", "hf", max_new_tokens=16, temperature=0.7, top_p=0.9))
    assert sampler.generate(prompts, 2).logprobs is None  # only computed when asked for
    sampler.report_logprobs = True
    torch.manual_seed(0)
    gen = sampler.generate(prompts, 3)
    assert gen.logprobs_exact
    assert [len(lp) for lp in gen.logprobs] == [len(c) for c in gen.completion_ids]
    expanded = [p for p in prompts for _ in range(3)]
    ids, attention, positions, mask = pack(expanded, gen.completion_ids, PAD, "cpu")
    with torch.no_grad():
        expected, _ = completion_logprobs(model, ids, attention, positions, mask,
                                          temperature=0.7)
    for row, lp in enumerate(gen.logprobs):
        torch.testing.assert_close(torch.tensor(lp), expected[row, : len(lp)],
                                   rtol=0, atol=2e-5)
    assert expected[mask.bool()].min() < -0.05  # not trivially near-certain tokens
    # generate() has no per-token log-probs: the fallback reports none
    sampler.fast_decode = False
    fallback = sampler.generate(prompts, 2)
    assert fallback.logprobs is None and not fallback.logprobs_exact


def test_under_autocast_weights_are_cast_once_and_logits_stay_close():
    """Mixed precision: the loop runs its matmuls in autocast's dtype from weights cast once
    per call (autocast itself is off inside the loop), the residual stream in float32."""
    model = MODELS["qwen2-gqa"]()
    cast = kv_decode._Weights(model, torch.bfloat16)
    assert cast.layers[0]["qkv"].dtype == torch.bfloat16 and cast.lm_head.dtype == torch.bfloat16
    assert cast.embed.dtype == torch.float32 and cast.layers[0]["ln1"][0].dtype == torch.float32
    ids, mask = _left_pad(PROMPTS)
    common = dict(max_new_tokens=12, greedy=True, eos_token_id=None, pad_token_id=PAD,
                  return_logprobs=True)
    tokens, full = kv_decode.sample(model, ids, mask, **common)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed_tokens, mixed = kv_decode.sample(model, ids, mask, **common)
    same = (mixed_tokens == tokens).all(dim=1)
    assert same.float().mean() >= 0.75  # bf16 rounding may flip a near-tie argmax
    diff = (mixed - full)[same].abs()
    assert 1e-5 < diff.max() < 0.1  # bf16 matmuls were used, and stayed close
