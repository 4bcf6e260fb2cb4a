"""The calculator's parser and exact arithmetic: hand-computed values, every refusal, and Python's own integers."""

from __future__ import annotations

import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from searchr1.tools.calculator_engine import CalculatorError, CalculatorLimits, evaluate_expression

LIMITS = CalculatorLimits()


def calc(expression: str, limits: CalculatorLimits = LIMITS) -> str:
    return evaluate_expression(expression, limits)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("2.5 * 2", "5"),
        ("7 / 2", "3.5"),
        ("1 / 3", "0.3333333333"),
        ("2 / 3", "0.6666666667"),  # rounded, not cut
        ("0.1 + 0.2", "0.3"),  # exact, unlike floats
        ("-2 ** 2", "-4"),  # the sign binds looser than the power, as in Python
        ("2 ** -1", "0.5"),
        ("2 ^ 3 ^ 2", "512"),  # right-associative
        ("--3", "3"),
        ("10 // 3", "3"),
        ("-7 // 2", "-4"),  # floor division, as in Python
        ("-7 % 3", "2"),
        ("7.5 % 2", "1.5"),
        ("1e3", "1000"),
        ("1.5E-3", "0.0015"),
        (".5 + 5.", "5.5"),
        ("3 × 4 ÷ 6 − 1", "1"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", "1.4142135624"),
        ("sqrt(2) ^ 2", "2"),
        ("8 ^ (1/3)", "2"),  # an exact root, not 1.9999999999
        ("27 ^ (2/3)", "9"),
        ("2 ^ 0.5", "1.4142135624"),
        ("abs(-3.5)", "3.5"),
        ("round(2.5)", "3"),  # half away from zero, as people round
        ("round(-2.5)", "-3"),
        ("round(3.14159, 2)", "3.14"),
        ("floor(-2.5)", "-3"),
        ("ceil(2.1)", "3"),
        ("min(3, 1, 2) + max(4, 5)", "6"),
        ("exp(1)", "2.7182818285"),
        ("ln(exp(2))", "2"),
        ("log(1000)", "3"),
        ("floor(log(8, 2))", "3"),
        ("log(2)", "0.3010299957"),
        ("1 / 10^20", "1e-20"),  # too small for `decimals` digits: scientific, not "0"
        ("0 ^ 0", "1"),
        ("(-2) ^ 3", "-8"),
        ("2 ^ 3321", str(2**3321)),  # 1000 digits: the largest power of two allowed
        ("(1 + 1e-30) ^ (1e30)", "2.7182818285"),  # an exponent too large to compute exactly: approximated
        ("2024 - 1955", "69"),
    ],
)
def test_hand_computed_values(expression: str, expected: str) -> None:
    assert calc(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("10**10**10", "result too large (more than 1000 digits)"),
        ("9^9^9^9", "result too large (more than 1000 digits)"),
        ("2 ^ 3322", "result too large (more than 1000 digits)"),
        ("2^3000 * 2^3000 / 2^3000", "result too large (more than 1000 digits)"),  # every step is bounded
        ("1e1000", "result too large (more than 1000 digits)"),
        ("exp(3000)", "result too large (more than 1000 digits)"),
        ("1e-1001", "result too small (below 1e-1000)"),
        ("0.5 ^ 4000", "result too small (below 1e-1000)"),
        ("1 / 0", "division by zero"),
        ("5 % (2 - 2)", "division by zero"),
        ("5 // 0", "division by zero"),
        ("0 ^ -1", "division by zero"),
        ("2 $ 3", "unexpected character '$' at position 3"),
        ("2 3", "unexpected '3' at position 3"),
        ("2 +", "unexpected end of expression"),
        ("(1 + 2", "expected ')' at position 7"),
        ("1 + 2)", "unexpected ')' at position 6"),
        ("", "empty expression"),
        ("import os", "unknown function 'import' (known: abs, ceil, exp, floor, ln, log, max, min, round, sqrt)"),
        ("__import__('os')", 'unexpected character "\'" at position 12'),
        ("sqrt(-1)", "square root of a negative number"),
        ("(-8) ^ (1/3)", "a negative number to a fractional power is not a real number"),
        ("ln(0)", "logarithm of a non-positive number, or to a base that is not positive or is 1"),
        ("log(5, 1)", "logarithm of a non-positive number, or to a base that is not positive or is 1"),
        ("round(1, 2, 3)", "round() takes 1 or 2 argument(s)"),
        ("round(1, 1e999)", "round() places must be a whole number from -1000 to 1000"),
        ("1" * 1001, "expression too long (1001 characters, at most 1000)"),
    ],
)
def test_refusals_name_the_fault(expression: str, message: str) -> None:
    with pytest.raises(CalculatorError) as raised:
        calc(expression)
    assert str(raised.value) == message


