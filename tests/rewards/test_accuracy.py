"""The accuracy reward: answer extraction, math-verify equivalence, threads, the time limit."""

import doctest
import threading
import time

import pytest

from r1kit.rewards import accuracy, answer
from r1kit.rewards.accuracy import AccuracyOptions, accuracy_reward, fast_verdict, math_verify_equal
from r1kit.rewards.answer import extract_answer, last_boxed


def score(completion, gold, **options):
    return accuracy_reward([completion], [{"prompt": "q", "answer": gold}], **options)[0]


@pytest.mark.parametrize("completion, gold", [
    ("<think>...</think><answer>579</answer>", "579"),
    ("<answer>579</answer>", 579),  # a dataset may store the answer as a number
    ("<answer>\\frac{1}{2}</answer>", "0.5"),
    ("<answer>0.5</answer>", "\\frac{1}{2}"),
    ("<answer>2/4</answer>", "\\frac{1}{2}"),
    ("<answer>\\dfrac12</answer>", "1/2"),
    ("<answer>1,000</answer>", "1000"),
    ("<answer>1000</answer>", "1,000"),
    ("<answer>\\frac{\\sqrt{2}}{2}</answer>", "\\frac{1}{\\sqrt{2}}"),
    ("<answer>1 + x^2</answer>", "x^2+1"),
    ("<answer>5, 3</answer>", "\\{3, 5\\}"),
    ("<answer>The answer is $\\boxed{42}$.</answer>", "42"),
    ("so the result is \\boxed{\\frac{3}{\\sqrt{9}}}", "1"),  # nested braces, no answer tag
    ("<answer>3</answer> wait, no: <answer>4</answer>", "4"),  # the last answer counts
], ids=lambda v: str(v)[:30])
def test_equivalent_forms_score_one(completion, gold):
    assert score(completion, gold) == 1.0


@pytest.mark.parametrize("completion, gold", [
    ("<answer>580</answer>", "579"),
    ("<answer>\\frac{1}{3}</answer>", "0.5"),
    ("<answer>4</answer> wait, no: <answer>3</answer>", "4"),
    ("The answer is 579", "579"),  # neither an answer block nor a box: no answer given
    ("<answer></answer>", "579"),
    ("\\boxed{579", "579"),  # truncated box
], ids=lambda v: str(v)[:30])
def test_wrong_or_missing_answers_score_zero(completion, gold):
    assert score(completion, gold) == 0.0


@pytest.mark.parametrize("gold, expected", [
    ("Halving gives $\\boxed{\\frac{1}{2}}$.", 1.0),  # MATH stores the worked solution
    ("<think>1/4+1/4</think><answer>1/2</answer>", 1.0),  # a cold-start style solution
    ("Twice that is $\\boxed{1}$.", 0.0),
])
def test_reference_solutions_are_reduced_to_their_final_answer(gold, expected):
    assert score("<answer>0.5</answer>", gold) == expected


def test_rows_without_reference_answer_give_none():
    examples = [{"prompt": "say hi"}, {"prompt": "q", "answer": None},
                {"prompt": "q", "answer": " "}, {"prompt": "q", "answer": "1"}]
    assert accuracy_reward(["<answer>hi</answer>"] * 3 + ["<answer>1</answer>"], examples) == [
        None, None, None, 1.0]


def test_extract_answer_prefers_last_answer_block_then_last_box():
    assert extract_answer("\\boxed{1} <answer>2</answer>") == "2"
    assert extract_answer("<answer>see \\boxed{\\frac{1}{2}} and \\boxed{3}</answer>") == "3"
    assert extract_answer("\\boxed{1} then \\boxed {\\frac{a}{b^{2}}}") == "\\frac{a}{b^{2}}"
    assert extract_answer("<answer> \n </answer>") is None
    assert extract_answer("no answer here") is None


def test_last_boxed_skips_a_truncated_box():
    assert last_boxed("\\boxed{7} and \\boxed{\\frac{1}{2") == "7"


def test_docstring_examples_hold():
    assert doctest.testmod(answer).failed == 0


@pytest.mark.parametrize("gold, pred", [
    ("579", "579"), ("579", "580"), ("007", "7"), ("+5", "5"), ("-0", "0"), ("5", "5.0"),
    ("0.50", "0.5"), ("0.3333333", "0.33333333"), ("12", "12.000001"),
    ("123456789012345", "123456789012346"), ("1234567890123456", "1234567890123457"),
    ("1,000", "1000"), ("\\frac{1}{2}", "0.5"),
])
def test_fast_path_never_contradicts_math_verify(gold, pred):
    verdict = fast_verdict(gold, pred)
    if verdict is not None:  # where it decides, it must decide as math-verify does
        assert verdict == math_verify_equal(gold, pred)


def test_fast_path_decides_plain_integers():
    assert fast_verdict("579", "579") is True
    assert fast_verdict("579", "580") is False
    assert fast_verdict("0.3333333", "0.33333333") is None  # math-verify rounds: it decides
    assert fast_verdict("1,000", "1000") is None


def test_works_off_the_main_thread():
    # math-verify's own timeout uses signal.alarm, which raises off the main thread.
    results = []
    thread = threading.Thread(target=lambda: results.append(
        accuracy_reward(["<answer>\\frac{2}{4}</answer>", "<answer>0.25</answer>"],
                        [{"answer": "0.5"}, {"answer": "0.5"}])))
    thread.start()
    thread.join(timeout=60)
    assert results == [[1.0, 0.0]]


def test_pathological_answer_times_out_scores_zero_and_is_counted():
    before = accuracy.COUNTERS["timeouts"]
    start = time.monotonic()
    # sympy tries to evaluate the power tower and never finishes.
    scores = accuracy_reward(["<answer>9^{9^{9^{9}}}</answer>", "<answer>\\frac{1}{2}</answer>"],
                             [{"answer": "5"}, {"answer": "0.5"}], sample_timeout=0.5)
    assert scores == [0.0, 1.0]
    assert accuracy.COUNTERS["timeouts"] == before + 1
    assert time.monotonic() - start < 10  # a worker start (~1 s) plus the 0.5 s limit
    # The stuck worker was replaced: the pool still answers.
    assert score("<answer>2/4</answer>", "0.5") == 1.0


def test_options_are_validated():
    with pytest.raises(ValueError, match="sample_timeout"):
        AccuracyOptions(sample_timeout=0)
    with pytest.raises(ValueError, match="workers"):
        AccuracyOptions(workers=0)
    with pytest.raises(TypeError):
        accuracy_reward(["<answer>1</answer>"], [{"answer": "1"}], sample_timeuot=3)
