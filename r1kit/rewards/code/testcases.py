"""The tests of a dataset row, and how a run's output is judged against them.

Two styles, both accepted in one row:

- ``tests``: stdin/stdout pairs (Codeforces, APPS, CodeContests): ``[{"input": ..., "output":
  ...}]``, or the same as a JSON string (how most datasets store them), or APPS's
  ``{"inputs": [...], "outputs": [...]}``. Each pair is one test.
- ``test_code``: assert-style Python run after the program (MBPP, HumanEval); a string is one
  test, a list of strings is one test each. A HumanEval row's ``check(candidate)`` is called
  on its ``entry_point``. Passing means exiting with status 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest test class, despite the name

    stdin: str = ""
    #: The expected stdout; None for assert-style tests, which pass on exit status 0.
    expected: str | None = None
    #: Assert-style code appended after the program.
    test_code: str = ""

    def passed(self, result) -> bool:
        """Whether a run (a :class:`~r1kit.rewards.code.sandbox.RunResult`) passes this test."""
        if not result.ok:
            return False
        return self.expected is None or (
            normalize_output(result.stdout) == normalize_output(self.expected))


def normalize_output(text: str) -> str:
    """Judges compare output up to trailing whitespace on each line and at the end.

    >>> normalize_output("1 2 \\r\\n3\\n\\n") == normalize_output("1 2\\n3")
    True
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).rstrip("\n")


def collect_tests(example: dict, max_tests: int | None = None) -> list[TestCase] | None:
    """The row's tests (at most ``max_tests``), or None when it has none."""
    cases = [TestCase(stdin=_text(t["input"]), expected=_text(t["output"]))
             for t in _io_pairs(example.get("tests"))]
    test_code = example.get("test_code")
    if isinstance(test_code, str):
        test_code = [test_code]
    entry_point = example.get("entry_point")
    cases += [TestCase(test_code=_call_check(code, entry_point))
              for code in test_code or () if code.strip()]
    if max_tests is not None:
        cases = cases[:max_tests]
    return cases or None


def _io_pairs(tests) -> list[dict]:
    if isinstance(tests, str):
        tests = json.loads(tests) if tests.strip() else None
    if isinstance(tests, dict):  # APPS's input_output column
        tests = [{"input": i, "output": o}
                 for i, o in zip(tests.get("inputs", ()), tests.get("outputs", ()))]
    if tests is None:
        return []
    if not isinstance(tests, list) or not all(
            isinstance(t, dict) and "input" in t and "output" in t for t in tests):
        raise ValueError("a row's `tests` must be a list of {'input': ..., 'output': ...} "
                         f"(or its JSON); got {str(tests)[:200]!r}")
    return tests


def _text(value) -> str:
    # some datasets store an input or output as a list of lines
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


_DEFINES_CHECK = re.compile(r"^def check\(", re.MULTILINE)
_CALLS_CHECK = re.compile(r"^check\(", re.MULTILINE)


def _call_check(test_code: str, entry_point: str | None) -> str:
    # HumanEval's tests only define check(candidate); the harness is expected to call it
    if entry_point and _DEFINES_CHECK.search(test_code) and not _CALLS_CHECK.search(test_code):
        return f"{test_code}\n\ncheck({entry_point})\n"
    return test_code
