"""A head tied to the input embedding gets one (V, H) gradient buffer (r1kit.algo.tied_embedding):
the gradients equal plain autograd's (padding_idx rows excluded, as ``F.embedding`` does, and
accumulated over micro-batches), the first micro-batch's backward allocates one (V, H) tensor
and later ones none where plain autograd allocates three each, and the handoff steps aside
wherever it cannot share the buffer."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import Qwen2Config, Qwen2ForCausalLM

from r1kit.algo import logprobs as lp
from r1kit.algo.tied_embedding import tied_input_embedding

VOCAB, WIDTH = 5003, 64  # a vocabulary no other dimension shares


def _model(pad_token_id=0):
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=VOCAB, hidden_size=WIDTH, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=128, num_hidden_layers=1, tie_word_embeddings=True,
        pad_token_id=pad_token_id))
    model.set_attn_implementation("sdpa")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    return model


def _micro_batches(pad_token_id):
    gen = torch.Generator().manual_seed(3)
    out = []
    for lengths in ([(3, 9), (2, 4), (4, 1)], [(5, 7), (1, 12)]):
        prompts = [torch.randint(1, VOCAB, (p,), generator=gen).tolist() for p, _ in lengths]
        completions = [torch.randint(1, VOCAB, (c,), generator=gen).tolist()
                       for _, c in lengths]
        # the padding token inside a prompt: F.embedding gives its row no gradient
        prompts[0][1] = pad_token_id
        out.append(lp.pack(prompts, completions, pad_token_id, "cpu"))
    return out


def _accumulated_grads(model, batches, monkeypatch, *, handoff: bool, head: bool = True):
    with monkeypatch.context() as patch:
        if not handoff:
            patch.setattr(lp, "tied_input_embedding", lambda base, weight: None)
        if not head:
            patch.setattr(lp, "HEAD_ARCHITECTURES", set())
        model.zero_grad(set_to_none=True)
        for batch in batches:  # micro-batches accumulate into .grad
            logp, entropy = lp.completion_logprobs(model, *batch, with_entropy=True,
                                                   temperature=0.8, chunk_tokens=8)
            upstream = torch.linspace(-1, 1, logp.numel()).view_as(logp)
            (logp * upstream).sum().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_tied_gradient_equals_plain_autograd_over_accumulated_micro_batches(monkeypatch):
    model = _model(pad_token_id=0)
    batches = _micro_batches(0)
    shared = _accumulated_grads(model, batches, monkeypatch, handoff=True)
    separate = _accumulated_grads(model, batches, monkeypatch, handoff=False)
    full_logits = _accumulated_grads(model, batches, monkeypatch, handoff=False, head=False)
    for name, grad in separate.items():
        scale = float(grad.abs().max())
        torch.testing.assert_close(shared[name], grad, rtol=1e-5, atol=1e-6 * scale, msg=name)
        torch.testing.assert_close(shared[name], full_logits[name], rtol=1e-4,
                                   atol=1e-5 * scale, msg=name)
    embedding = shared["model.embed_tokens.weight"]
    # the padding row is looked up (in the prompt and as packing's fill) and still gets only
    # the head's gradient, as through nn.Embedding(padding_idx=0)
    torch.testing.assert_close(embedding[0], separate["model.embed_tokens.weight"][0])
    assert float(embedding.abs().sum()) > 0


class _CountShapes(TorchDispatchMode):
    def __init__(self, shape):
        super().__init__()
        self.shape, self.count = torch.Size(shape), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        # fresh memory only: in-place ops and views (autograd's detach) return an input's
        inputs = {a.untyped_storage().data_ptr() for a in args if isinstance(a, torch.Tensor)}
        self.count += sum(isinstance(t, torch.Tensor) and t.shape == self.shape
                          and t.untyped_storage().data_ptr() not in inputs for t in outputs)
        return out


# plain autograd: the head's gradient, the embedding's, and their sum, at every micro-batch;
# shared: the first micro-batch's buffer becomes .grad, and later ones add into .grad itself
@pytest.mark.parametrize("handoff, first, later", [(True, 1, 0), (False, 3, 3)])
def test_the_backward_allocates_one_vocabulary_by_width_tensor(monkeypatch, handoff, first,
                                                                later):
    model = _model(pad_token_id=0)
    counts = []
    with monkeypatch.context() as patch:
        if not handoff:
            patch.setattr(lp, "tied_input_embedding", lambda base, weight: None)
        for batch in _micro_batches(0):
            logp, _ = lp.completion_logprobs(model, *batch, chunk_tokens=8)
            with _CountShapes((VOCAB, WIDTH)) as counter:
                logp.sum().backward()
            counts.append(counter.count)
    assert counts == [first, later]


def test_the_handoff_steps_aside_where_it_cannot_share_the_buffer():
    model = _model()
    base, weight = model.model, model.lm_head.weight
    assert tied_input_embedding(base, weight) is base.embed_tokens
    with torch.no_grad():  # a reference or π_old pass: no gradient to share
        assert tied_input_embedding(base, weight) is None
    assert tied_input_embedding(base, torch.nn.Parameter(weight.detach().clone())) is None
    weight.requires_grad_(False)  # a frozen (LoRA base) head
    assert tied_input_embedding(base, weight) is None
    weight.requires_grad_(True)
    base.embed_tokens.max_norm = 1.0  # the lookup renormalises rows: not a plain gather
    assert tied_input_embedding(base, weight) is None
