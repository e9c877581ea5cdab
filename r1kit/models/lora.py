"""LoRA through ``peft`` (``model.lora.rank > 0``): the policy trains low-rank adapters only.

The frozen reference of a LoRA run is the policy itself with its adapters switched off
(``reference_pass``): the base weights never change, so no second copy of them is loaded. A
sampler that keeps its own copy of the weights (vLLM) receives the merged weights
(``merged_weights``: base + the adapters' current delta, computed, never written into the base),
and a stage exports the merged model (``export``), a plain HF checkpoint the next stage loads.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

ADAPTER = "default"  # peft's name for the one adapter r1kit adds


def wrap(model, options):
    """``model`` with trainable LoRA adapters per ``options`` (``r1kit.config.schema.LoraConfig``);
    every other weight frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout,
        # all linear layers but the output head, as QLoRA's recipe: the head shares the
        # embedding matrix in tied models, and adapting it gains little
        target_modules=list(options.target_modules) if options.target_modules else "all-linear",
        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def is_lora(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "get_base_model")


@contextlib.contextmanager
def reference_pass(model):
    """Within this block ``model`` computes as the frozen base model (its adapters off)."""
    with model.disable_adapter():
        yield model


def merged_weights(model) -> Iterator[tuple[str, torch.Tensor]]:
    """The base model's checkpoint-format weights with the adapters merged in: each adapted
    linear layer's ``W + ΔW`` under its plain name; the adapter tensors themselves left out."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    adapted = {name: module for name, module in base.named_modules()
               if isinstance(module, LoraLayer)}
    for name, tensor in base.state_dict().items():
        if ".lora_" in name:
            continue
        owner, _, leaf = name.rpartition(".base_layer.")
        if owner in adapted and leaf == "weight":
            tensor = tensor + adapted[owner].get_delta_weight(ADAPTER).to(tensor.dtype)
        yield name.replace(".base_layer.", "."), tensor.detach()


def export(model):
    """The plain HF model to save at the end of a stage: adapters merged into the base weights
    (done in place: the stage is over)."""
    return model.merge_and_unload() if is_lora(model) else model
