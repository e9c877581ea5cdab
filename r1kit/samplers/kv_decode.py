"""A lean sampling loop for Llama-family causal LMs (Qwen2, Qwen3, Llama) with a preallocated
KV cache.

``transformers``' ``generate`` spends most of its time on small models in Python: per decoding
step it rebuilds attention masks, grows a ``DynamicCache`` by concatenation, runs logits
processors and stopping criteria, and dispatches three projections and a dozen elementwise ops
per attention block. This module runs the same computation — the model's own weights, the same
RMSNorm, rotary embedding, attention and sampling rule — as a handful of fused tensor ops per
layer over a cache allocated once. Logits agree with the model's ``forward`` to float rounding;
sampling follows ``generate``'s rule (temperature, then top-p, then a multinomial draw; argmax
when greedy; finished rows emit padding; stop when every row has emitted EOS or the budget is
spent).

:func:`supports` says whether a model can use it; anything it does not recognise (another
architecture, a sliding window, dynamic RoPE, wrapped or quantised weights, a generation config
that asks for extra logits processors) goes through ``generate`` instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ARCHITECTURES = {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM"}
#: RoPE variants whose frequencies are fixed at load time (``dynamic``/``longrope`` rescale them
#: with the sequence length inside ``forward``).
STATIC_ROPE = {"default", "linear", "llama3", "yarn"}
#: Generation-config fields that add logits processors or stopping rules, with their neutral
#: value; a model whose generation config sets any of them otherwise uses ``generate``.
NEUTRAL_GENERATION = {
    "repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,), "min_length": (None, 0),
    "min_new_tokens": (None, 0), "min_p": (None,), "typical_p": (None, 1.0),
    "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0), "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,), "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,), "guidance_scale": (None, 1.0),
    "watermarking_config": (None,), "stop_strings": (None,), "renormalize_logits": (None, False),
    "low_memory": (None, False), "num_beams": (None, 1), "penalty_alpha": (None,),
}


def _rope_type(config) -> str:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if not params:
        return "default"
    return params.get("rope_type", params.get("type", "default"))


def supports(model) -> bool:
    """True when :func:`sample` reproduces ``model``'s forward for generation."""
    if type(model).__name__ not in ARCHITECTURES or not hasattr(model, "model"):
        return False
    config, core = model.config, model.model
    if getattr(config, "hidden_act", "silu") != "silu" or _rope_type(config) not in STATIC_ROPE:
        return False
    if getattr(config, "use_sliding_window", False) or any(
            t != "full_attention" for t in getattr(config, "layer_types", None) or ()):
        return False
    if getattr(config, "_attn_implementation", "sdpa") not in ("sdpa", "eager", None):
        return False
    if getattr(config, "pretraining_tp", 1) not in (1, None):
        return False
    if getattr(core, "_forward_hooks", None) or getattr(model, "_forward_hooks", None):
        return False
    linear_types = (torch.nn.Linear,)
    for layer in core.layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                     layer.self_attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj,
                     layer.mlp.down_proj):
            if type(proj) not in linear_types:  # quantised, LoRA-wrapped, ...
                return False
    if type(model.lm_head) not in linear_types:
        return False
    for param in model.parameters():
        if type(param) is not torch.nn.Parameter or param.is_meta:  # DTensor, FSDP shards
            return False
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        for field, neutral in NEUTRAL_GENERATION.items():
            if getattr(gen, field, None) not in neutral:
                return False
    return True


