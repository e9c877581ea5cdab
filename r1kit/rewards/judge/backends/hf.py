"""``reward.judge.backend=hf``: the judge as a local Hugging Face causal LM, batched on this
process's device (its rank's GPU under DDP), like the ``reward_model`` reward's classifier."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import torch

from r1kit import hookimpl
from r1kit.rewards.judge.backends.base import conversation_ids
from r1kit.rewards.reward_model import rank_device


def weights_fingerprint(path: str) -> str:
    """A cheap fingerprint of a local checkpoint (its files' names, sizes and times): a judge
    retrained into the same directory is a different judge to the cache. A hub id is its own
    fingerprint."""
    root = Path(path)
    if not root.is_dir():
        return path
    digest = hashlib.sha256()
    for file in sorted(root.iterdir()):
        if file.is_file() and file.suffix in (".json", ".safetensors", ".bin"):
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return f"{root.resolve()}@{digest.hexdigest()[:16]}"


class HFJudge:
    """Greedy (or seeded sampling) ``generate`` over batches of ``options.batch_size``."""

    def __init__(self, options) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = options.device or rank_device()
        self.max_new_tokens, self.temperature = options.max_new_tokens, options.temperature
        self.seed, self.batch_size = options.seed, options.batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(options.model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # generation continues right after each prompt
        self.model = AutoModelForCausalLM.from_pretrained(options.model, dtype="auto")
        self.model.to(self.device).eval()
        self.identity = (f"hf:{weights_fingerprint(options.model)}:max_new_tokens="
                         f"{self.max_new_tokens}:temperature={self.temperature}:seed={self.seed}")
        self._lock = threading.Lock()  # one model instance: one generate at a time

    def complete(self, conversations: list[list[dict]]) -> list[str]:
        prompts = [conversation_ids(self.tokenizer, c) for c in conversations]
        replies: list[str] = []
        with self._lock, torch.no_grad():
            for start in range(0, len(prompts), self.batch_size):
                replies += self._generate(prompts[start:start + self.batch_size])
        return replies

    def _generate(self, prompts: list[list[int]]) -> list[str]:
        batch = self.tokenizer.pad({"input_ids": prompts}, padding=True,
                                   return_tensors="pt").to(self.device)
        sampling = (dict(do_sample=True, temperature=self.temperature)
                    if self.temperature > 0 else dict(do_sample=False))
        devices = [self.device] if str(self.device).startswith("cuda") else []
        # the judge's sampling must not move the trainer's RNG (rollouts stay reproducible)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            out = self.model.generate(**batch, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new = out[:, batch["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)


@hookimpl
def r1kit_register_judge_backends(register):
    register("hf", HFJudge)
