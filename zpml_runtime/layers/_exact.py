"""Exact rationals of float coefficients (optionally rounded to significant digits)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import sympy as sp

from ..errors import InvalidConfigError

__all__ = ["check_digits", "exact_value", "readable_number"]


def check_digits(digits: Any) -> int | None:
    """``None`` or an int in ``[1, 17]`` (significant digits)."""
    if digits is None:
        return None
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise InvalidConfigError(
            f"digits must be None (exact) or an integer in [1, 17], got {digits!r}"
        )
    return digits


def exact_value(value: float, digits: int | None = None) -> Fraction:
    """The exact binary rational of ``value`` or, with ``digits``, its decimal rounding.

    ``Fraction(value)`` round-trips: ``float(exact_value(v)) == v`` bit for bit.
    """
    if not math.isfinite(value):
        raise InvalidConfigError(f"coefficient {value!r} is not finite; the layer diverged")
    if digits is None:
        return Fraction(value)
    return Fraction(f"{value:.{digits - 1}e}")


def readable_number(value: float, digits: int | None) -> sp.Expr:
    """A sympy number for display: exact Rational (``digits=None``) or a rounded Float."""
    if digits is None:
        f = Fraction(value)
        return sp.Rational(f.numerator, f.denominator)
    return sp.Float(f"{value:.{digits - 1}e}", digits)
