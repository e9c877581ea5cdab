"""A test sampler plugin whose answers exercise the accuracy reward's three verdict paths
in known numbers: sample 0 of every group answers with a power tower that math-verify never
finishes comparing (a timeout), every other sample, and greedy decoding, a plain number (the
fast path)."""

from __future__ import annotations

from r1kit import hookimpl
from r1kit.samplers.base import Generation

TOWER = "<answer>9^{9^{9^{9}}}</answer>"
PLAIN = "<answer>12</answer>"


class ScriptedSampler:
    def __init__(self, model, tokenizer, options=None):
        self.tokenizer = tokenizer

    def sync_weights(self, model) -> None:
        pass

    def generate(self, prompt_ids, num_samples, *, greedy=False) -> Generation:
        texts = [TOWER if j == 0 and not greedy else PLAIN
                 for _ in prompt_ids for j in range(num_samples)]
        eos = self.tokenizer.eos_token_id
        ids = [self.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
               for text in texts]
        return Generation(completion_ids=ids, truncated=[False] * len(ids))


@hookimpl
def r1kit_register_samplers(register):
    register("scripted", ScriptedSampler)
