"""Scoring benign programs: full, partial and all-or-nothing credit, both test styles.

The scoring logic runs under ``isolation=none`` (these programs are ours and harmless) so it is
tested on any machine; the ``sandbox`` tests repeat the essentials under each real backend.
"""

import time

import pytest
from code_reward_helpers import FAST, fenced

from r1kit.rewards.code.reward import code_reward
from r1kit.api import plugin_options

DOUBLE = {"tests": [{"input": "1\n", "output": "2\n"}, {"input": "5\n", "output": "10"},
                    {"input": "-3\n", "output": "-6\n"}]}
RIGHT = fenced("print(int(input()) * 2)")
WRONG_ON_NEGATIVES = fenced("n = int(input())\nprint(abs(n) * 2)")  # passes 2 of 3
ADD_MBPP = {"test_code": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0",
                          "assert add(2, 2) == 5"]}  # the last assert is wrong on purpose
ADD = fenced("def add(a, b):\n    return a + b")
HUMANEVAL = {"test_code": "def check(candidate):\n    assert candidate([1, 2]) == 3\n",
             "entry_point": "total"}


def score(completions, examples, **options):
    return code_reward(completions, examples,
                       plugin_options("reward", "code", **{**FAST, **options}))


def scoring_cases():
    return (
        [RIGHT, WRONG_ON_NEGATIVES, fenced("print('nope')"), "no code at all", RIGHT,
         ADD, fenced("def total(xs):\n    return sum(xs)"), fenced("def total(xs):\n    return 0"),
         fenced("print(int(input()) * 2)  # trailing spaces and newlines are forgiven")],
        [DOUBLE, DOUBLE, DOUBLE, DOUBLE, {"prompt": "no tests here"},
         ADD_MBPP, HUMANEVAL, HUMANEVAL, DOUBLE],
        [1.0, 2 / 3, 0.0, 0.0, None, 2 / 3, 1.0, 0.0, 1.0],
    )


def test_scores_unsandboxed():
    completions, examples, expected = scoring_cases()
    assert score(completions, examples, isolation="none") == pytest.approx(expected)


@pytest.mark.sandbox
def test_scores_in_the_sandbox(backend):
    completions, examples, expected = scoring_cases()
    assert score(completions, examples, isolation=backend) == pytest.approx(expected)


def test_all_or_nothing():
    scores = score([RIGHT, WRONG_ON_NEGATIVES, ADD], [DOUBLE, DOUBLE, ADD_MBPP],
                   isolation="none", partial_credit=False)
    assert scores == [1.0, 0.0, 0.0]


def test_tests_stored_as_json_and_max_tests():
    import json

    row = {"tests": json.dumps(DOUBLE["tests"])}
    assert score([WRONG_ON_NEGATIVES], [row], isolation="none") == pytest.approx([2 / 3])
    assert score([WRONG_ON_NEGATIVES], [row], isolation="none", max_tests=2) == [1.0]


def test_stdin_and_program_files_are_the_tests():
    # big input: more than a pipe buffer, to show stdin cannot deadlock the run
    numbers = list(range(100_000))
    row = {"tests": [{"input": " ".join(map(str, numbers)), "output": str(sum(numbers))}]}
    prog = fenced("import sys\nprint(sum(map(int, sys.stdin.read().split())))")
    assert score([prog], [row], isolation="none") == [1.0]


def test_runs_share_a_bounded_worker_pool():
    sleepy = fenced("import time\ntime.sleep(1.5)\nprint(int(input()) * 2)")
    row = {"tests": [{"input": "1", "output": "2"}]}
    start = time.monotonic()
    assert score([sleepy] * 4, [row] * 4, isolation="none", workers=4) == [1.0] * 4
    # four 1.5 s programs at once; one after another they would take 6 s
    assert time.monotonic() - start < 4.5
