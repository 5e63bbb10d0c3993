"""Named constants: ``constants={"pi": 3.141592653589793}`` for ``parse`` and ``flatten``.

A rational model cannot contain an irrational number, so ``sympy.pi`` and
``sympy.E`` are refused; a named constant gives the exact rational the
compiler uses instead (an int, ``Fraction``, sympy ``Rational``, a decimal
string such as ``"3.14159"``, or a float, taken as the exact binary rational
it denotes). In the text the name is replaced by that number; in a sympy
tree both a symbol with that name and sympy's own constant of that name
(``sympy.pi`` for ``"pi"``, ``sympy.E`` for ``"E"``) are.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from fractions import Fraction

import sympy as sp

from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.frontend.coefficient import symbol_name

#: Names of mathematical constants that look like inputs when used as symbols.
CONSTANT_NAMES = frozenset({"pi", "E"})
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,6})?")


def constant_value(name: str, value: object) -> Fraction:
    """The exact rational for one named constant (typed error naming ``constants[name]``)."""
    where = f"constants[{name!r}]"
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{where} must be a number, got a bool")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, sp.Rational):
        return Fraction(int(value.p), int(value.q))
    if isinstance(value, sp.Basic):
        if isinstance(value, sp.Float) and value.is_finite:
            from zpml_symbolic.frontend.sympy_in import float_to_fraction

            return float_to_fraction(value)
        raise InvalidArgumentError(
            f"{where} = {value} is not a rational number; give a rational or float "
            f"approximation, e.g. constants={{{name!r}: {float(value) if value.is_real else 0.0!r}}}"
        )
    if isinstance(value, str):
        if _DECIMAL.fullmatch(value.strip()) is None:
            raise InvalidArgumentError(
                f"{where} = {value!r} is not a decimal number like '3.14159'"
            )
        return Fraction(value.strip())
    if isinstance(value, numbers.Integral):
        return Fraction(int(value))
    if isinstance(value, numbers.Rational):
        return Fraction(int(value.numerator), int(value.denominator))
    if isinstance(value, numbers.Real):
        as_float = float(value)
        if not math.isfinite(as_float):
            raise InvalidArgumentError(f"{where} must be finite, got {as_float!r}")
        return Fraction(as_float)
    raise InvalidArgumentError(
        f"{where} must be a real number (int, Fraction, float, decimal str, sympy Rational), "
        f"got {type(value).__name__}"
    )


def constant_values(constants: Mapping[str, object] | None) -> dict[str, Fraction]:
    """Validate a ``constants=`` mapping: identifier names to exact rationals."""
    if constants is None:
        return {}
    if not isinstance(constants, Mapping):
        raise InvalidArgumentError(
            f"constants must be a mapping of names to numbers, got {type(constants).__name__}"
        )
    out: dict[str, Fraction] = {}
    for key, value in constants.items():
        name = symbol_name(key, role="constant")
        out[name] = constant_value(name, value)
    return out


__all__ = ["CONSTANT_NAMES", "constant_value", "constant_values"]
