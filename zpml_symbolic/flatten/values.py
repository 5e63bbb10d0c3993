"""Exact values: the bottom element and conversion of user numbers to rationals."""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Final

import sympy as sp

from zpml_symbolic.errors import InvalidArgumentError


class _Bottom:
    """The single bottom value ``⊥`` of exact evaluation (``zs.BOTTOM``)."""

    _instance: _Bottom | None = None

    def __new__(cls) -> _Bottom:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "BOTTOM"

    def __str__(self) -> str:
        return "⊥"

    def __reduce__(self) -> str:
        return "BOTTOM"


BOTTOM: Final = _Bottom()


def to_fraction(value: object, *, name: str) -> Fraction | float:
    """An exact rational for a finite number; non-finite floats are returned as floats.

    Floats are taken as the exact binary rational they denote.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"value for {name} must be a number, got a bool")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, sp.Rational):
        return Fraction(int(value.p), int(value.q))
    if isinstance(value, sp.Float):
        from zpml_symbolic.frontend.sympy_in import float_to_fraction

        try:
            return float_to_fraction(value)
        except ValueError:
            return float(value)
    if isinstance(value, numbers.Integral):
        return Fraction(int(value))
    if isinstance(value, numbers.Rational):
        return Fraction(int(value.numerator), int(value.denominator))
    if isinstance(value, numbers.Real):
        as_float = float(value)
        return Fraction(as_float) if math.isfinite(as_float) else as_float
    raise InvalidArgumentError(
        f"value for {name} must be a real number (int, Fraction, float, sympy Rational), "
        f"got {type(value).__name__}"
    )


__all__ = ["BOTTOM", "to_fraction"]
