"""A tiny random policy and a ``PolicyBatch`` of groups of random completions with uneven
lengths, for tests of one policy update; π_old and π_ref are the policy's own log-probs plus
noise, so ratios differ from 1 and some clip, and the KL is not zero."""

from __future__ import annotations

import torch

from r1kit.algo.logprobs import completion_logprobs, pack
from r1kit.models.tiny import build_model, build_tokenizer
from r1kit.stages.grpo.batch import PolicyBatch


def grouped_batch(*, groups: int, group_size: int, hidden_size: int, num_layers: int,
                  seed: int, prompt_length, completion_length, zero_groups=()):
    """``(model, batch)``. ``prompt_length(g)`` and ``completion_length(g, i)`` give the token
    counts of group ``g`` and its sample ``i``; the groups in ``zero_groups`` get all-zero
    advantages (equal rewards)."""
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=hidden_size, num_layers=num_layers, num_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=64,
                        seed=0).train()
    gen = torch.Generator().manual_seed(seed)
    prompts, completions = [], []
    for g in range(groups):
        prompt = torch.randint(7, len(tokenizer), (prompt_length(g),), generator=gen).tolist()
        for i in range(group_size):
            prompts.append(prompt)
            completions.append(torch.randint(7, len(tokenizer), (completion_length(g, i),),
                                             generator=gen).tolist())
    ids, attention, positions, mask = pack(prompts, completions, tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        logp, _ = completion_logprobs(model, ids, attention, positions, mask)
    advantages = torch.randn(groups * group_size, generator=gen)
    for g in zero_groups:
        advantages[g * group_size:(g + 1) * group_size] = 0.0
    noise = lambda: 0.3 * torch.randn(logp.shape, generator=gen) * mask  # noqa: E731
    batch = PolicyBatch(ids, attention, positions, mask,
                        torch.arange(groups).repeat_interleave(group_size), advantages,
                        old_logp=logp + noise(), ref_logp=logp + noise())
    return model, batch
