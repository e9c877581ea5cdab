"""A stage's exported model: the whole of the policy's weights, whatever the strategy sharded."""

from __future__ import annotations

import torch


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s complete weights on the CPU. Under FSDP/FSDP2 each rank holds a shard, and
    this gathers them (a collective: call it on every rank; rank 0 gets the weights, the others
    an empty dict); for an unsharded model it is its own state dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                cpu_offload=True))
