"""Finding the program in a completion, reading a row's tests, comparing output (no sandbox)."""

import doctest
import json

import pytest

from r1kit.rewards.code import extract, testcases
from r1kit.rewards.code.extract import extract_program
from r1kit.rewards.code.testcases import TestCase, collect_tests, normalize_output


@pytest.mark.parametrize("module", [extract, testcases])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("completion, program", [
    # fenced block inside the answer beats the answer's prose and the drafts in <think>
    ("<think>```python\ndraft()\n```</think><answer>Use this:\n```python\nfinal()\n```\n</answer>",
     "final()\n"),
    # the last <answer> and, inside it, the last python block
    ("<answer>```python\na()\n```</answer> <answer>```python\nb()\n```\n```py\nc()\n```</answer>",
     "c()\n"),
    # an untagged fence inside the answer counts; a tagged one wins over it
    ("<answer>```\nplain()\n```</answer>", "plain()\n"),
    ("<answer>```python\ntagged()\n```\n```\nplain()\n```</answer>", "tagged()\n"),
    # the answer's bare text
    ("<answer>\nprint(1)\n</answer>", "print(1)"),
    # no answer: the last python block anywhere; untagged or other-language fences don't count
    ("```python\nfirst()\n```\ntext\n```python3\nsecond()\n```\n```\nnot_code\n```",
     "second()\n"),
    ("```cpp\nint main(){}\n```", None),
    ("<answer>```cpp\nint main(){}\n```</answer>", None),
    ("<answer>  </answer>", None),
    ("I cannot solve this.", None),
    # an unclosed answer (generation cut off) falls back to fences
    ("<answer>```python\nx()\n```", "x()\n"),
])
def test_extract_program(completion, program):
    assert extract_program(completion) == program


def test_extract_program_uses_the_runners_tags():
    assert extract_program("```cpp\nint main(){}\n```", ("cpp",)) == "int main(){}\n"


def test_normalize_output_ignores_trailing_whitespace_only():
    assert normalize_output("a b  \n c\t\n\n\n") == "a b\n c"
    assert normalize_output("1\r\n2\r\n") == "1\n2"
    assert normalize_output(" 1") != normalize_output("1")  # leading space matters
    assert normalize_output("1\n\n2") != normalize_output("1\n2")  # inner blank lines matter


def test_collect_tests_accepts_lists_json_and_apps_style():
    pairs = [{"input": "1\n", "output": "2\n"}, {"input": "3", "output": 6}]
    expected = [TestCase(stdin="1\n", expected="2\n"), TestCase(stdin="3", expected="6")]
    assert collect_tests({"tests": pairs}) == expected
    assert collect_tests({"tests": json.dumps(pairs)}) == expected
    apps = json.dumps({"inputs": ["1\n", "3"], "outputs": ["2\n", "6"]})
    assert collect_tests({"tests": apps}) == expected
    assert collect_tests({"tests": [{"input": ["1", "2"], "output": ["3"]}]}) == [
        TestCase(stdin="1\n2", expected="3")]


def test_collect_tests_assert_style_and_limits():
    assert collect_tests({"test_code": "assert f(1) == 2"}) == [
        TestCase(test_code="assert f(1) == 2")]
    row = {"tests": [{"input": "", "output": "x"}], "test_code": ["assert a", "assert b", " "]}
    assert len(collect_tests(row)) == 3  # blank test code is no test
    assert len(collect_tests(row, max_tests=2)) == 2


def test_collect_tests_calls_humaneval_check():
    row = {"test_code": "def check(candidate):\n    assert candidate(1) == 2\n",
           "entry_point": "inc"}
    assert collect_tests(row)[0].test_code.rstrip().endswith("check(inc)")
    already = {"test_code": "def check(c):\n    pass\ncheck(inc)\n", "entry_point": "inc"}
    assert collect_tests(already)[0].test_code.count("check(inc)") == 1


@pytest.mark.parametrize("row", [{}, {"prompt": "p"}, {"tests": []}, {"tests": "[]"},
                                 {"tests": ""}, {"tests": None, "test_code": ""}])
def test_rows_without_tests(row):
    assert collect_tests(row) is None


def test_malformed_tests_fail_loudly():
    with pytest.raises(ValueError, match="input"):
        collect_tests({"tests": [{"stdin": "1"}]})
    with pytest.raises(json.JSONDecodeError):
        collect_tests({"tests": "[{broken"})
