"""The chunked output-head log-probs (``head_logprobs``, and ``completion_logprobs`` through it)
equal the plain full-vocabulary computation: log-probs, entropies and gradients (into the hidden
states, the head weight tied or not, its bias, every decoder weight), at temperature ≠ 1, with
padding and a masked row, on models of real shapes (the real 151,936- and 128,256-token
vocabularies, one decoder layer, random weights); and no ``(tokens, vocab)`` tensor is kept for
the backward."""

import pytest
import torch
import torch.nn.functional as F
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

from r1kit.algo import logprobs as lp
from r1kit.algo.head_logprobs import head_logprobs

QWEN_VOCAB, LLAMA_VOCAB = 151936, 128256


def _plain(hidden, weight, bias, targets, temperature):
    logp_all = F.log_softmax(F.linear(hidden, weight, bias).float() / temperature, dim=-1)
    logp = logp_all.gather(1, targets[:, None]).squeeze(1)
    return logp, -(logp_all.exp() * logp_all).sum(-1).detach()


def _grads(tensors):
    out = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out


def test_head_logprobs_equal_the_plain_computation_at_the_real_vocabulary():
    gen = torch.Generator().manual_seed(0)
    n, width = 72, 896  # 3 chunks of 32, the last one ragged
    hidden = torch.randn(n, width, generator=gen).requires_grad_()
    weight = (0.05 * torch.randn(QWEN_VOCAB, width, generator=gen)).requires_grad_()
    bias = torch.randn(QWEN_VOCAB, generator=gen).requires_grad_()
    targets = torch.randint(0, QWEN_VOCAB, (n,), generator=gen)
    upstream = torch.randn(n, generator=gen)
    leaves = [hidden, weight, bias]

    logp, entropy = head_logprobs(hidden, weight, bias, targets, temperature=0.7, chunk=32,
                                  with_entropy=True)
    (logp * upstream).sum().backward()
    chunked = _grads(leaves)
    plain_logp, plain_entropy = _plain(hidden, weight, bias, targets, 0.7)
    (plain_logp * upstream).sum().backward()
    plain = _grads(leaves)

    torch.testing.assert_close(logp, plain_logp, rtol=0, atol=2e-5)
    torch.testing.assert_close(entropy, plain_entropy, rtol=1e-5, atol=1e-4)
    assert not entropy.requires_grad
    for name, a, b in zip(("hidden", "weight", "bias"), chunked, plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)

    # a frozen head (the reference model, LoRA's base): no weight gradient is computed
    weight.requires_grad_(False)
    logp, none = head_logprobs(hidden, weight, None, targets, chunk=1000)
    assert none is None
    logp.sum().backward()
    assert weight.grad is None and hidden.grad is not None


def test_under_bf16_autocast_the_head_computes_as_the_plain_lm_head_does():
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(40, 64, generator=gen).requires_grad_()
    weight = (0.1 * torch.randn(1000, 64, generator=gen)).requires_grad_()
    targets = torch.randint(0, 1000, (40,), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, _ = head_logprobs(hidden, weight, None, targets, temperature=1.3, chunk=16)
        plain, _ = _plain(hidden, weight, None, targets, 1.3)
    logp.sum().backward()
    chunked = _grads([hidden, weight])
    plain.sum().backward()
    reference = _grads([hidden, weight])
    assert chunked[0].dtype == torch.float32 and chunked[1].dtype == torch.float32
    # the same bf16 logits, cast to float: equal up to the summation order
    torch.testing.assert_close(logp, plain, rtol=0, atol=1e-5)
    for a, b in zip(chunked, reference):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)


# ----------------------------------------------------------------- through completion_logprobs
def _qwen2(tied):  # Qwen2.5-0.5B's shape, one layer
    return Qwen2ForCausalLM(Qwen2Config(
        vocab_size=QWEN_VOCAB, hidden_size=896, num_attention_heads=14, num_key_value_heads=2,
        intermediate_size=4864, num_hidden_layers=1, tie_word_embeddings=tied,
        max_position_embeddings=512, rope_theta=1e6, use_sliding_window=False))


def _qwen3():  # Qwen3-0.6B's shape (q/k norms, head_dim 128), one layer
    return Qwen3ForCausalLM(Qwen3Config(
        vocab_size=QWEN_VOCAB, hidden_size=1024, num_attention_heads=16, num_key_value_heads=8,
        head_dim=128, intermediate_size=3072, num_hidden_layers=1, tie_word_embeddings=True,
        max_position_embeddings=512, rope_theta=1e6))


def _llama3():  # Llama-3's vocabulary and 4:1 GQA, narrower than 8B's 4,096 (a quick test)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=LLAMA_VOCAB, hidden_size=512, num_attention_heads=8, num_key_value_heads=2,
        intermediate_size=1792, num_hidden_layers=1, tie_word_embeddings=False,
        max_position_embeddings=512, rope_theta=5e5))


