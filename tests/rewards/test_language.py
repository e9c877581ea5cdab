"""The language-consistency reward: the share of chain-of-thought words in the target language."""

import pytest

from r1kit.rewards.language import (LanguageOptions, chain_of_thought, language_consistency,
                                    language_reward, scripts_for, words_by_script)
from r1kit.api import plugin_options


def score(completion, language="en"):
    return language_reward([completion], [{"prompt": "q"}],
                           plugin_options("reward", "language", language=language))[0]


def test_english_reasoning_is_consistent_in_english():
    assert score("<think>First add the two numbers, then divide.</think><answer>3</answer>") == 1.0


def test_chinese_reasoning():
    completion = "<think>首先把两个数相加，然后相除。</think><answer>3</answer>"
    assert score(completion, "zh") == 1.0
    assert score(completion, "en") == 0.0


def test_mixed_reasoning_gives_the_share_of_target_words():
    # 4 English words, and 2 Han characters (each a word: Chinese is written without spaces).
    completion = "<think>Let me compute 计算 this</think><answer>3</answer>"
    assert score(completion, "en") == pytest.approx(4 / 6)
    assert score(completion, "zh") == pytest.approx(2 / 6)


def test_only_the_chain_of_thought_counts():
    assert score("<think>Add them up.</think><answer>答案是三</answer>") == 1.0


def test_math_is_neutral():
    # LaTeX commands, digits, symbols and single-letter (Latin, Greek) variables are neutral.
    assert words_by_script("\\frac{x}{y} = 2\\pi r, α + β = 3") == []
    assert score("<think>所以 x = \\frac{1}{2}</think><answer>0.5</answer>", "zh") == 1.0


def test_reasoning_without_words_gives_none():
    assert score("<think></think><answer>3</answer>") is None
    assert score("<think>2 + 3 = 5</think><answer>5</answer>") is None


@pytest.mark.parametrize("completion, expected", [
    ("<think>a b</think><answer>c</answer>", "a b"),
    ("a b</think><answer>c</answer>", "a b"),  # the prompt opened the think block
    ("<think>a b", "a b"),  # truncated
    ("a b <answer>c</answer>", "a b <answer>c</answer>"),  # no think tags: all of it
])
def test_chain_of_thought(completion, expected):
    assert chain_of_thought(completion) == expected


def test_no_think_block_uses_the_whole_completion_without_tags():
    assert score("Adding gives three. <answer>3</answer>") == 1.0
    assert score("相加得三。<answer>3</answer>") == 0.0


def test_scripts():
    assert words_by_script("Привет мир") == ["Cyrillic", "Cyrillic"]
    assert words_by_script("café naïve") == ["Latin", "Latin"]
    assert words_by_script("カタカナです") == ["Katakana"] * 4 + ["Hiragana"] * 2
    assert language_consistency("カタカナと漢字", scripts_for("ja")) == 1.0
    assert language_consistency("Привет world", scripts_for("ru")) == 0.5


def test_language_codes():
    assert scripts_for("en-US") == scripts_for("en") == frozenset({"Latin"})
    assert scripts_for("zh_Hans") == frozenset({"Han"})
    with pytest.raises(ValueError, match="unknown language 'klingon'.*known: ar"):
        LanguageOptions(language="klingon")
