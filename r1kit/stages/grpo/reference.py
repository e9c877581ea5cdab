"""The frozen reference model π_ref of GRPO's KL term, held for the whole run or loaded per pass.

The reference is used once per sampled rollout (its log-probs of the completions) and is never
updated, yet a resident copy holds a whole model's weights through every phase of the step,
the policy's forward, backward and optimizer step included, where it sets the peak: at
Qwen2.5-0.5B's shape it is 633 MiB of fp32 weights, about a sixth of the step's peak RSS.
``model.reference_offload=true`` loads it for each pass from the checkpoint the stage starts
from and drops it after: safetensors files are memory-mapped, so on a CPU a load costs
milliseconds (the pages are the OS's file cache, released when the model goes); on a GPU it
costs a host-to-device copy of the weights per pass, the price of that memory.

Either way the model a pass sees is the same: converted as the strategy's precision plugin
converts a frozen, unwrapped module, stored in the half dtype under mixed precision (it is
never updated, so full-precision master weights buy nothing, and autocast would otherwise
re-cast every weight at every forward), on this rank's device, in eval mode, with the
attention kernel chosen for the device.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from r1kit.models.attention import auto_attention

#: Lightning's mixed precisions -> the dtype autocast computes in.
MIXED_PRECISION_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class FrozenReference:
    """π_ref: ``load()`` builds the frozen model (``load_model(..., trainable=False)``); with
    ``offload`` it is built again for every :meth:`use` and dropped after, else built once."""

    def __init__(self, load: Callable[[], torch.nn.Module], *, offload: bool = False):
        self._load = load
        # built now either way: a checkpoint that does not load fails before any work
        model = load()
        self._resident = None if offload else model
        self._prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None

    @property
    def resident(self) -> torch.nn.Module | None:
        """The model held between passes (None when offloaded)."""
        return self._resident

    def setup(self, trainer, device, attention: str | None) -> None:
        """Fix how the model is placed (``on_fit_start``: the strategy, device and precision
        are known), and place the resident one."""
        plugin = trainer.precision_plugin
        half = MIXED_PRECISION_DTYPES.get(str(getattr(plugin, "precision", "")))

        def prepare(model):
            model = plugin.convert_module(model)
            if half is not None:
                model = model.to(half)
            model = model.to(device).eval()
            auto_attention([model], attention, device)
            return model

        self._prepare = prepare
        if self._resident is not None:
            self._resident = prepare(self._resident)

    @contextlib.contextmanager
    def use(self) -> Iterator[torch.nn.Module]:
        """The reference, ready for a no-grad pass."""
        if self._resident is not None:
            yield self._resident
            return
        model = self._load()
        if self._prepare is not None:
            model = self._prepare(model)
        try:
            yield model
        finally:
            del model  # nothing else refers to it: its weights go now