class _Weights:
    """The model's weights, projections fused (q|k|v and gate|up), read at call time.

    ``matmul_dtype`` (mixed precision: autocast's dtype) casts the projection and output
    weights once per call, where autocast would cast them again at every decoding step; norms,
    embeddings and the residual stream stay in the model's dtype, as under autocast.
    """

    def __init__(self, model, matmul_dtype: torch.dtype | None = None):
        self.matmul_dtype = matmul_dtype
        cast = (lambda t: t) if matmul_dtype is None else (  # noqa: E731
            lambda t: None if t is None else t.to(matmul_dtype))
        config, core = model.config, model.model
        first = core.layers[0].self_attn
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = first.head_dim
        self.scaling = first.scaling
        self.embed = core.embed_tokens.weight
        self.rope_inv_freq = core.rotary_emb.inv_freq
        self.rope_scale = core.rotary_emb.attention_scaling
        self.layers = []
        for layer in core.layers:
            attn, mlp = layer.self_attn, layer.mlp
            projections = (attn.q_proj, attn.k_proj, attn.v_proj)
            qkv_bias = None
            if any(p.bias is not None for p in projections):
                qkv_bias = torch.cat([p.bias if p.bias is not None else
                                      p.weight.new_zeros(p.out_features) for p in projections])
            gate_up_bias = None
            if mlp.gate_proj.bias is not None or mlp.up_proj.bias is not None:
                gate_up_bias = torch.cat([
                    p.bias if p.bias is not None else p.weight.new_zeros(p.out_features)
                    for p in (mlp.gate_proj, mlp.up_proj)])
            self.layers.append({
                "ln1": (layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon),
                "ln2": (layer.post_attention_layernorm.weight,
                        layer.post_attention_layernorm.variance_epsilon),
                "qkv": cast(torch.cat([p.weight for p in projections])),
                "qkv_bias": cast(qkv_bias),
                "q_norm": _norm_of(getattr(attn, "q_norm", None)),
                "k_norm": _norm_of(getattr(attn, "k_norm", None)),
                "o": cast(attn.o_proj.weight), "o_bias": cast(attn.o_proj.bias),
                "gate_up": cast(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])),
                "gate_up_bias": cast(gate_up_bias),
                "down": cast(mlp.down_proj.weight), "down_bias": cast(mlp.down_proj.bias),
                "intermediate": mlp.gate_proj.out_features,
            })
        self.norm = (core.norm.weight, core.norm.variance_epsilon)
        self.lm_head, self.lm_head_bias = cast(model.lm_head.weight), cast(model.lm_head.bias)


def _linear(x, weight, bias):
    return F.linear(x.to(weight.dtype), weight, bias)  # .to: a no-op unless mixed precision


def _norm_of(module):
    return None if module is None else (module.weight, module.variance_epsilon)


def _rms_norm(x, norm):
    weight, eps = norm
    if x.dtype == torch.float32:  # the same computation, one fused kernel
        return F.rms_norm(x, weight.shape, weight, eps)
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


