"""``sampler=hf``: batched ``transformers`` generation with the KV cache, on the policy itself.

The sampler shares the policy module, so ``sync_weights`` has nothing to copy. Llama-family
models (Qwen2, Qwen3, Llama) sample through :mod:`r1kit.samplers.kv_decode`, a lean decoding
loop over the same weights with a preallocated cache (several times faster than ``generate``
on small models, same sampling rule); other models, or ``fast_decode=false``, use ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1kit import hookimpl
from r1kit.samplers import kv_decode
from r1kit.samplers.base import Generation, SamplerCapabilities


@dataclass
class HFSamplerOptions:
    #: Sequences per ``generate`` call (bounds memory); all at once when 0.
    generation_batch_size: int = 0
    #: Sample Llama-family models with r1kit's own decoding loop instead of ``generate``.
    fast_decode: bool = True


def is_sharded(model) -> bool:
    """Whether ``model``'s weights are sharded over ranks (FSDP, FSDP2): every forward pass is
    then a collective, so every rank must run as many as the others. ``generate`` keeps a rank
    whose sequences have all ended running dummy steps until every rank is done
    (``synced_gpus``, despite its name any process group); otherwise the first rank to finish
    would leave the others waiting forever."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    return any(isinstance(m, (FSDPModule, FullyShardedDataParallel)) for m in model.modules())


class HFSampler:
    """``options``: the typed ``sampler`` node (``HFSamplerOptions`` with ``SamplerCommon``'s
    max_new_tokens, temperature and top_p)."""

    def __init__(self, model, tokenizer, options):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature = options.max_new_tokens, options.temperature
        self.top_p = options.top_p
        self.generation_batch_size = options.generation_batch_size
        self.fast_decode = options.fast_decode
        #: Set by a trainer that can use them (GRPO with μ > 1, for π_old): report each sampled
        #: token's log-prob. Only the fast decoding loop has them; ``generate`` does not.
        self.report_logprobs = False
        #: The random source of its draws (None: torch's global one). A sampler that runs in
        #: a thread beside training (pipelined rollouts) gets its own, so that its draws and
        #: the training thread's never interleave.
        self.generator: torch.Generator | None = None
        self.capabilities = SamplerCapabilities(exact_logprobs=True,
                                                samples_policy_in_place=True)

    def request_logprobs(self, wanted: bool) -> None:
        self.report_logprobs = wanted

    def sync_weights(self, model) -> None:
        self.model = model  # same tensors: generation already sees every update

    def _budget(self, prompt_len: int) -> int:
        # never generate past the model's context (tiny models have a short one)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return self.max_new_tokens if limit is None else max(1, min(
            self.max_new_tokens, limit - prompt_len))

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], num_samples: int, *,
                 greedy: bool = False) -> Generation:
        expanded = [ids for ids in prompt_ids for _ in range(num_samples)]
        chunk = self.generation_batch_size or len(expanded)
        completions, truncated, logprobs = [], [], []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(expanded), chunk):
                c, t, lp = self._generate_chunk(expanded[start:start + chunk], greedy)
                completions += c
                truncated += t
                logprobs = None if lp is None or logprobs is None else logprobs + lp
        finally:
            self.model.train(was_training)
        # The policy's own weights and dtype and the trainer's formula (temperature-scaled
        # logits): these are π_θ(token) up to float rounding, not another engine's estimate.
        return Generation(completion_ids=completions, truncated=truncated, logprobs=logprobs,
                          logprobs_exact=logprobs is not None)

    def _generate_chunk(self, prompts: list[list[int]], greedy: bool):
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        width = max(map(len, prompts))
        device = next(self.model.parameters()).device
        # left padding: every row's generation starts right after its own prompt
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        budget = self._budget(width)
        input_ids, attention = input_ids.to(device), attention.to(device)
        new_logprobs = None
        if self.fast_decode and kv_decode.supports(self.model):
            new = kv_decode.sample(
                self.model, input_ids, attention, max_new_tokens=budget, greedy=greedy,
                temperature=self.temperature, top_p=self.top_p, eos_token_id=eos,
                pad_token_id=pad, return_logprobs=self.report_logprobs,
                generator=self.generator)
            if self.report_logprobs:
                new, new_logprobs = new[0], new[1].tolist()
            new = new.tolist()
        else:
            sampling = {} if greedy else {"temperature": self.temperature,
                                          "top_p": self.top_p, "top_k": 0}
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention, do_sample=not greedy,
                max_new_tokens=budget, pad_token_id=pad, eos_token_id=eos, use_cache=True,
                synced_gpus=is_sharded(self.model), **sampling)
            new = out[:, width:].tolist()  # one device→host copy for the whole chunk
        completions, truncated = [], []
        for tokens in new:
            if eos in tokens:
                completions.append(tokens[: tokens.index(eos) + 1])
                truncated.append(False)
            else:
                completions.append(tokens)
                truncated.append(True)
        if new_logprobs is not None:
            new_logprobs = [lp[: len(c)] for lp, c in zip(new_logprobs, completions)]
        return completions, truncated, new_logprobs


def hf_sampler(model, tokenizer, options) -> HFSampler:
    return HFSampler(model, tokenizer, options)


@hookimpl
def r1kit_register_samplers(register):
    register("hf", hf_sampler, schema=HFSamplerOptions)
