"""The output projection's log-prob of given tokens (and the distribution's entropy) without
ever holding the full-vocabulary logits of more than a chunk of tokens.

``log π(y_n) = z_n[y_n] − logsumexp(z_n)`` with ``z_n = (h_n Wᵀ + b) / T``. Over a 151,936-token
vocabulary the plain computation materialises ``(tokens, V)`` float logits, their log-softmax
and (for the entropy) their exponential, each ~0.6 GB per 1,000 tokens, and autograd keeps the
log-softmax for the backward. Here the tokens go through the head ``chunk`` at a time: each
chunk's logits are reduced to the target log-prob, the log-normaliser and the entropy before
the next chunk is computed, and the backward recomputes each chunk's logits from the saved
hidden states (one extra ``h Wᵀ`` matmul per chunk) instead of keeping them, so the memory is
``chunk × V`` whatever the number of tokens.

The arithmetic is the plain path's: the head runs in the dtype the plain ``lm_head`` would
(the weight's, or autocast's), the logits are cast to float32 and divided by the temperature,
and the gradient reaching the head is cast back to that dtype before its two matmuls (what
autograd does through ``.float()`` and ``nn.Linear``). Only the summation order differs
(per-chunk matmuls, ``logsumexp`` instead of ``log_softmax``): float rounding.

liger-kernel (0.8.5, evaluated for this) has a similar chunked selective log-prob, but as a
private helper of its fused GRPO loss (pure PyTorch; its Triton kernels need a GPU), without
the entropy, and the fused loss computes its own objective rather than r1kit's tables; hence
this small function of our own, tested against the plain computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype ``lm_head(hidden)`` computes in: autocast's where it is on, else the
    weight's (``nn.Linear`` requires hidden states of the same dtype)."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def _logits(hidden: Tensor, weight: Tensor, bias: Tensor | None, temperature: float) -> Tensor:
    """float32 ``(h Wᵀ + b) / T`` of one chunk, a fresh tensor (safe to modify in place)."""
    z = F.linear(hidden, weight, bias).float()
    if z.dtype == hidden.dtype:  # .float() of float32 is the same tensor: divide in place
        return z.div_(temperature)
    return z / temperature


class HeadLogprobs(torch.autograd.Function):
    """``(logp (n,), entropy (n,))`` of ``targets`` under ``softmax((h Wᵀ + b) / T)``, chunked.

    The entropy carries no gradient unless ``entropy_grad`` (an entropy bonus in the loss:
    ``∂H/∂z = −p ⊙ (log p + H)``, one more ``chunk × V`` buffer in the backward); otherwise it
    is a logged statistic, as in the plain path. It is only computed when asked for (else an
    empty tensor).
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                temperature: float, chunk: int, with_entropy: bool, entropy_grad: bool = False,
                handoff=None):
        dtype = _compute_dtype(hidden, weight)
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            n = h.size(0)
            logp = torch.empty(n, dtype=torch.float32, device=h.device)
            lse = torch.empty(n, dtype=torch.float32, device=h.device)
            entropy = torch.empty(n if with_entropy else 0, dtype=torch.float32,
                                  device=h.device)
            for start in range(0, n, chunk):
                end = min(start + chunk, n)
                z = _logits(h[start:end], w, b, temperature)
                norm = torch.logsumexp(z, dim=-1)
                lse[start:end] = norm
                logp[start:end] = z.gather(1, targets[start:end, None]).squeeze(1) - norm
                if with_entropy:
                    z.sub_(norm[:, None])  # log p, in place
                    # −Σ p log p with one more (chunk, V) buffer (p, then p log p in place);
                    # a sum, not a BLAS dot product, whose float32 accumulation over 150k
                    # terms was 40x less accurate
                    entropy[start:end] = -z.exp().mul_(z).sum(-1)
                del z
        ctx.entropy_grad = entropy_grad and with_entropy
        ctx.save_for_backward(hidden, weight, bias, targets, lse,
                              entropy if ctx.entropy_grad else None)
        ctx.temperature, ctx.chunk, ctx.dtype = temperature, chunk, dtype
        ctx.handoff = handoff
        if not ctx.entropy_grad:
            ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp: Tensor, grad_entropy: Tensor | None):
        hidden, weight, bias, targets, lse, entropy = ctx.saved_tensors
        g_h = grad_entropy.float() if ctx.entropy_grad and grad_entropy is not None else None
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        dtype, temperature = ctx.dtype, ctx.temperature
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            grad_h = torch.empty_like(h) if need_h else None
            # accumulated over chunks in float32, whatever the head's dtype, so that chunking
            # adds no rounding of its own to the (V, H) gradient
            grad_w = None
            if need_w and ctx.handoff is not None:  # a tied weight's .grad, added into
                grad_w = ctx.handoff.existing_grad(dtype)
            if need_w and grad_w is None:
                grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
            grad_b = torch.zeros(w.size(0), dtype=torch.float32, device=w.device) \
                if need_b and b is not None else None
            g = grad_logp.float()
            for start in range(0, h.size(0), ctx.chunk):
                end = min(start + ctx.chunk, h.size(0))
                rows = torch.arange(end - start, device=h.device)
                # ∂logp/∂z = onehot(y) − softmax(z), built in place in the recomputed logits
                dz = _logits(h[start:end], w, b, temperature)
                dz.sub_(lse[start:end, None])  # log p
                if g_h is None:
                    dz.exp_().mul_(-g[start:end, None])
                else:  # and ∂H/∂z = −p (log p + H), weighted by H's incoming gradient
                    coef = (dz + entropy[start:end, None]).mul_(-g_h[start:end, None])
                    dz.exp_().mul_(coef.sub_(g[start:end, None]))
                    del coef
                dz[rows, targets[start:end]] += g[start:end]
                dz.div_(temperature)  # z = logits / T
                dz = dz.to(dtype)  # what autograd does through the plain path's .float()
                if grad_h is not None:
                    grad_h[start:end] = dz @ w
                if grad_w is not None:
                    if dtype == torch.float32:
                        grad_w.addmm_(dz.t(), h[start:end])
                    else:
                        grad_w += dz.t() @ h[start:end]
                if grad_b is not None:
                    grad_b += dz.sum(0).float()
                del dz
        grad_w = None if grad_w is None else grad_w.to(weight.dtype)
        if grad_w is not None and ctx.handoff is not None:
            # a weight tied to the input embedding: its lookup's backward adds into this
            # buffer and returns the one gradient (r1kit.algo.tied_embedding)
            ctx.handoff.put(grad_w)
            grad_w = None
        return (None if grad_h is None else grad_h.to(hidden.dtype), grad_w,
                None if grad_b is None else grad_b.to(bias.dtype),
                None, None, None, None, None, None)


def head_logprobs(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, *,
                  temperature: float = 1.0, chunk: int = 1024,
                  with_entropy: bool = False,
                  entropy_grad: bool = False, handoff=None) -> tuple[Tensor, Tensor | None]:
    """``(n,)`` log-probs of ``targets`` under the head ``(weight, bias)`` at ``temperature``
    from ``(n, H)`` hidden states, ``chunk`` tokens of logits at a time; and the entropies
    if ``with_entropy`` (with their gradient if ``entropy_grad``), else None. With a
    ``handoff`` (``r1kit.algo.tied_embedding``) the weight's gradient is left there for the
    tied input embedding's backward instead of returned."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    logp, entropy = HeadLogprobs.apply(hidden, weight, bias, targets, float(temperature),
                                       int(chunk), bool(with_entropy), bool(entropy_grad),
                                       handoff)
    return logp, entropy if with_entropy else None
