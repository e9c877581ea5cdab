"""Which attention kernel the training forward and backward passes use.

``model.attn_implementation`` names one (any value transformers accepts: ``sdpa``, ``eager``,
``flash_attention_2``, ...) and the model is loaded with it. Left at null, r1kit picks by the
device the model trains on: the model's default (``sdpa``) on accelerators, ``eager`` on CPU.
On CPU, torch's SDPA backward (its flash-attention kernel) dominates the whole training pass:
in a profiled fwd+bwd of the 8.4M-parameter benchmark model under bf16 autocast it took 308 of
703 ms, for 8 calls, while the forward took 17 ms. Eager attention (matmul, softmax, matmul) is
as fast in float32 on the 1M model and 1.2x (float32) to 1.6-1.7x (bf16) faster in fwd+bwd on
the 1M and 8.4M models (``experiments/2026-11-21-grpo-vs-trl.md``). The packed log-prob passes
(``r1kit.algo.logprobs``) give the same results with either.
"""

from __future__ import annotations

#: Values of ``model.attn_implementation`` besides null.
KNOWN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3",
                         "flex_attention")


def auto_attention(models, configured: str | None, device) -> None:
    """With ``model.attn_implementation`` null, switch ``models`` that train or score on a CPU
    from SDPA to eager attention; anything configured explicitly is left as loaded."""
    if configured is not None or getattr(device, "type", str(device)) != "cpu":
        return
    for model in models:
        if getattr(model.config, "_attn_implementation", None) == "sdpa" and hasattr(
                model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
