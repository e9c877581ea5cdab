"""Random-weight models of real checkpoints' shapes, fewer layers, for the benchmarks.

The widths, heads, KV heads, MLP size, RoPE base and vocabulary are the real config's, so the
output head (the largest matrix, and the one whose logits bound a GRPO step's memory) is the
real one; the tokenizer is r1kit's tiny character tokenizer (its ids are the first ~100 of the
vocabulary; sampled ids beyond it decode to nothing, as unknown ids do), which is all a memory
and speed measurement needs.
"""

from __future__ import annotations

from pathlib import Path

#: Qwen2.5-0.5B (config.json on the hub): vocabulary 151,936, width 896, 14 heads / 2 KV heads.
QWEN25_05B = dict(vocab_size=151936, hidden_size=896, num_attention_heads=14,
                  num_key_value_heads=2, intermediate_size=4864, max_position_embeddings=32768,
                  rope_theta=1e6, tie_word_embeddings=True)


def build_qwen25_05b(directory: Path, layers: int) -> Path:
    """Write a Qwen2.5-0.5B-shaped model with ``layers`` decoder layers to ``directory`` once."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from r1kit.models.tiny import build_tokenizer

    directory = Path(directory)
    if (directory / "config.json").exists():
        return directory
    tokenizer = build_tokenizer()
    config = Qwen2Config(num_hidden_layers=layers, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.eos_token_id, use_sliding_window=False,
                         **QWEN25_05B)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
