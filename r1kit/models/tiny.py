"""A tiny Qwen2-architecture causal LM with a character-level tokenizer, built locally (no hub).

Every printable ASCII character is one token, and the R1 tags (``<think>``, ``</think>``,
``<answer>``, ``</answer>``) are single tokens so the format is cheap to learn. Attention
head_dim stays at 32 because vLLM's CPU attention kernels reject 16.

The tokenizer is a byte-level BPE with no merges, built exactly as transformers' own
``Qwen2Tokenizer`` builds one from a vocabulary: ``AutoTokenizer`` loads any directory whose
``config.json`` says ``qwen2`` as a ``Qwen2Tokenizer``, rebuilding the normaliser, pre-tokeniser
and decoder from the vocabulary alone. A plain character-level tokenizer saved there came back
without its whitespace ("We add 3" -> "Weadd3"); this one comes back as it was saved.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import tempfile
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
CHARS = [c for c in string.printable if c not in "\x0b\x0c\r"]


def _byte_to_unicode() -> dict[int, str]:
    """The byte-level alphabet (GPT-2's): printable bytes stand for themselves, the others
    (space, newline, tab, ...) are shifted to printable code points (space -> "Ġ")."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable},
            **{b: chr(256 + n) for n, b in enumerate(shifted)}}


def build_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character (ids in ``CHARS`` order, after the special
    tokens and tags); other characters have no token and are dropped, as a byte-level BPE
    without an unknown token drops them."""
    alphabet = _byte_to_unicode()
    tokens = [PAD, EOS, UNK, *TAGS, *(alphabet[ord(c)] for c in CHARS)]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    # what Qwen2Tokenizer.__init__ builds, so loading it back through AutoTokenizer changes
    # nothing; with no merges, every byte stays a token of its own
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], continuing_subword_prefix="",
                               end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([PAD, EOS, UNK])
    tok.add_tokens(list(TAGS))  # matched before the pre-tokeniser splits, so one token each
    # prompts are padded on the left so generation continues right after each prompt
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   unk_token=UNK, padding_side="left")


def build_model(tokenizer, *, hidden_size: int, num_layers: int, num_heads: int,
                intermediate_size: int, max_position_embeddings: int, seed: int):
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_heads,
        intermediate_size=intermediate_size, max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        use_sliding_window=False, torch_dtype="float32",
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(config)


def ensure_tiny_model(directory: str | Path, *, seed: int, **sizes) -> Path:
    """Write the tiny model and tokenizer to ``directory`` once; later calls reuse them.

    Saving to disk (rather than keeping it in memory) gives every consumer — the reference
    model, a vLLM engine, a resumed run — the same initial weights through the same loading
    path as a hub model.
    """
    directory = Path(directory)
    marker = directory / "r1kit_tiny.json"
    spec = {"seed": seed, **sizes}
    if marker.exists():
        if json.loads(marker.read_text()) != spec:
            raise ValueError(f"{directory} holds a tiny model built with {marker.read_text()}, "
                             f"not {spec}; use another run directory")
        return directory
    # Build in a private directory and rename it into place: processes started together (DDP,
    # srun) may all get here, and none may ever see a half-written model.
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=directory.parent))
    tokenizer = build_tokenizer()
    build_model(tokenizer, seed=seed, **sizes).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / marker.name).write_text(json.dumps(spec))
    try:
        os.rename(staging, directory)
    except OSError:  # another process won the race; its model is the same
        shutil.rmtree(staging, ignore_errors=True)
        if not marker.exists():
            raise
    return directory