class _Decoder:
    def __init__(self, w: _Weights, batch: int, capacity: int, dtype, device):
        self.w = w
        shape = (batch, w.kv_heads, capacity, w.head_dim)
        # attention runs in autocast's dtype under mixed precision, as autocast runs it
        self.attn_dtype = w.matmul_dtype or dtype
        self.k = [torch.empty(shape, dtype=self.attn_dtype, device=device) for _ in w.layers]
        self.v = [torch.empty(shape, dtype=self.attn_dtype, device=device) for _ in w.layers]
        # cos/sin for every position the cache can hold, as RotaryEmbedding computes them
        freqs = torch.arange(capacity, device=device, dtype=torch.float)[:, None] \
            * w.rope_inv_freq.to(device=device, dtype=torch.float)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = (emb.cos() * w.rope_scale).to(dtype)
        sin = (emb.sin() * w.rope_scale).to(dtype)
        # rotate_half(x) * sin == swap_halves(x) * signed_sin, one op fewer per use
        half = sin.shape[-1] // 2
        self.signed_sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)

    def select(self, index) -> None:
        """Keep (or repeat) the batch rows ``index`` of the cache."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]

    def forward(self, ids, positions, start: int, mask):
        """Hidden states of ``ids`` (B, T) at cache slots ``start:start+T``; ``mask`` (B, 1, T,
        start+T) says which cached slots each query may attend to."""
        w = self.w
        batch, length = ids.shape
        end = start + length
        heads, kv_heads, head_dim = w.heads, w.kv_heads, w.head_dim
        half = head_dim // 2
        h = F.embedding(ids, w.embed)
        cos = self.cos[positions].unsqueeze(2)  # (B, T, 1, D): broadcast over heads
        sin = self.signed_sin[positions].unsqueeze(2)
        gqa = heads != kv_heads
        for i, layer in enumerate(w.layers):
            x = _rms_norm(h, layer["ln1"])
            qkv = _linear(x, layer["qkv"], layer["qkv_bias"]).view(
                batch, length, heads + 2 * kv_heads, head_dim)
            qk, v = qkv[:, :, :heads + kv_heads], qkv[:, :, heads + kv_heads:]
            if layer["q_norm"] is not None:
                qk = torch.cat((_rms_norm(qk[:, :, :heads], layer["q_norm"]),
                                _rms_norm(qk[:, :, heads:], layer["k_norm"])), dim=2)
            # rotary embedding of q and k together: x * cos + rotate_half(x) * sin
            swapped = torch.cat((qk[..., half:], qk[..., :half]), dim=-1)
            qk = (qk * cos + swapped * sin).to(self.attn_dtype)  # RoPE in the model's dtype
            q = qk[:, :, :heads].transpose(1, 2)
            self.k[i][:, :, start:end] = qk[:, :, heads:].transpose(1, 2)
            self.v[i][:, :, start:end] = v.transpose(1, 2)
            attn = F.scaled_dot_product_attention(
                q, self.k[i][:, :, :end], self.v[i][:, :, :end], attn_mask=mask,
                scale=w.scaling, enable_gqa=gqa)
            attn = attn.transpose(1, 2).reshape(batch, length, heads * head_dim)
            h = h + _linear(attn, layer["o"], layer["o_bias"])
            x = _rms_norm(h, layer["ln2"])
            gate, up = _linear(x, layer["gate_up"], layer["gate_up_bias"]).split(
                layer["intermediate"], dim=-1)
            h = h + _linear(F.silu(gate) * up, layer["down"], layer["down_bias"])
        return h

    def logits(self, h_last):
        w = self.w
        return _linear(_rms_norm(h_last, w.norm), w.lm_head, w.lm_head_bias).float()


def _top_p(scores, top_p: float):
    # transformers' TopPLogitsWarper, min_tokens_to_keep = 1
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -1:] = False
    remove = remove.scatter(1, sorted_indices, remove)
    return scores.masked_fill(remove, -float("inf"))


@torch.no_grad()
def sample(model, input_ids, attention_mask, *, max_new_tokens: int, greedy: bool,
           temperature: float = 1.0, top_p: float = 1.0, eos_token_id: int | None,
           pad_token_id: int, return_logprobs: bool = False,
           generator: torch.Generator | None = None):
    """``(B, n)`` new tokens after the left-padded prompts ``input_ids`` (n ≤ max_new_tokens;
    rows that finished early are padded with ``pad_token_id`` after their EOS).

    With ``return_logprobs``, returns ``(tokens, logprobs)``: ``logprobs`` ``(B, n)`` float32 is
    each sampled token's log-probability under the temperature-scaled logits (before top-p: the
    π(token) the trainer's loss computes), 0 at padding. They come from the very logits the
    token was drawn from, so the trainer can use them as π_old instead of a forward pass.

    Two savings over ``generate``, neither of which changes what is sampled: identical prompts
    (the G samples of a group) are prefilled once and their cache copied, and rows that have
    emitted EOS are dropped from the batch (``generate`` keeps decoding them as padding).
    ``generator``: the draws' random source (default: torch's global one).
    """
    # Under autocast (mixed precision) the weights are cast once here and autocast is
    # switched off for the loop, which would otherwise re-cast every weight at every step.
    device_type = input_ids.device.type
    mixed = torch.is_autocast_enabled(device_type)
    w = _Weights(model, torch.get_autocast_dtype(device_type) if mixed else None)
    with torch.autocast(device_type, enabled=False):
        return _sample(w, input_ids, attention_mask, max_new_tokens=max_new_tokens,
                       greedy=greedy, temperature=temperature, top_p=top_p,
                       eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                       return_logprobs=return_logprobs, generator=generator)


def _sample(w, input_ids, attention_mask, *, max_new_tokens, greedy, temperature, top_p,
            eos_token_id, pad_token_id, return_logprobs, generator):
    batch, width = input_ids.shape
    device, dtype = input_ids.device, w.embed.dtype
    capacity = width + max_new_tokens
    # prefill each distinct prompt once (the G copies of a prompt are adjacent)
    unique, inverse = torch.unique_consecutive(
        torch.cat((input_ids, attention_mask.to(input_ids.dtype)), dim=1), dim=0,
        return_inverse=True)
    prompt_ids, prompt_mask = unique[:, :width], unique[:, width:].bool()
    decoder = _Decoder(w, unique.shape[0], capacity, dtype, device)
    # left padding: the first real token sits at position 0
    positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)
    causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
    eye = torch.eye(width, dtype=torch.bool, device=device)
    # a padding query attends to itself too, so no row of the mask is empty (no NaNs)
    prefill_mask = (causal & prompt_mask[:, None, :]) | eye
    h = decoder.forward(prompt_ids, positions, 0, prefill_mask.unsqueeze(1))[:, -1]
    if unique.shape[0] != batch:
        decoder.select(inverse)
        h = h.index_select(0, inverse)
    # which cache slots each row may attend to: its prompt's real tokens, then every new one
    valid = torch.ones((batch, 1, 1, capacity), dtype=torch.bool, device=device)
    valid[:, 0, 0, :width] = attention_mask.bool()
    next_position = (positions[:, -1:] + 1).index_select(0, inverse)

    out = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    out_logprobs = torch.zeros((batch, max_new_tokens), dtype=torch.float32, device=device) \
        if return_logprobs else None
    rows = torch.arange(batch, device=device)  # the original row of each row still decoded
    running = torch.ones(batch, dtype=torch.bool, device=device)
    steps = max_new_tokens
    for step in range(max_new_tokens):
        scores = decoder.logits(h)
        if temperature != 1.0 and not greedy:
            scores = scores / temperature
        scaled = scores
        if greedy:
            tokens = scores.argmax(dim=-1)
        else:
            if top_p < 1.0:
                scores = _top_p(scores, top_p)
            tokens = torch.multinomial(scores.softmax(dim=-1), num_samples=1,
                                       generator=generator).squeeze(1)
        if out_logprobs is not None:
            if greedy and temperature != 1.0:
                scaled = scaled / temperature
            logprobs = scaled.log_softmax(dim=-1).gather(1, tokens[:, None]).squeeze(1)
            out_logprobs[rows, step] = torch.where(running, logprobs, 0.0)
        tokens = torch.where(running, tokens, pad_token_id)
        out[rows, step] = tokens
        if step == max_new_tokens - 1:
            break
        if eos_token_id is not None:
            running &= tokens != eos_token_id
            alive = int(running.sum())  # one host sync per step, as ``generate`` does
            if alive == 0:  # every row has emitted EOS
                steps = step + 1
                break
            finished = len(rows) - alive
            # drop finished rows once there are enough of them to pay for copying the cache
            if finished and (finished * 8 >= len(rows) or alive <= 2):
                keep = running.nonzero().squeeze(1)
                decoder.select(keep)
                rows, tokens, running = rows[keep], tokens[keep], running[keep]
                next_position, valid = next_position[keep], valid[keep]
        slot = width + step
        h = decoder.forward(tokens[:, None], next_position, slot, valid[..., : slot + 1])[:, -1]
        next_position = next_position + 1
    if out_logprobs is not None:
        return out[:, :steps], out_logprobs[:, :steps]
    return out[:, :steps]
