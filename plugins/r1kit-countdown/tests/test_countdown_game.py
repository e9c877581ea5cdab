"""The game: parsing, exact evaluation, the each-number-once rule, and what is rejected."""

import doctest
from fractions import Fraction

import pytest

from r1kit_countdown import game


@pytest.mark.parametrize("expression, value", [
    ("7 * 3 + 25", 46),
    ("-3 + 7", 4),
    ("(3 - 1/4) * 4", 11),  # fractional intermediates are fine
    ("1 / 3 * 3", 1),  # exact arithmetic, not 0.9999999999999999
    (" ( ( 25 ) ) ", 25),
    ("--3", 3),
])
def test_evaluate(expression, value):
    assert game.evaluate(game.parse(expression)) == Fraction(value)


@pytest.mark.parametrize("expression", [
    "__import__('os').system('echo pwned')",
    "2 ** 10",  # power
    "7 // 2",  # floor division
    "7 % 2",
    "x + 1",
    "3_0",  # ast reads 30
    "0x1e",
    "2.5",
    "1e3",
    "+3",  # unary plus is not in the rule set
    "[3, 7]",
    "(3, 7)",
    "3 7",
    "(3 + 7",
    "",
    "1 + " * 60 + "1",  # over the length cap
    "7 / (3 - 3)",
])
def test_rejects_everything_but_the_four_operators(expression):
    with pytest.raises(game.InvalidExpression):
        game.evaluate(game.parse(expression))


@pytest.mark.parametrize("expression, numbers, uses", [
    ("5 * 5 - 3", [5, 3, 5], True),  # repeated numbers each used as often as given
    ("5 * 3", [5, 3, 5], False),  # one 5 unused: exactly once means every number
    ("5 * 5 * 5 - 3", [5, 3, 5], False),
    ("53 - 5", [5, 3, 5], False),  # gluing digits makes another number
    ("-(7 - 3) + 25", [3, 7, 25], True),
])
def test_each_number_exactly_once(expression, numbers, uses):
    assert game.uses_numbers(game.parse(expression), numbers) is uses


def test_solves_within_tolerance():
    assert game.solves("5 / 2", [2, 5], 2.5)
    assert game.solves("(1 + 2) / 3", [1, 2, 3], 1.0000000001)
    assert not game.solves("(1 + 2) / 3", [1, 2, 3], 1.001)



def test_docstring_examples():
    result = doctest.testmod(game)
    assert result.attempted and not result.failed
