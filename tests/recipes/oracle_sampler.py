"""A test sampler plugin that writes known responses, so a shrunk recipe shows what its
rewards, filters and stages do with good and bad completions (the tiny model solves nothing).

It reads each prompt back from its token ids, sums the first two integers of the question (the
shaped datasets of these tests ask for a sum), and writes the group's samples in turn as:

0. correct and well formed (continuing the prompt's open ``<think>``, if it has one),
1. well formed, wrong answer,
2. correct but opening ``<think>`` a second time (format 0 under the R1 templates),
3. cut off inside the reasoning (truncated).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from r1kit import hookimpl
from r1kit.data.response import opened_response
from r1kit.samplers.base import Generation

_QUESTION = re.compile(r"User:(.*)Assistant:", re.S)


@dataclass
class OracleOptions:
    #: seconds each generate() call sleeps (lets a test kill a stage while it samples)
    delay: float = 0.0


def responses(prompt: str) -> list[tuple[str, bool]]:
    """The four (completion, truncated) kinds for ``prompt``, in the order above."""
    match = _QUESTION.search(prompt)
    question = match.group(1) if match else prompt
    a, b = (int(n) for n in re.findall(r"\d+", question)[:2])
    opened = opened_response(prompt)
    think = "" if opened else "<think>"
    steps = f" We add {a} and {b}, which makes {a + b}. "
    return [
        (f"{think}{steps}</think>\n<answer>\n\\boxed{{{a + b}}}\n</answer>", False),
        (f"{think}{steps}</think>\n<answer>\n{a + b + 1}\n</answer>", False),
        (f"<think>{think}{steps}</think>\n<answer>\n{a + b}\n</answer>", False),
        (f"{think} We add {a} and", True),
    ]


class OracleSampler:
    def __init__(self, model, tokenizer, options: OracleOptions):
        self.tokenizer, self.delay = tokenizer, options.delay

    def sync_weights(self, model) -> None:
        pass

    def generate(self, prompt_ids, num_samples, *, greedy=False) -> Generation:
        time.sleep(self.delay)
        ids, truncated = [], []
        eos = self.tokenizer.eos_token_id
        for prompt in prompt_ids:
            kinds = responses(self.tokenizer.decode(prompt))
            for j in range(num_samples):
                text, cut = kinds[0 if greedy else j % len(kinds)]
                tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                ids.append(tokens if cut else [*tokens, eos])
                truncated.append(cut)
        return Generation(completion_ids=ids, truncated=truncated)


@hookimpl
def r1kit_register_samplers(register):
    register("oracle", OracleSampler, schema=OracleOptions)
