"""One gradient buffer for a weight shared by the input embedding and the output head.

Small models tie the two (Qwen2.5-0.5B to 3B, Qwen3-0.6B to 4B, Llama-3.2-1B/3B), and at their
151,936- or 128,256-token vocabularies the shared ``(V, H)`` weight is most of the model
(136 M of Qwen2.5-0.5B's 494 M parameters). Through plain autograd the weight receives two
gradients, each a fresh ``(V, H)`` tensor: the head's (dense) and the embedding's (dense, or
sparse with ``sparse=True``); the engine adds them out of place, so at the end of every
backward three such tensors live at once: the two parts and their sum, which becomes
``.grad``. At Qwen2.5-0.5B's shape that transient, 519 MiB, was the peak of a GRPO step
(``benchmarks/profile_grpo_phases.py --memory``).

Here the head's backward (``head_logprobs`` with a :class:`GradientHandoff`) returns no
gradient for the weight and leaves its ``(V, H)`` buffer in the handoff instead; the
embedding, looked up through :class:`TiedEmbedding` (the decoder then gets
``inputs_embeds``), adds its rows into that buffer in place and returns it as the weight's
only gradient. Autograd, DDP's gradient hooks and gradient accumulation see one gradient,
equal to the sum of the two. The head's backward always runs first: the embedding is the
first operation of the forward, so it is the last of the backward.

From the second micro-batch of an accumulated step on, the weight already has a float32
``.grad``: both backwards then add straight into it, and the lookup returns a zero gradient
that takes no memory (a stride-0 view of one zero), which autograd's accumulation adds in
place. Each further micro-batch then allocates no ``(V, H)`` tensor at all, where plain
autograd allocates three. Everything that reads the gradient after accumulation (DDP's and
DeepSpeed's reduction hooks, ``register_post_accumulate_grad_hook``, clipping, the optimizer)
sees the full sum, because the in-place additions come before the weight's accumulation; only a
hook on the gradient *flowing into* the weight (``weight.register_hook``) would see the zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class GradientHandoff:
    """Holds the head's ``(V, H)`` gradient until the embedding's backward takes it, for the
    tied ``weight``."""

    def __init__(self, weight: Tensor):
        self.weight, self.buffer = weight, None
        #: both backwards add into ``weight.grad`` itself (see the module docstring)
        self.into_grad = False

    def existing_grad(self, dtype: torch.dtype) -> Tensor | None:
        """``weight.grad`` when the head's backward, computing in ``dtype``, can add into it
        exactly as into a buffer of its own (float32, the weight's shape, contiguous)."""
        grad = self.weight.grad
        if grad is None or dtype != torch.float32 or grad.dtype != torch.float32 \
                or grad.shape != self.weight.shape or not grad.is_contiguous():
            return None
        self.into_grad = True
        return grad

    def put(self, grad: Tensor) -> None:
        if self.buffer is not None:  # one forward and one backward per handoff
            raise RuntimeError("GradientHandoff already holds a gradient")
        self.buffer = grad

    def take(self) -> Tensor | None:
        grad, self.buffer = self.buffer, None
        return grad


class TiedEmbedding(torch.autograd.Function):
    """``F.embedding(ids, weight, padding_idx)`` whose backward adds the looked-up rows'
    gradient into the head's buffer from ``handoff`` (zeros when the head passed none), in
    place, with ``F.embedding``'s rule: rows looked up at ``padding_idx`` get no gradient."""

    @staticmethod
    def forward(ctx, ids: Tensor, weight: Tensor, padding_idx: int | None,
                handoff: GradientHandoff):
        ctx.save_for_backward(ids)
        ctx.padding_idx, ctx.handoff, ctx.shape = padding_idx, handoff, weight.shape
        ctx.dtype, ctx.device = weight.dtype, weight.device
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (ids,) = ctx.saved_tensors
        handoff = ctx.handoff
        grad = handoff.take()
        if grad is None:  # the head passed none (it computed no weight gradient)
            grad = handoff.existing_grad(ctx.dtype)
        if grad is None:
            grad = torch.zeros(ctx.shape, dtype=ctx.dtype, device=ctx.device)
        rows = ids.reshape(-1)
        grad_rows = grad_out.reshape(rows.numel(), -1)
        if ctx.padding_idx is not None:
            keep = rows != ctx.padding_idx
            rows, grad_rows = rows[keep], grad_rows[keep]
        grad.index_add_(0, rows, grad_rows.to(grad.dtype))
        if handoff.into_grad:  # already in .grad: autograd adds a zero that takes no memory
            return None, torch.zeros((), dtype=ctx.dtype, device=ctx.device).expand(
                ctx.shape), None, None
        return None, grad, None, None


def tied_input_embedding(base, weight: Tensor):
    """The decoder's input embedding when it can share ``weight``'s gradient buffer: a plain
    ``nn.Embedding`` (no ``max_norm``, ``scale_grad_by_freq`` or sparse gradient) over that
    very leaf parameter, which needs a gradient (not LoRA's frozen base, not a weight sharded
    or viewed by FSDP); else None."""
    embedding = base.get_input_embeddings()
    if type(embedding) is not torch.nn.Embedding or embedding.weight is not weight:
        return None
    if embedding.max_norm is not None or embedding.scale_grad_by_freq or embedding.sparse:
        return None
    if type(weight) is not torch.nn.Parameter or not weight.is_leaf \
            or not weight.requires_grad or not torch.is_grad_enabled():
        return None
    return embedding


def embed_tied(embedding: torch.nn.Embedding, ids: Tensor, handoff: GradientHandoff) -> Tensor:
    """``embedding(ids)``, its gradient sharing the head's buffer through ``handoff``."""
    return TiedEmbedding.apply(ids, embedding.weight, embedding.padding_idx, handoff)
