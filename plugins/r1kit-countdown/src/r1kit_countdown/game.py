"""The Countdown numbers game: make ``target`` from ``numbers`` with ``+ - * /`` and parentheses.

Rule (the one TinyZero's reward checks): every number is used **exactly once** -- the multiset
of number literals in the expression equals the puzzle's ``numbers``. Unary minus is allowed
(``-3 + 7``), numbers may not be glued together (``37`` from 3 and 7 is a different literal) and
intermediate values may be fractions (``(3 - 1/4) * 4`` is 11).

Expressions come from a model, so they are never ``eval``ed: the text is limited to digits,
spaces, ``+ - * / ( )`` and a length cap, parsed with :mod:`ast`, and walked by a tiny
interpreter that knows only integer literals, the four operators and unary minus, in exact
:class:`~fractions.Fraction` arithmetic. Pure Python, no r1kit imports.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

#: Longer answers are rejected before parsing (a real answer is ~20 characters; the cap keeps
#: parser time and recursion depth bounded whatever the model writes).
MAX_EXPRESSION_CHARS = 200

# Also rules out what ast would accept but the game does not: ``3_0``, ``0x1e``, ``2.5``, ``1e3``.
_ALLOWED_TEXT = re.compile(r"[0-9+\-*/()\s]*")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}


class InvalidExpression(ValueError):
    """The text is not an expression of the game (syntax, a forbidden construct, division by 0)."""


def parse(expression: str) -> ast.expr:
    """The syntax tree of ``expression``, or :class:`InvalidExpression`.

    >>> ast.dump(parse("-3 + 7"))[:5]
    'BinOp'
    >>> parse("__import__('os')")
    Traceback (most recent call last):
    ...
    r1kit_countdown.game.InvalidExpression: only digits, + - * / and parentheses are allowed
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidExpression(f"longer than {MAX_EXPRESSION_CHARS} characters")
    if not _ALLOWED_TEXT.fullmatch(expression):
        raise InvalidExpression("only digits, + - * / and parentheses are allowed")
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise InvalidExpression(f"not an expression: {err}") from None
    _check_nodes(tree)
    return tree


def _check_nodes(node: ast.AST) -> None:
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check_nodes(node.left)
        _check_nodes(node.right)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_nodes(node.operand)
    elif not (isinstance(node, ast.Constant) and type(node.value) is int):
        raise InvalidExpression(f"{type(node).__name__} is not allowed")


def literals(tree: ast.expr) -> list[int]:
    """The number literals of a parsed expression, left to right."""
    if isinstance(tree, ast.BinOp):
        return literals(tree.left) + literals(tree.right)
    if isinstance(tree, ast.UnaryOp):
        return literals(tree.operand)
    return [tree.value]


def evaluate(tree: ast.expr) -> Fraction:
    """The exact value of a parsed expression; division by zero is :class:`InvalidExpression`."""
    if isinstance(tree, ast.BinOp):
        left, right = evaluate(tree.left), evaluate(tree.right)
        if isinstance(tree.op, ast.Div) and right == 0:
            raise InvalidExpression("division by zero")
        return _BINARY[type(tree.op)](left, right)
    if isinstance(tree, ast.UnaryOp):
        return -evaluate(tree.operand)
    return Fraction(tree.value)


def uses_numbers(tree: ast.expr, numbers: list[int]) -> bool:
    """True iff the expression uses each of ``numbers`` exactly once and nothing else."""
    return Counter(literals(tree)) == Counter(int(n) for n in numbers)


def solves(expression: str, numbers: list[int], target: float, tolerance: float = 1e-6) -> bool:
    """True iff ``expression`` uses exactly ``numbers`` and equals ``target`` (within ``tolerance``).

    >>> solves("7 * 3 + 25", [3, 7, 25], 46)
    True
    >>> solves("25 + 7 * 3 + 3", [3, 7, 25], 49)  # 3 used twice
    False
    """
    try:
        tree = parse(expression)
        # Numbers first: only an expression over the puzzle's few small numbers is evaluated.
        return uses_numbers(tree, numbers) and abs(evaluate(tree) - Fraction(str(target))) <= tolerance
    except InvalidExpression:
        return False


# ---------------------------------------------------------------------------------------------
# Generating puzzles: combine random numbers with random operators; the result is the target,
# so every puzzle has at least that solution.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Puzzle:
    numbers: list[int]
    target: int
    expression: str  # a solution
    steps: list[str]  # the solution one operation at a time ("25 - 7 = 18")


_APPLY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_ATOM = 3


def _operators(a: int, b: int) -> list[str]:
    # Keep every intermediate a positive integer: the puzzles a person would pose, and worked
    # steps without fractions. (Answers may still use fractions; see the module docstring.)
    ops = ["+", "*"]
    if a > b:
        ops.append("-")
    if b > 1 and a % b == 0:
        ops.append("/")
    return ops


def random_puzzle(rng: random.Random, num_numbers: int, min_number: int, max_number: int,
                  max_target: int, max_tries: int = 10_000) -> Puzzle:
    """A solvable puzzle of ``num_numbers`` numbers in ``[min_number, max_number]`` whose target
    is an integer in ``[1, max_target]``."""
    for _ in range(max_tries):
        numbers = [rng.randint(min_number, max_number) for _ in range(num_numbers)]
        items = [(n, str(n), _ATOM) for n in numbers]  # (value, text, precedence of text)
        steps = []
        while len(items) > 1:
            i, j = rng.sample(range(len(items)), 2)
            (a, text_a, prec_a), (b, text_b, prec_b) = items[i], items[j]
            op = rng.choice(_operators(a, b))
            value = _APPLY[op](a, b)
            steps.append(f"{a} {op} {b} = {value}")
            prec = _PRECEDENCE[op]
            # Parentheses only where needed: a - (b + c) and a / (b * c) keep theirs.
            if prec_a < prec:
                text_a = f"({text_a})"
            if prec_b < prec or (prec_b == prec and op in "-/"):
                text_b = f"({text_b})"
            items = [item for k, item in enumerate(items) if k not in (i, j)]
            items.append((value, f"{text_a} {op} {text_b}", prec))
        target, expression, _ = items[0]
        if 1 <= target <= max_target:
            return Puzzle(numbers, target, expression, steps)
    raise ValueError(f"no puzzle with a target in [1, {max_target}] found in {max_tries} tries "
                     f"({num_numbers} numbers in [{min_number}, {max_number}])")
