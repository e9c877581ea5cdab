"""With ``model.use_chat_template``, the prompt a model sees is the chat template's rendering,
which may open the response itself (Qwen3's and R1-distill's templates end with ``<think>``):
its ids are those ``apply_chat_template`` gives, and the format reward judges in its context."""

from omegaconf import OmegaConf

from r1kit.data.response import opened_response
from r1kit.models.loading import encode_visible, visible_prompt
from r1kit.models.tiny import build_tokenizer
from r1kit.rewards.format import format_reward

# the shape of a reasoning model's template: the generation prompt opens the thinking block
THINKING_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
                     "{% endfor %}{% if add_generation_prompt %}<assistant><think>\n{% endif %}")


def _tokenizer():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = THINKING_TEMPLATE
    return tokenizer


def test_visible_prompt_is_the_chat_rendering_and_its_ids_are_apply_chat_templates():
    tokenizer, cfg = _tokenizer(), OmegaConf.create({"use_chat_template": True})
    visible = visible_prompt(tokenizer, "What is 2 + 2?", cfg)
    assert visible == "<user>What is 2 + 2?</user><assistant><think>\n"
    expected = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}],
                                             add_generation_prompt=True, tokenize=True)
    expected = expected["input_ids"] if hasattr(expected, "keys") else expected
    assert encode_visible(tokenizer, visible) == list(expected)


def test_without_a_chat_template_the_rendered_text_is_what_the_model_sees():
    tokenizer, cfg = _tokenizer(), OmegaConf.create({"use_chat_template": False})
    assert visible_prompt(tokenizer, "What is 2 + 2?", cfg) == "What is 2 + 2?"


def test_format_is_judged_after_the_think_the_chat_template_opened():
    tokenizer, cfg = _tokenizer(), OmegaConf.create({"use_chat_template": True})
    visible = visible_prompt(tokenizer, "What is 2 + 2?", cfg)
    assert opened_response(visible) == "<think>\n"
    row = {"prompt": "What is 2 + 2?", "rendered_prompt": visible}
    assert format_reward(["2 + 2 = 4</think>\n<answer>4</answer>"], [row]) == [1.0]
    assert format_reward(["<think>2 + 2 = 4</think>\n<answer>4</answer>"], [row]) == [0.0]
