"""The tiny model's tokenizer loads back, through the path every run uses, as it was saved."""

import pytest
from transformers import AutoTokenizer

from r1kit.config.schema import ModelConfig, TinyModelConfig
from r1kit.models.loading import load_tokenizer, model_source
from r1kit.models.tiny import TAGS, build_tokenizer, ensure_tiny_model

TEXTS = [
    "We add 3 and 4.",
    "Line one\nline two\n\n  indented\tand tabbed  ",
    "<think> 3 + 4 = 7 </think>\n<answer> 7 </answer>",
    r"so $x = \frac{1}{2}$ and \boxed{10,455}",
]


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    return ensure_tiny_model(tmp_path_factory.mktemp("run") / "tiny_model", seed=0,
                             hidden_size=64, num_layers=1, num_heads=2, intermediate_size=64,
                             max_position_embeddings=64)


@pytest.mark.parametrize("text", TEXTS)
def test_saved_tokenizer_encodes_and_decodes_like_the_built_one(saved_dir, text):
    built = build_tokenizer()
    loaded = AutoTokenizer.from_pretrained(saved_dir)  # what vLLM and users call
    ids = built(text, add_special_tokens=False)["input_ids"]
    assert loaded(text, add_special_tokens=False)["input_ids"] == ids
    assert loaded.decode(ids) == text
    assert built.decode(ids) == text


def test_run_loading_path_keeps_whitespace_and_single_token_tags(tmp_path):
    model_cfg = ModelConfig(tiny=TinyModelConfig(hidden_size=64, num_layers=1, num_heads=2,
                                                 intermediate_size=64, max_position_embeddings=64))
    tokenizer = load_tokenizer(model_source(model_cfg, tmp_path), model_cfg)
    text = "We add 3 and 4.\n<think>x</think>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    for tag in TAGS:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    # the saved copy round-trips too (a stage exports its tokenizer for the next one)
    tokenizer.save_pretrained(tmp_path / "export")
    again = AutoTokenizer.from_pretrained(tmp_path / "export")
    assert again.decode(again(text, add_special_tokens=False)["input_ids"]) == text
