"""model.attn_implementation: null picks eager attention on CPU, anything named is kept."""

import torch

from r1kit.models.attention import auto_attention
from r1kit.models.tiny import build_model, build_tokenizer


def _model():
    return build_model(build_tokenizer(), hidden_size=64, num_layers=1, num_heads=2,
                       intermediate_size=64, max_position_embeddings=32, seed=0)


def test_cpu_default_switches_sdpa_to_eager_and_keeps_the_outputs():
    model = _model()
    assert model.config._attn_implementation == "sdpa"
    ids = torch.randint(7, 40, (2, 9))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        auto_attention([model], None, torch.device("cpu"))
        after = model(input_ids=ids).logits
    assert model.config._attn_implementation == "eager"
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_explicit_choice_or_accelerator_leaves_the_model_alone():
    model = _model()
    auto_attention([model], "sdpa", torch.device("cpu"))
    assert model.config._attn_implementation == "sdpa"
    auto_attention([model], None, torch.device("cuda", 0))  # only the device type is read
    assert model.config._attn_implementation == "sdpa"