def _batch(vocab):
    gen = torch.Generator().manual_seed(2)
    lengths = [(3, 12), (4, 4), (3, 16), (2, 1), (3, 6)]  # (prompt, completion)
    prompts = [torch.randint(1, vocab, (p,), generator=gen).tolist() for p, _ in lengths]
    completions = [torch.randint(1, vocab, (c,), generator=gen).tolist() for _, c in lengths]
    ids, attention, positions, mask = lp.pack(prompts, completions, 0, "cpu")
    mask[3] = 0  # a completion a filter removed from the loss
    return ids, attention, positions, mask


def _run(model, batch, head: bool):
    saved = lp.HEAD_ARCHITECTURES
    lp.HEAD_ARCHITECTURES = saved if head else set()
    try:
        model.zero_grad(set_to_none=True)
        logp, entropy = lp.completion_logprobs(model, *batch, with_entropy=True,
                                               temperature=0.7, chunk_tokens=16)
        upstream = torch.linspace(-1, 1, logp.numel()).view_as(logp)
        (logp * upstream).sum().backward()
        return logp.detach(), entropy, {n: p.grad.clone() for n, p in model.named_parameters()}
    finally:
        lp.HEAD_ARCHITECTURES = saved


def _check_against_plain(model):
    batch = _batch(model.config.vocab_size)
    assert lp._output_head(model) is not None
    head, plain = _run(model, batch, True), _run(model, batch, False)
    mask = batch[3]
    torch.testing.assert_close(head[0], plain[0], rtol=0, atol=2e-5)
    torch.testing.assert_close(head[1], plain[1], rtol=1e-5, atol=1e-4)
    assert torch.equal(head[0][mask == 0], torch.zeros(int((mask == 0).sum())))
    for name, grad in plain[2].items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(head[2][name], grad, rtol=1e-4, atol=1e-5 * scale, msg=name)
    assert float(head[2]["model.embed_tokens.weight"].abs().sum()) > 0


@pytest.fixture(scope="module")
def qwen2():
    torch.manual_seed(0)
    model = _qwen2(tied=True)
    model.set_attn_implementation("sdpa")
    return model


def test_qwen2_tied_head_equals_the_plain_path(qwen2):
    assert qwen2.lm_head.weight is qwen2.model.embed_tokens.weight
    _check_against_plain(qwen2)


def test_qwen2_untied_head_equals_the_plain_path(qwen2):
    # the same model with a head of its own (building a second 0.5B-shaped model costs more
    # than the test): the head and the embedding get separate gradients
    tied = qwen2.lm_head
    untied = torch.nn.Linear(896, QWEN_VOCAB, bias=False)
    with torch.no_grad():
        untied.weight.copy_(tied.weight.roll(1, dims=0))
    qwen2.lm_head = untied
    try:
        _check_against_plain(qwen2)
    finally:
        qwen2.lm_head = tied


@pytest.mark.parametrize("build", [_qwen3, _llama3], ids=["qwen3-tied", "llama3-untied"])
def test_other_architectures_equal_the_plain_path(build):
    torch.manual_seed(0)
    model = build()
    model.set_attn_implementation("sdpa")
    _check_against_plain(model)


def test_no_tokens_by_vocabulary_tensor_is_kept_for_the_backward():
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=20000, hidden_size=64, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=128, num_hidden_layers=1, tie_word_embeddings=True))
    batch = _batch(20000)
    tokens = int(batch[3].sum())
    largest = []

    def pack_hook(tensor):
        largest.append(tensor.numel())
        return tensor

    for head in (True, False):
        largest.clear()
        saved = lp.HEAD_ARCHITECTURES
        lp.HEAD_ARCHITECTURES = saved if head else set()
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
                lp.completion_logprobs(model, *batch, with_entropy=True, chunk_tokens=8)
        finally:
            lp.HEAD_ARCHITECTURES = saved
        if head:  # the largest saved tensor is the head weight itself (no new memory)
            assert max(largest) == 20000 * 64
        else:  # the plain path keeps (tokens, vocab) log-softmax values
            assert max(largest) >= tokens * 20000


def test_architectures_with_other_heads_take_the_plain_path():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2))
    assert lp._output_head(gpt2) is None
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=32, num_attention_heads=2,
                                        num_key_value_heads=2, intermediate_size=64,
                                        num_hidden_layers=1))
    assert lp._output_head(qwen) is not None
    qwen.lm_head = torch.nn.Sequential(qwen.lm_head)  # e.g. a wrapped (LoRA) head
    assert lp._output_head(qwen) is None
