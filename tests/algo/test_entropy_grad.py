"""The entropy's gradient (algo.entropy_coef): the chunked head's analytic backward against
autograd through the plain log-softmax."""

import pytest
import torch
import torch.nn.functional as F

from r1kit.algo.head_logprobs import head_logprobs

F32 = torch.float32  # the head computes its logits in float32


def plain(hidden, weight, bias, targets, temperature):
    logp_all = F.log_softmax(F.linear(hidden, weight, bias) / temperature, -1)
    logp = logp_all.gather(1, targets[:, None]).squeeze(1)
    return logp, -(logp_all.exp() * logp_all).sum(-1)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_entropy_gradient_matches_autograd(chunk):
    gen = torch.Generator().manual_seed(0)
    n, h, v = 7, 5, 11
    hidden = torch.randn(n, h, generator=gen, dtype=F32, requires_grad=True)
    weight = torch.randn(v, h, generator=gen, dtype=F32, requires_grad=True)
    bias = torch.randn(v, generator=gen, dtype=F32, requires_grad=True)
    targets = torch.randint(0, v, (n,), generator=gen)
    g_logp = torch.randn(n, generator=gen, dtype=F32)
    g_ent = torch.randn(n, generator=gen, dtype=F32)
    logp, ent = head_logprobs(hidden, weight, bias, targets, temperature=0.7, chunk=chunk,
                              with_entropy=True, entropy_grad=True)
    got = torch.autograd.grad((logp * g_logp).sum() + (ent * g_ent).sum(),
                              (hidden, weight, bias))
    ref_logp, ref_ent = plain(hidden, weight, bias, targets, 0.7)
    want = torch.autograd.grad((ref_logp * g_logp).sum() + (ref_ent * g_ent).sum(),
                               (hidden, weight, bias))
    torch.testing.assert_close(ent, ref_ent)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_entropy_without_entropy_grad_has_none():
    hidden = torch.randn(3, 4, dtype=F32, requires_grad=True)
    weight = torch.randn(6, 4, dtype=F32)
    _, ent = head_logprobs(hidden, weight, None, torch.tensor([0, 1, 2]), with_entropy=True)
    assert not ent.requires_grad
