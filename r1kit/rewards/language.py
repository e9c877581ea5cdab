"""The ``language`` reward: R1's language-consistency reward.

DeepSeek-R1 rewards "the proportion of target language words in the CoT" to stop the chain of
thought from mixing languages. Telling English from French needs a language model; telling
English from Chinese, the mixing R1 actually saw, needs only the Unicode script of each word. So
a word is in the target language when its script is one the language is written in
(:data:`LANGUAGE_SCRIPTS`). Nothing is downloaded and the answer is exact for what it measures;
the price is that languages sharing a script (en, fr, de, ...) are not told apart.

What counts as a word:

- a run of letters of one script; scripts written without spaces between words (Han, kana,
  Thai, ...) count each character as a word, the usual unit when words cannot be segmented;
- neutral, i.e. counted neither way: digits, punctuation and math symbols; LaTeX commands
  (``\\frac``); single Latin or Greek letters (variables such as ``x`` or ``π``, which every
  language's math uses; English "a" and "I" go with them); mathematical alphanumerics (``𝑥``);
  the template's tags.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from r1kit import hookimpl

#: Scripts each language is written in. Keys are ISO 639-1 codes; a region or script suffix
#: (``en-US``, ``zh_Hans``) is ignored.
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ["en", "fr", "de", "es", "it", "pt", "nl", "pl", "cs", "sv", "da", "no", "fi", "tr",
         "vi", "id", "ms", "ro", "hu", "ca", "hr", "sk", "sl", "et", "lv", "lt", "sw", "tl"],
        frozenset({"Latin"})),
    **dict.fromkeys(["ru", "uk", "bg", "be", "sr", "mk", "kk"], frozenset({"Cyrillic"})),
    **dict.fromkeys(["ar", "fa", "ur"], frozenset({"Arabic"})),
    **dict.fromkeys(["hi", "mr", "ne"], frozenset({"Devanagari"})),
    "zh": frozenset({"Han"}),
    "ja": frozenset({"Han", "Hiragana", "Katakana"}),
    "ko": frozenset({"Hangul", "Han"}),
    "el": frozenset({"Greek"}),
    "he": frozenset({"Hebrew"}),
    "bn": frozenset({"Bengali"}),
    "ta": frozenset({"Tamil"}),
    "te": frozenset({"Telugu"}),
    "th": frozenset({"Thai"}),
}

# Scripts whose words are not separated by spaces: each character is a word.
_UNSPACED = frozenset({"Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar"})
# Scripts that math borrows single letters from for variables.
_VARIABLE_SCRIPTS = frozenset({"Latin", "Greek"})
# Character-name prefixes whose first word is not the script's name (checked in order).
_SCRIPT_BY_PREFIX = (
    ("CJK ", "Han"), ("IDEOGRAPHIC", "Han"),
    ("HALFWIDTH KATAKANA", "Katakana"), ("KATAKANA-HIRAGANA", "Katakana"),
    ("HALFWIDTH HANGUL", "Hangul"), ("FULLWIDTH LATIN", "Latin"),
    ("MATHEMATICAL", None),  # 𝑥, 𝔸: math symbols in letter clothing
)
_TAGS = re.compile(r"</?(?:think|answer)>")
_ASCII_WORD = re.compile(r"(\\?)([A-Za-z]+)")


@dataclass
class LanguageOptions:
    """Options of the ``language`` reward (config node ``reward.language``)."""

    #: ISO 639-1 code of the language the chain of thought should be in.
    language: str = "en"

    def __post_init__(self) -> None:
        scripts_for(self.language)  # fail at config time on an unknown language


def scripts_for(language: str) -> frozenset[str]:
    """The scripts ``language`` (``"en"``, ``"zh-CN"``, ...) is written in."""
    code = re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()
    if code not in LANGUAGE_SCRIPTS:
        raise ValueError(f"reward.language.language: unknown language {language!r}; known: "
                         f"{', '.join(sorted(LANGUAGE_SCRIPTS))}")
    return LANGUAGE_SCRIPTS[code]


def chain_of_thought(completion: str) -> str:
    """The reasoning part of ``completion``.

    The text of the first ``<think>…</think>`` block; when the prompt opened the block (the
    R1-Zero template), everything before the first ``</think>``; when the block never closes
    (a truncated completion), everything after ``<think>``. Without any think tag the whole
    completion is the reasoning: a model that drops the template still gets a language signal,
    and the ``format`` reward is there to punish the missing tags.
    """
    end = completion.find("</think>")
    if end == -1:
        start = completion.find("<think>")
        return completion if start == -1 else completion[start + len("<think>"):]
    start = completion.rfind("<think>", 0, end)
    return completion[start + len("<think>") if start != -1 else 0:end]


@functools.lru_cache(maxsize=65536)
def script_of(char: str) -> str | None:
    """The Unicode script of a letter (``"Latin"``, ``"Han"``, ...), from its character name;
    ``None`` for math alphanumerics and unnamed characters."""
    name = unicodedata.name(char, "")
    for prefix, script in _SCRIPT_BY_PREFIX:
        if name.startswith(prefix):
            return script
    return name.split(" ", 1)[0].title() or None


def words_by_script(text: str) -> list[str | None]:
    """The script of every non-neutral word of ``text`` (see the module docstring)."""
    text = unicodedata.normalize("NFC", _TAGS.sub(" ", text))
    if text.isascii():  # the common case, and ~50x faster than the loop below
        return ["Latin" for backslash, word in _ASCII_WORD.findall(text)
                if not backslash and len(word) > 1]
    scripts: list[str | None] = []
    word_script, word_len, latex = None, 0, False

    def end_word() -> None:
        if word_len and not latex and not (word_len == 1 and word_script in _VARIABLE_SCRIPTS):
            scripts.append(word_script)

    previous = ""
    for char in text:
        category = unicodedata.category(char)
        if category[0] == "M" or category == "Lm":
            pass  # accents, vowel signs, length marks belong to the word they are in
        elif category[0] == "L":
            script = script_of(char)
            if script in _UNSPACED or script != word_script:
                end_word()
                word_script, word_len, latex = script, 0, previous == "\\"
            word_len += 1
            if script in _UNSPACED:
                end_word()
                word_script, word_len = None, 0
            if script is None:  # a math alphanumeric is neutral on its own and in a run
                word_len = 0
        else:
            end_word()
            word_script, word_len = None, 0
        previous = char
    end_word()
    return scripts


def language_consistency(text: str, scripts: frozenset[str]) -> float | None:
    """The share of ``text``'s words written in one of ``scripts``; ``None`` without words."""
    found = words_by_script(text)
    if not found:
        return None
    return sum(script in scripts for script in found) / len(found)


def language_reward(completions: list[str], examples: list[dict],
                    options: LanguageOptions) -> list[float | None]:
    """The share of the chain of thought's words that are in ``language`` (0.0 to 1.0).

    ``None`` when the chain of thought has no words (empty, or only math): consistency is
    undefined there, and 0.0 would punish a terse but monolingual reasoning.
    """
    scripts = scripts_for(options.language)
    return [language_consistency(chain_of_thought(completion), scripts)
            for completion in completions]


@hookimpl
def r1kit_register_rewards(register):
    register("language", language_reward, schema=LanguageOptions)
