"""Exact arithmetic on a text expression, by a hand-written parser (never `eval`), with provable bounds.

Every number is a `Fraction` whose integer part stays under `max_digits` digits (checked after each
operation, and before a power is computed), so each of the at most `max_chars` operations costs a bounded
amount; the nesting the parser recurses through is capped at `max_depth`, and `timeout` is checked between
operations as a last line. Irrational results (sqrt(2), ln, exp, 2^0.5) are computed with `decimal` at a
precision that covers the result's integer digits plus `decimals + 20` guard digits, so they print correctly
rounded to `decimals` digits.
"""

from __future__ import annotations

import math
import operator
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Context, Decimal
from fractions import Fraction

_GUARD = 20  # digits computed beyond those printed, so an irrational result rounds right
# Every non-space character starts some token, so consecutive matches cover the whole expression.
_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|//|[-+*/%^(),×÷−])|(?P<bad>\S))"
)
_LN10 = Fraction(math.log(10))
_SYNONYMS = {"×": "*", "÷": "/", "−": "-", "^": "**"}
_BINARY: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": lambda a, b: Fraction(a // b),
    "%": operator.mod,
}


class CalculatorError(ValueError):
    """A refused or failed calculation; the message is one short sentence meant for the model."""


@dataclass(frozen=True, kw_only=True)
class CalculatorLimits:
    max_chars: int = 1000
    """Longest expression accepted, in characters; longer ones are refused before tokenizing."""
    max_digits: int = 1000
    """Most digits any number may have in its integer part (powers are refused before they are computed)."""
    decimals: int = 10
    """Digits after the point when a result is not an integer (trailing zeros are dropped)."""
    max_depth: int = 50
    """Deepest nesting of parentheses, function calls and power exponents."""
    timeout: float = 2.0
    """Seconds of computation, checked between operations (each operation is bounded by max_digits)."""

    def __post_init__(self) -> None:
        # Python refuses to print integers over 4300 digits, and the parser recurses ~6 frames per level.
        checks = [
            (self.max_chars >= 1, "calculator max_chars must be at least 1"),
            (1 <= self.max_digits <= 4000, "calculator max_digits must be between 1 and 4000"),
            (0 <= self.decimals <= 100, "calculator decimals must be between 0 and 100"),
            (1 <= self.max_depth <= 100, "calculator max_depth must be between 1 and 100"),
            (self.timeout > 0, "calculator timeout must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def evaluate_expression(expression: str, limits: CalculatorLimits) -> str:
    """The value of `expression` as text ("42", "2.5", "0.3333333333"), or CalculatorError."""
    if len(expression) > limits.max_chars:
        raise CalculatorError(f"expression too long ({len(expression)} characters, at most {limits.max_chars})")
    numbers = _Numbers(limits)
    try:
        value = _Parser(_tokenize(expression), numbers, limits.max_depth).parse()
    except RecursionError:  # unreachable within max_depth; kept so no RecursionError ever reaches a caller
        raise CalculatorError("expression nested too deeply") from None
    return numbers.format(value)


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "name", "op" or "end"
    text: str
    position: int  # 1-based, as the model counts


def _tokenize(expression: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(expression):
        kind = str(match.lastgroup)
        text, position = match[kind], match.start(kind) + 1
        if kind == "bad":
            raise CalculatorError(f"unexpected character {text!r} at position {position}")
        tokens.append(_Token(kind, _SYNONYMS.get(text, text), position))
    return [*tokens, _Token("end", "", len(expression) + 1)]


class _Parser:
    """Recursive descent; precedence (low to high): + -, * / // %, unary sign, power (right-associative).

    Operators are matched by text alone: no number or name is spelled like one.
    """

    def __init__(self, tokens: list[_Token], numbers: _Numbers, max_depth: int) -> None:
        self._tokens, self._at, self._n = tokens, 0, numbers
        self._depth, self._max_depth = 0, max_depth

    def parse(self) -> Fraction:
        if self._peek().kind == "end":
            raise CalculatorError("empty expression")
        value = self._binary(("+", "-"), self._term)
        if self._peek().kind != "end":
            raise self._unexpected(self._peek())
        return value

    def _peek(self) -> _Token:
        return self._tokens[self._at]

    def _take(self) -> _Token:
        self._at += 1
        return self._tokens[self._at - 1]

    def _expect(self, text: str) -> None:
        if self._peek().text != text:
            raise CalculatorError(f"expected '{text}' at position {self._peek().position}")
        self._take()

    @contextmanager
    def _nested(self) -> Iterator[None]:
        self._depth += 1
        if self._depth > self._max_depth:
            raise CalculatorError(f"expression nested too deeply (more than {self._max_depth} levels)")
        yield
        self._depth -= 1

    @staticmethod
    def _unexpected(token: _Token) -> CalculatorError:
        if token.kind == "end":
            return CalculatorError("unexpected end of expression")
        return CalculatorError(f"unexpected {token.text!r} at position {token.position}")

    def _binary(self, ops: tuple[str, ...], operand: Callable[[], Fraction]) -> Fraction:
        value = operand()
        while self._peek().text in ops:
            op = self._take().text
            value = self._n.binary(op, value, operand())
        return value

    def _term(self) -> Fraction:
        return self._binary(("*", "/", "//", "%"), self._unary)

    def _unary(self) -> Fraction:
        negative = False
        while self._peek().text in ("+", "-"):
            negative ^= self._take().text == "-"
        value = self._power()
        return -value if negative else value

    def _power(self) -> Fraction:
        base = self._atom()
        if self._peek().text != "**":
            return base
        self._take()
        with self._nested():
            exponent = self._unary()
        return self._n.power(base, exponent)

    def _atom(self) -> Fraction:
        token = self._take()
        if token.kind == "num":
            return self._n.literal(token.text)
        if token.kind == "name":
            return self._call(token)
        if token.text != "(":
            raise self._unexpected(token)
        with self._nested():
            value = self._binary(("+", "-"), self._term)
        self._expect(")")
        return value

    def _call(self, token: _Token) -> Fraction:
        if token.text not in _FUNCTIONS:
            raise CalculatorError(f"unknown function {token.text!r} (known: {', '.join(sorted(_FUNCTIONS))})")
        self._expect("(")
        args = []
        with self._nested():
            args.append(self._binary(("+", "-"), self._term))
            while self._peek().text == ",":
                self._take()
                args.append(self._binary(("+", "-"), self._term))
        self._expect(")")
        return self._n.call(token.text, args)


class _Numbers:
    """The arithmetic, each operation checked against the limits before its result is kept."""

    def __init__(self, limits: CalculatorLimits) -> None:
        self.limits = limits
        self.max_bits = math.ceil(limits.max_digits * math.log2(10))
        self.deadline = time.monotonic() + limits.timeout

    def check(self, value: Fraction) -> Fraction:
        """`value` if it fits the limits; a denominator too long is rounded to max_digits decimals."""
        if time.monotonic() > self.deadline:
            raise CalculatorError(f"calculation took too long (more than {self.limits.timeout:g} s)")
        if value.numerator.bit_length() - value.denominator.bit_length() > self.max_bits:
            raise CalculatorError(f"result too large (more than {self.limits.max_digits} digits)")
        if value.denominator.bit_length() > self.max_bits:
            rounded = _round_half_away(value, self.limits.max_digits)
            if rounded == 0:
                raise CalculatorError(f"result too small (below 1e-{self.limits.max_digits})")
            return rounded
        return value

    def literal(self, text: str) -> Fraction:
        mantissa, _, exponent_text = text.lower().partition("e")
        exponent = int(exponent_text or 0)
        if len(mantissa) > self.limits.max_digits or abs(exponent) > self.limits.max_digits + len(mantissa):
            raise CalculatorError(f"number {text[:30]} is out of range (more than {self.limits.max_digits} digits)")
        return self.check(Fraction(mantissa) * Fraction(10) ** exponent)

    def binary(self, op: str, left: Fraction, right: Fraction) -> Fraction:
        try:
            return self.check(_BINARY[op](left, right))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None

    def power(self, base: Fraction, exponent: Fraction) -> Fraction:
        if base == 0 and exponent < 0:
            raise CalculatorError("division by zero")
        if exponent == 0 or base == 1:
            return Fraction(1)
        if base == 0:
            return Fraction(0)
        if base < 0 and exponent.denominator != 1:
            raise CalculatorError("a negative number to a fractional power is not a real number")
        if exponent.denominator != 1:
            root = _exact_root(base, exponent.denominator)
            if root is not None:
                return self.power(root, Fraction(exponent.numerator))
        elif abs(exponent) * max(base.numerator.bit_length(), base.denominator.bit_length()) <= 2 * self.max_bits:
            return self.check(base**exponent.numerator)
        sign = -1 if base < 0 and exponent.numerator % 2 else 1
        return sign * self.exp(self._log_times(abs(base), exponent))

    def _log_times(self, base: Fraction, exponent: Fraction) -> Fraction:
        """exponent * ln(base), to the absolute precision that exp(it) needs for `decimals` digits."""
        exponent_digits = _integer_digits(exponent)
        coarse = self._ln(base, self.context(exponent_digits + _GUARD)) * exponent
        precise = self.context(exponent_digits + self._exp_digits(coarse) + self.limits.decimals + _GUARD)
        return self._ln(base, precise) * exponent

    def _exp_digits(self, x: Fraction) -> int:
        """The integer digits of exp(x), refusing an exp(x) outside the limits."""
        if x > self.limits.max_digits * _LN10:
            raise CalculatorError(f"result too large (more than {self.limits.max_digits} digits)")
        if x < -self.limits.max_digits * _LN10:
            raise CalculatorError(f"result too small (below 1e-{self.limits.max_digits})")
        return max(0, math.ceil(x / _LN10))

    def exp(self, x: Fraction) -> Fraction:
        context = self.context(self._exp_digits(x) + self.limits.decimals + _GUARD)
        return self._snap(Fraction(context.exp(_decimal(x, context))))

    def sqrt(self, x: Fraction) -> Fraction:
        if x < 0:
            raise CalculatorError("square root of a negative number")
        return self.power(x, Fraction(1, 2))

    def log(self, x: Fraction, base: Fraction | None) -> Fraction:
        if x <= 0 or (base is not None and (base <= 0 or base == 1)):
            raise CalculatorError("logarithm of a non-positive number, or to a base that is not positive or is 1")
        context = self.context(self.limits.decimals + _GUARD + 5)
        if base is None:
            return self._snap(self._ln(x, context))
        if base == 10:  # exact for powers of ten
            return self._snap(Fraction(context.log10(_decimal(x, context))))
        return self._snap(self._ln(x, context) / self._ln(base, context))

    def round(self, x: Fraction, places: Fraction) -> Fraction:
        if places.denominator != 1 or abs(places) > self.limits.max_digits:
            raise CalculatorError(
                f"round() places must be a whole number from -{self.limits.max_digits} to {self.limits.max_digits}"
            )
        return _round_half_away(x, int(places))

    def call(self, name: str, args: list[Fraction]) -> Fraction:
        low, high, function = _FUNCTIONS[name]
        if not low <= len(args) <= high:
            raise CalculatorError(f"{name}() takes {low if low == high else f'{low} or {high}'} argument(s)")
        return self.check(function(self, *args))

    def format(self, value: Fraction) -> str:
        """Integers as integers, other values rounded to `decimals` digits, tiny ones in scientific notation."""
        scaled = _round_half_away(value * 10**self.limits.decimals, 0).numerator
        if scaled == 0 and value != 0:
            context = self.context(max(self.limits.decimals, 1))
            return f"{context.divide(value.numerator, value.denominator):e}"
        whole, fraction = divmod(abs(scaled), 10**self.limits.decimals)
        if len(str(whole)) > self.limits.max_digits:
            raise CalculatorError(f"result too large (more than {self.limits.max_digits} digits)")
        digits = f"{fraction:0{self.limits.decimals}d}".rstrip("0") if fraction else ""
        return f"{'-' if scaled < 0 else ''}{whole}{'.' if digits else ''}{digits}"

    def context(self, precision: int) -> Context:
        return Context(prec=precision, Emax=10 * self.limits.max_digits, Emin=-10 * self.limits.max_digits)

    def _ln(self, x: Fraction, context: Context) -> Fraction:
        return Fraction(context.ln(_decimal(x, context)))  # x > 0 and within 1e±max_digits: no decimal trap fires

    def _snap(self, approximation: Fraction) -> Fraction:
        """An integer when the approximation lies within its error of one (so floor(log(8, 2)) is 3)."""
        nearest = round(approximation)
        return (
            Fraction(nearest)
            if abs(approximation - nearest) < Fraction(1, 10 ** (self.limits.decimals + 10))
            else approximation
        )


def _decimal(x: Fraction, context: Context) -> Decimal:
    return context.divide(Decimal(x.numerator), Decimal(x.denominator))


def _integer_digits(x: Fraction) -> int:
    """An upper bound on the digits of |x|'s integer part (0 below 1)."""
    bits = abs(x.numerator).bit_length() - x.denominator.bit_length() + 1
    return max(0, math.ceil(bits * math.log10(2)) + 1)


def _round_half_away(x: Fraction, places: int) -> Fraction:
    scale = Fraction(10) ** places
    magnitude = Fraction(math.floor(abs(x) * scale + Fraction(1, 2))) / scale
    return magnitude if x >= 0 else -magnitude


def _integer_root(n: int, k: int) -> int | None:
    """The exact k-th root of n >= 0, or None; Newton's method from above, on integers only."""
    if n < 2 or k == 1:
        return n
    if k >= n.bit_length():
        return None
    guess = 1 << -(-n.bit_length() // k)
    while (better := ((k - 1) * guess + n // guess ** (k - 1)) // k) < guess:
        guess = better
    return guess if guess**k == n else None


def _exact_root(x: Fraction, k: int) -> Fraction | None:
    numerator, denominator = _integer_root(x.numerator, k), _integer_root(x.denominator, k)
    return None if numerator is None or denominator is None else Fraction(numerator, denominator)


_FUNCTIONS: dict[str, tuple[int, int, Callable[..., Fraction]]] = {
    "abs": (1, 1, lambda n, x: abs(x)),
    "floor": (1, 1, lambda n, x: Fraction(math.floor(x))),
    "ceil": (1, 1, lambda n, x: Fraction(math.ceil(x))),
    "round": (1, 2, lambda n, x, places=Fraction(0): n.round(x, places)),
    "min": (1, sys.maxsize, lambda n, *xs: min(xs)),
    "max": (1, sys.maxsize, lambda n, *xs: max(xs)),
    "sqrt": (1, 1, lambda n, x: n.sqrt(x)),
    "exp": (1, 1, lambda n, x: n.exp(x)),
    "ln": (1, 1, lambda n, x: n.log(x, None)),
    "log": (1, 2, lambda n, x, base=Fraction(10): n.log(x, base)),
}
