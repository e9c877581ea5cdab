"""Per-token log-probabilities of sampled completions under a causal LM."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from r1kit.algo.head_logprobs import head_logprobs
from r1kit.algo.tied_embedding import GradientHandoff, embed_tied, tied_input_embedding

#: Architectures whose attention masks follow packed ``position_ids`` (a position that does not
#: continue the previous one starts a new sequence), so that rows can share a row of the batch.
PACKABLE_ARCHITECTURES = {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM"}


def pack(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
         device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``prompt+completion`` rows, their attention mask, and for the completion
    region: the index of the logit that predicts each completion token, and its mask.

    Right padding keeps every real token at its natural position, so no position ids are needed.
    """
    lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids)]
    width, comp_width = max(lengths), max(max(map(len, completion_ids)), 1)
    ids = torch.full((len(lengths), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    positions = torch.zeros((len(lengths), comp_width), dtype=torch.long)
    mask = torch.zeros((len(lengths), comp_width))
    for row, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[row, : len(p) + len(c)] = torch.tensor(p + c)
        attention[row, : len(p) + len(c)] = 1
        # the logit at position t predicts token t + 1
        positions[row, : len(c)] = torch.arange(len(p) - 1, len(p) - 1 + len(c))
        mask[row, : len(c)] = 1
    return ids.to(device), attention.to(device), positions.to(device), mask.to(device)


#: Architectures whose logits are exactly ``lm_head(decoder(...).last_hidden_state)`` (no
#: logit scaling or soft-capping: checked in transformers' modeling code, e.g. Gemma2's
#: final_logit_softcapping, Cohere's logit_scale and Granite's logits_scaling are not), so the
#: log-probs can come from the hidden states through ``head_logprobs`` without the
#: full-vocabulary logits. Other architectures take the plain path.
HEAD_ARCHITECTURES = {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM"}
#: Completion tokens whose full-vocabulary logits exist at once (``algo.logprob_chunk_tokens``):
#: 256 × 151,936 float32 logits are 156 MB, and on a CPU the head's matmuls run as fast as at
#: 1,024 (benchmarks/bench_head_logprobs.py).
DEFAULT_CHUNK_TOKENS = 256


def completion_logprobs(model, ids, attention, positions, mask, *, with_entropy: bool = False,
                        temperature: float = 1.0, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                        entropy_grad: bool = False):
    """``(N, T)`` log-probs of each completion token (0 at padding) and, optionally, entropies
    (a logged statistic without gradient, unless ``entropy_grad``: an entropy bonus).

    Only the completion positions are turned into log-probs: over a 150k vocabulary the prompt
    positions' log-softmax would dominate memory. For the architectures in
    ``HEAD_ARCHITECTURES`` the decoder's hidden states at the valid completion positions go
    through the output projection ``chunk_tokens`` at a time (``head_logprobs``: no
    ``(tokens, vocab)`` logits beyond one chunk, forward or backward); other models' logits
    are computed whole. ``temperature`` divides the logits as the sampler did, so ratios
    compare the distribution that was actually sampled.

    Padding is not computed where the model allows it: for the architectures in
    ``PACKABLE_ARCHITECTURES`` the rows are packed several to a row of the batch (first-fit,
    same width), each restarting its ``position_ids``, so attention never crosses from one
    sequence to another and the result equals the padded forward's up to float rounding.
    """
    head = _output_head(model)
    layout = _packing(model, attention)
    if layout is None:
        inputs = dict(input_ids=ids, attention_mask=attention)
        starts = torch.arange(ids.size(0), device=ids.device) * ids.size(1)
    else:
        rows, lengths, row_starts, packed_positions = layout
        flat_ids = ids.new_full((rows * ids.size(1),), int(ids[0, 0]))  # filler: never attended
        for i, (start, n) in enumerate(zip(row_starts, lengths)):
            flat_ids[start: start + n] = ids[i, :n]
        inputs = dict(input_ids=flat_ids.view(rows, -1),
                      position_ids=packed_positions.to(ids.device))
        starts = torch.tensor(row_starts, device=ids.device)
    flat_positions = starts.unsqueeze(1) + positions  # (N, T) into the flattened forward
    targets = torch.gather(ids, 1, (positions + 1).clamp(max=ids.size(1) - 1))
    if head is None:
        logits = model(**inputs, use_cache=False).logits
        logits = logits.reshape(-1, logits.size(-1))[flat_positions]
        return _plain_logprobs(logits, targets, mask, with_entropy, temperature, entropy_grad)
    decoder, weight, bias = head
    # a head tied to the input embedding gets one (V, H) gradient buffer, not three
    tied, handoff = tied_input_embedding(_base(model), weight), None
    if tied is not None:
        handoff = GradientHandoff(tied.weight)
        inputs["inputs_embeds"] = embed_tied(tied, inputs.pop("input_ids"), handoff)
    hidden = decoder(**inputs, use_cache=False).last_hidden_state
    valid = mask != 0
    # only the valid completion tokens reach the head: padding costs no vocabulary work
    selected = hidden.reshape(-1, hidden.size(-1))[flat_positions[valid]]
    logp_valid, entropy_valid = head_logprobs(selected, weight, bias, targets[valid],
                                              temperature=temperature, chunk=chunk_tokens,
                                              with_entropy=with_entropy,
                                              entropy_grad=entropy_grad, handoff=handoff)
    logp = _scatter(logp_valid, valid) * mask
    if not with_entropy:
        return logp, None
    return logp, _scatter(entropy_valid, valid) * mask


def _plain_logprobs(logits, targets, mask, with_entropy: bool, temperature: float,
                    entropy_grad: bool = False):
    """The whole-vocabulary computation from ``(N, T, V)`` logits (architectures outside
    ``HEAD_ARCHITECTURES``, and the reference the chunked path is tested against)."""
    logits = logits.float() / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    logp = torch.gather(logp_all, 2, targets.unsqueeze(-1)).squeeze(-1) * mask
    if not with_entropy:
        return logp, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return logp, entropy


def _scatter(values, valid):
    """``(N, T)`` float32 zeros with ``values`` at the ``valid`` positions (autograd-aware)."""
    out = torch.zeros(valid.shape, dtype=values.dtype, device=values.device)
    return out.masked_scatter(valid, values)


def _base(model):
    """The transformers model under a peft wrapper (its LoRA layers are in it, in place)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _output_head(model):
    """``(decoder, weight, bias)`` for the chunked head path, or None for the plain path: the
    architecture must be in ``HEAD_ARCHITECTURES`` and its head a plain ``nn.Linear`` holding
    its whole weight here (not a LoRA-wrapped head, not a parameter sharded away by
    FSDP/DeepSpeed ZeRO-3, whose full weight only exists inside the head's own forward)."""
    base = _base(model)
    if type(base).__name__ not in HEAD_ARCHITECTURES:
        return None
    head = base.get_output_embeddings()
    if type(head) is not torch.nn.Linear:
        return None
    weight = head.weight
    if type(weight) not in (torch.Tensor, torch.nn.Parameter) or \
            tuple(weight.shape) != (head.out_features, head.in_features):
        return None
    return base.get_decoder(), weight, head.bias


def _packing(model, attention):
    """How to pack right-padded rows: ``(packed rows, lengths, flat start of each row in the
    packed batch, packed position ids)``, or None when the model cannot pack or packing would
    not save a row."""
    base = _base(model)
    if type(base).__name__ not in PACKABLE_ARCHITECTURES or getattr(
            base.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return None
    count, width = attention.shape
    lengths_t = attention.sum(1)
    right_padded = torch.arange(width, device=attention.device) < lengths_t.unsqueeze(1)
    if not torch.equal(attention.bool(), right_padded):
        return None
    lengths = lengths_t.tolist()
    used: list[int] = []  # filled width of each packed row
    starts = [0] * count
    for i in sorted(range(count), key=lambda i: -lengths[i]):  # first fit, longest first
        for row, filled in enumerate(used):
            if filled + lengths[i] <= width:
                starts[i] = row * width + filled
                used[row] += lengths[i]
                break
        else:
            starts[i] = len(used) * width
            used.append(lengths[i])
    if len(used) >= count:
        return None
    # every sequence counts its positions from 0; so does the filler at the end of a row, which
    # makes it a sequence of its own that no real token attends to
    positions = torch.arange(width).repeat(len(used), 1)
    for i in range(count):
        row, col = divmod(starts[i], width)
        positions[row, col: col + lengths[i]] = torch.arange(lengths[i])
        if col + lengths[i] == used[row] and used[row] < width:
            positions[row, used[row]:] = torch.arange(width - used[row])
    return len(used), lengths, starts, positions
