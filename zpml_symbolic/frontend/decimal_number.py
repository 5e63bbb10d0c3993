"""``DecimalNumber``: a sympy number shown as a decimal and compiled as exactly that decimal.

A sympy ``Float`` is binary: ``Float("1.7")`` is the nearest binary fraction,
so compiling it gives ``7656119366529843/4503599627370496``, not ``17/10``.
``DecimalNumber("1.7")`` prints as ``1.7`` and the front-end reads it as the
exact rational ``17/10``; its text, given to :func:`~zpml_symbolic.parse`,
gives the same number. Readable expressions (``to_sympy(digits=k)`` of a
template layer) use it, so what is shown is what compiles.

It is a ``Float`` for sympy's arithmetic and printing (``evalf``, ``lambdify``
see the nearest 60-bit binary value); arithmetic on it gives ordinary sympy
numbers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sympy as sp

from zpml_symbolic.errors import InvalidArgumentError

__all__ = ["DecimalNumber", "decimal_text", "fold_negated_numbers", "with_decimals"]

_DECIMAL = re.compile(r"-?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PRECISION = 60  # bits of the binary value sympy sees (evalf, lambdify)


class DecimalNumber(sp.Float):
    """A decimal literal: prints as ``text`` and compiles to ``Fraction(text)`` exactly."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> DecimalNumber:
        if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
            raise InvalidArgumentError(
                f"DecimalNumber needs a decimal literal such as '1.7' or '-2.5e-7', got {text!r}"
            )
        approx = sp.Float(text, precision=_PRECISION)
        obj = cls._new(approx._mpf_, _PRECISION, zero=False)
        obj.text = text
        return obj

    @property
    def value(self) -> Fraction:
        """The exact rational the text denotes."""
        return Fraction(self.text)

    def __neg__(self) -> DecimalNumber:
        return DecimalNumber(self.text[1:] if self.text.startswith("-") else "-" + self.text)

    def _sympystr(self, printer: Any) -> str:
        return self.text

    def _sympyrepr(self, printer: Any) -> str:
        return f"DecimalNumber({self.text!r})"

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, Any]]:
        return (self.text,), {}

    def _hashable_content(self) -> tuple[Any, ...]:
        return (self._mpf_, self._prec, self.text)


def decimal_text(value: float | str, digits: int) -> str:
    """``value`` (a float, or a decimal string) correctly rounded to ``digits`` significant
    digits, as the shortest decimal literal.

    Always reads as a float literal (``2.0``, never ``2``); scientific notation
    outside ``1e-4 <= |v| < 1e16`` (``1.5e-7``). ``Fraction(decimal_text(v, k))`` is
    the rounded value exactly.
    """
    exact = Decimal(value) if isinstance(value, str) else value  # float: formatted exactly
    d = Decimal(f"{exact:.{digits - 1}e}").normalize()
    if d == 0:
        return "-0.0" if d.is_signed() else "0.0"
    adjusted = d.adjusted()
    if -4 <= adjusted < 16:
        text = format(d, "f")
        return text if "." in text else text + ".0"
    sign, digits_tuple, _ = d.as_tuple()
    mantissa = "".join(map(str, digits_tuple))
    head = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else ".0")
    return f"{'-' if sign else ''}{head}e{adjusted}"


def fold_negated_numbers(expr: sp.Expr) -> sp.Expr:
    """``Mul(-1, 1.7, ...)`` -> ``Mul(-1.7, ...)`` for substituted numbers, bottom-up (iterative).

    The parser writes ``x - c`` as ``x + (-1)*c``; once ``c`` is a number this
    would print as ``x - 1*1.7``. The value (and every bottom) is unchanged.
    """
    done: dict[sp.Basic, sp.Basic] = {}
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if node in done:
            continue
        if not node.args:
            done[node] = node
            continue
        if not expanded:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in done)
            continue
        args = [done[a] for a in node.args]
        if isinstance(node, sp.Mul):
            minus = [i for i, a in enumerate(args) if a == sp.S.NegativeOne]
            numbers = [
                i
                for i, a in enumerate(args)
                if isinstance(a, DecimalNumber | sp.Rational) and a != sp.S.NegativeOne
            ]
            if len(minus) == 1 and numbers:
                args[numbers[0]] = -args[numbers[0]]
                del args[minus[0]]
        if len(args) == 1 and isinstance(node, sp.Mul | sp.Add):
            done[node] = args[0]
        elif len(args) == len(node.args) and all(map(operator.is_, args, node.args)):
            done[node] = node
        else:
            done[node] = node.func(*args, evaluate=False)
    return done[expr]


def with_decimals(expr: sp.Expr, values: Mapping[str, float], digits: int) -> sp.Expr:
    """``expr`` with each symbol named in ``values`` replaced by its value rounded to ``digits``
    significant digits, as a :class:`DecimalNumber` (structure kept, ``x - 1.7`` not ``x - 1*1.7``)."""
    subs = {
        s: DecimalNumber(decimal_text(values[s.name], digits))
        for s in expr.free_symbols
        if isinstance(s, sp.Symbol) and s.name in values
    }
    with sp.evaluate(False):
        return fold_negated_numbers(expr.xreplace(subs))
