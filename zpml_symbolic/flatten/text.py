"""Text of sympy results that never trips Python's int-to-str digit limit.

``str()`` of a sympy expression with a coefficient of more than 4300 digits
raises ``ValueError`` (``sys.set_int_max_str_digits``); ``zs.flatten("x*2**100000")``
has such a numerator. :func:`expr_text` prints the same text as ``str()``
except that huge integers are written exactly in a form the safe parser
reads back (``2**100000``, ``d0*10**3000 + d1``), or, with
``abbreviate=True`` (for ``repr`` and messages), as ``<30103-digit integer 99900...69376>``.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from zpml_symbolic.ir.printer import int_digits, int_text

#: Integers with more digits than this are abbreviated by ``abbreviate=True``.
ABBREVIATE_DIGITS = 60
_BIG_BITS = 14_000  # below this, str(int) is always allowed and used unchanged


def short_int_text(n: int) -> str:
    """``n`` in full up to :data:`ABBREVIATE_DIGITS` digits, else ``<k-digit integer 123...789>``."""
    if n.bit_length() < 200:
        return str(n)
    if n > 0 and n & (n - 1) == 0:
        return f"2**{n.bit_length() - 1}"
    digits = int_digits(n)
    sign = "-" if digits.startswith("-") else ""
    digits = digits.lstrip("-")
    if len(digits) <= ABBREVIATE_DIGITS:
        return sign + digits
    return f"{sign}<{len(digits)}-digit integer {digits[:8]}...{digits[-8:]}>"


class _SafePrinter(StrPrinter):
    """sympy's str printer with huge integers written by :func:`int_text` or abbreviated."""

    def __init__(self, abbreviate: bool) -> None:
        super().__init__()
        self._abbreviate = abbreviate

    def _int(self, n: int) -> str:
        if self._abbreviate:
            return short_int_text(n)
        if n.bit_length() < _BIG_BITS:
            return str(n)
        text = int_text(n)
        return text if text.isdigit() else f"({text})"

    def _print_Integer(self, expr: sp.Integer) -> str:
        return self._int(int(expr.p))

    def _print_Rational(self, expr: sp.Rational) -> str:
        if expr.q == 1:
            return self._int(int(expr.p))
        return f"{self._int(int(expr.p))}/{self._int(int(expr.q))}"


def expr_text(expr: object, *, abbreviate: bool = False) -> str:
    """``str(expr)`` for a sympy expression, safe for coefficients of any size."""
    if not isinstance(expr, sp.Basic):
        return str(expr)
    return _SafePrinter(abbreviate).doprint(expr)


__all__ = ["ABBREVIATE_DIGITS", "expr_text", "short_int_text"]
