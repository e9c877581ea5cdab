"""``reward_model``: a learned reward — an HF sequence-classification model scores
prompt + completion. R1's final RL stage uses one for general (non-reasoning) prompts; route it
there with ``reward.reward_model.applies_to=[general]``.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import MISSING

from r1kit import hookimpl


@dataclass
class RewardModelOptions:
    path: str = MISSING  # local directory or hub id of an AutoModelForSequenceClassification
    batch_size: int = 16
    max_length: int = 1024
    #: affine map of the model's score: reward = scale * logit + shift
    scale: float = 1.0
    shift: float = 0.0
    #: null: this process's own device (its rank's GPU under DDP, else the CPU)
    device: Optional[str] = None


def rank_device() -> str:
    """This process's accelerator: the GPU of its local rank (launchers set ``LOCAL_RANK``;
    the modulo covers launchers that show each process only its own GPUs), else the CPU."""
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"


_lock = threading.Lock()  # rewards run in threads; one model instance, one forward at a time


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def reward_model(completions, examples, options: RewardModelOptions):
    """``scale * logit + shift`` of the classifier at ``path`` on prompt + completion."""
    device = options.device or rank_device()
    model, tokenizer = _load(options.path, device)
    batch_size, scale, shift = options.batch_size, options.scale, options.shift
    texts = [_conversation(tokenizer, row["prompt"], completion)
             for row, completion in zip(examples, completions)]
    scores = []
    with _lock, torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt",
                              padding=True, truncation=True,
                              max_length=options.max_length).to(device)
            logits = model(**batch).logits[:, 0].float()
            scores += (logits * scale + shift).tolist()
    return scores


def _conversation(tokenizer, prompt: str, completion: str) -> str:
    """The text the reward model reads: its own chat template over (user prompt, assistant
    completion) when it has one, as reward models such as Skywork's are trained; else the
    plain concatenation."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
            tokenize=False)
    return prompt + completion


@hookimpl
def r1kit_register_rewards(register):
    register("reward_model", reward_model, schema=RewardModelOptions)
