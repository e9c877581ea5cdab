"""Load the policy, the frozen reference, and the tokenizer from ``model`` config."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1kit.config.schema import ModelConfig
from r1kit.models import lora
from r1kit.models.tiny import ensure_tiny_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def model_source(model_cfg: ModelConfig, run_dir: str | Path) -> str:
    """Where the initial weights come from: ``model.path``, or the tiny model built in the run dir."""
    if model_cfg.path:
        return str(model_cfg.path)
    tiny = dataclasses.asdict(model_cfg.tiny)
    seed = tiny.pop("seed")
    return str(ensure_tiny_model(Path(run_dir) / "tiny_model", seed=seed, **tiny))


def load_tokenizer(source: str, model_cfg: ModelConfig):
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=model_cfg.trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:  # many base models ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(source: str, model_cfg: ModelConfig, *, trainable: bool = True):
    attention = model_cfg.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=DTYPES[model_cfg.dtype], trust_remote_code=model_cfg.trust_remote_code,
        **({"attn_implementation": attention} if attention else {}))
    if trainable:
        if model_cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        if model_cfg.lora.rank > 0:
            if model_cfg.gradient_checkpointing:  # frozen embeddings: no input grads otherwise
                model.enable_input_require_grads()
            model = lora.wrap(model, model_cfg.lora)
        model.train()
    else:
        model.eval().requires_grad_(False)
    return model


def visible_prompt(tokenizer, text: str, model_cfg: ModelConfig) -> str:
    """The prompt as the model sees it: ``text``, inside the chat template when one is used
    (a chat template may open the response itself, e.g. with ``<think>``)."""
    if model_cfg.use_chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                             add_generation_prompt=True, tokenize=False)
    return text


def encode_visible(tokenizer, visible: str) -> list[int]:
    """The token ids of a prompt as the model sees it (:func:`visible_prompt`): a rendered
    chat template already holds its special tokens as text, so nothing is added (what
    ``apply_chat_template(tokenize=True)`` does)."""
    return tokenizer(visible, add_special_tokens=False)["input_ids"]