def test_a_megabyte_expression_is_refused_before_it_is_read() -> None:
    started = time.perf_counter()
    with pytest.raises(CalculatorError, match=r"^expression too long \(1000001 characters, at most 1000\)$"):
        calc("1+" * 500_000 + "1")
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize(
    "expression", ["(" * 5000 + "1" + ")" * 5000, "-(" * 5000 + "1" + ")" * 5000, "2^" * 5000 + "1"]
)
def test_deep_nesting_is_refused_without_recursion_error(expression: str) -> None:
    with pytest.raises(CalculatorError, match=r"^expression nested too deeply \(more than 50 levels\)$"):
        calc(expression, CalculatorLimits(max_chars=20_000))


def test_nesting_up_to_the_limit_is_evaluated() -> None:
    assert calc("(" * 50 + "1" + ")" * 50) == "1"
    assert calc("sqrt(" * 49 + "2" + ")" * 49) == "1"  # 2^(2^-49) = 1 + 1.2e-15


def test_the_timeout_stops_a_long_chain_of_approximations() -> None:
    expression = "+".join(["(3/2)^5000"] * 90)  # each one ~25 ms of 900-digit logarithms and exponentials
    started = time.perf_counter()
    with pytest.raises(CalculatorError, match=r"^calculation took too long \(more than 0.2 s\)$"):
        calc(expression, CalculatorLimits(timeout=0.2))
    assert time.perf_counter() - started < 2.0


def test_powers_are_refused_before_they_are_computed() -> None:
    started = time.perf_counter()
    for expression in ["10**10**10", "9^9^9^9", "(1/3)^(10^999)", "7^(10^999)", "(-2)^(10^999+1)"]:
        with pytest.raises(CalculatorError, match="result too"):
            calc(expression)
    assert time.perf_counter() - started < 1.0


def test_decimals_and_digits_follow_the_limits() -> None:
    assert calc("1 / 3", CalculatorLimits(decimals=3)) == "0.333"
    assert calc("2 / 3", CalculatorLimits(decimals=0)) == "1"
    assert calc("10 ^ 9", CalculatorLimits(max_digits=10)) == "1000000000"
    with pytest.raises(CalculatorError, match=r"^result too large \(more than 10 digits\)$"):
        calc("10 ^ 10", CalculatorLimits(max_digits=10))


@pytest.mark.parametrize(
    ("field", "value"), [("max_chars", 0), ("max_digits", 5000), ("decimals", -1), ("max_depth", 500), ("timeout", 0)]
)
def test_limits_out_of_range_name_their_key(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^calculator {field} must be"):
        CalculatorLimits(**{field: value})


class _TooLargeError(Exception):
    """An intermediate value beyond what the property test compares."""


_INTEGER_OPS = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "//": int.__floordiv__, "%": int.__mod__}


def _apply(op: str, left: int | None, right: int | None) -> int | None:
    """Python's value, None where Python divides by zero (and so everything above it)."""
    if left is None or right is None:
        return None
    try:
        value = _INTEGER_OPS[op](left, right) if op != "**" else left**right
    except ZeroDivisionError:
        return None
    if abs(value) >= 10**900:
        raise _TooLargeError
    return value


@st.composite
def _integer_expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, int | None]:
    """(text, Python's value) for a random expression over integers; the value is None where Python divides by 0."""
    if depth >= 4 or draw(st.booleans()):
        value = draw(st.integers(min_value=-(10**12), max_value=10**12))
        return (f"({value})" if value < 0 else str(value)), value
    left_text, left = draw(_integer_expressions(depth + 1))
    kind = draw(st.sampled_from([*_INTEGER_OPS, "**", "neg"]))
    if kind == "neg":
        return f"-({left_text})", None if left is None else -left
    if kind == "**":
        exponent = draw(st.integers(min_value=0, max_value=5))
        spelled = draw(st.sampled_from(["**", "^"]))
        return f"({left_text}){spelled}{exponent}", _apply("**", left, exponent)
    right_text, right = draw(_integer_expressions(depth + 1))
    space = draw(st.sampled_from(["", " "]))
    return f"({left_text}){space}{kind}{space}({right_text})", _apply(kind, left, right)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_integer_expressions_agree_with_python(data: st.DataObject) -> None:
    try:
        text, value = data.draw(_integer_expressions())
    except _TooLargeError:
        assume(False)
        return
    if value is None:
        with pytest.raises(CalculatorError, match="^division by zero$"):
            calc(text)
    else:
        assert calc(text) == str(value)


_ALPHABET = "0123456789.eE+-*/%^()×÷−, " + "sqrtabsroundfloorceilminmaxexpln" + "x$_'"


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_any_text_gives_a_value_or_a_calculator_error(text: str) -> None:
    """No other exception (ValueError, OverflowError, RecursionError, decimal traps) reaches the caller."""
    try:
        assert isinstance(calc(text, CalculatorLimits(timeout=60)), str)
    except CalculatorError:
        pass
