"""Exact boxes in a float dtype and rigorous rounding-error bounds of a program over a box.

Helpers of :func:`~zpml_runtime.metrics.certified_tau_ceiling`:

* :func:`dtype_box`: the declared box widened outward to ``dtype`` values, so every input
  of the box cast to ``dtype`` lies in it;
* :func:`absolute_bounds`: ``A``, the program on absolute values with the smallest normal
  added after every multiplication (the running-error bound of
  :mod:`zpml_symbolic.emit.analyses.certify`), evaluated *exactly* at the largest ``|x|``
  of the box. ``A`` grows with every ``|x_j|``, so ``|fl(V) - V| <= gamma_d * A`` holds at
  every point of the box (``gamma_d = d*u/(1 - d*u)``, ``d`` the rounding depth);
* :func:`floor_float`: the largest dtype value below an exact rational.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import CalibrationError, InvalidConfigError

PRECISION = {"float32": 24, "float64": 53}


def dtype_name(dtype: Any) -> str:
    """``"float32"`` or ``"float64"`` for a dtype or its name (else ``InvalidConfigError``)."""
    name = str(dtype).removeprefix("torch.")
    if name not in PRECISION:
        raise InvalidConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


def outward(value: Fraction, dtype: str, down: bool, field: str) -> Fraction:
    """The nearest ``dtype`` value below (``down``) or above ``value``."""
    from zpml_symbolic.domain import BoxError

    t = np.dtype(dtype).type
    with np.errstate(over="ignore"):
        f = t(float(value))
    step = t(-np.inf) if down else t(np.inf)
    while np.isfinite(f) and (Fraction(float(f)) > value if down else Fraction(float(f)) < value):
        f = np.nextafter(f, step)
    if not np.isfinite(f):
        raise BoxError(
            f"safe_box bound {value} for {field!r} is outside the {dtype} range", field=field
        )
    return Fraction(float(f))


def dtype_box(safe_box: Any, plan: Any, dtype: str) -> dict[str, tuple[Fraction, Fraction]]:
    """The box over the variables the plan's expressions use, each bound widened outward to a
    ``dtype`` value; a name that is no input (or a missing one) is a ``BoxError`` naming it."""
    from zpml_symbolic.domain import BoxError, normalize_box

    box = normalize_box(safe_box)
    used = list(dict.fromkeys(s.name for f in plan.frus for s in f.variables))
    for name in box:
        if name not in plan.variables:
            kind = "a parameter" if name in plan.parameters else "not an input variable"
            raise BoxError(
                f"safe_box names {name!r}, which is {kind} of the model; its inputs are "
                f"{list(plan.variables)}",
                field=name,
            )
    missing = [v for v in used if v not in box]
    if missing:
        raise BoxError(f"safe_box gives no range for input variable(s) {missing}", field=missing[0])
    return {
        v: (outward(box[v][0], dtype, True, v), outward(box[v][1], dtype, False, v)) for v in used
    }


# ------------------------------------------------------------------------ error bound


def gamma(n: int, p: int) -> Fraction:
    """``gamma_n = n*u/(1 - n*u)`` exactly, for a ``p``-bit significand (``u = 2**-p``)."""
    u = Fraction(1, 2**p)
    if n * u >= 1:
        raise CalibrationError(f"rounding depth {n} is too deep for a {p}-bit float error bound")
    return n * u / (1 - n * u)


def absolute_bounds(
    plan: Any,
    box: Mapping[str, tuple[Fraction, Fraction]],
    coefficients: Mapping[str, float],
    tiny: Fraction,
) -> list[Fraction]:
    """``A`` of every instruction, exactly, at the largest ``|x|`` of the box (``A`` grows with
    every ``|x_j|``, so this bounds it on the whole box)."""
    from zpml_symbolic.emit.lowering.interpreter import Interpreter

    program = plan.program
    big = {v: max(abs(lo), abs(hi)) for v, (lo, hi) in box.items()}

    class Absolute(Interpreter[Fraction]):
        def input(self, column: int) -> Fraction:
            return big[program.variables[column]]

        def param(self, index: int) -> Fraction:
            return abs(Fraction(coefficients[program.parameters[index]]))

        def const(self, value: Fraction) -> Fraction:
            return abs(value)

        def add(self, a: Fraction, b: Fraction) -> Fraction:
            return a + b

        def sub(self, a: Fraction, b: Fraction) -> Fraction:
            return a + b

        def mul(self, a: Fraction, b: Fraction) -> Fraction:
            return a * b + tiny

        def square(self, a: Fraction) -> Fraction:
            return a * a + tiny

        def neg(self, a: Fraction) -> Fraction:
            return a

        def scale(self, a: Fraction, c: Fraction) -> Fraction:
            return a * abs(c) + tiny

        def shift(self, a: Fraction, c: Fraction) -> Fraction:
            return a + abs(c)

        def axpy(self, a: Fraction, b: Fraction, c: Fraction) -> Fraction:
            return a + (b * abs(c) + tiny)

    return Absolute(program).run()


def floor_float(value: Fraction, dtype: str) -> float:
    """The largest ``dtype`` value ``<= value`` (``value >= 0``; 0.0 below the smallest one)."""
    top = float(np.finfo(np.dtype(dtype)).max)
    if value <= 0:
        return 0.0
    if value >= Fraction(top):
        return top
    return float(outward(value, dtype, True, "tau"))


def scaled_ceiling(t: float, e: int) -> float:
    """``t * 2**e`` as a float64 (the largest float64 on overflow: a threshold that large is
    then the cap, never exceeded by the proof)."""
    try:
        return math.ldexp(t, e)
    except OverflowError:
        return float(np.finfo(np.float64).max)


__all__ = [
    "PRECISION",
    "absolute_bounds",
    "dtype_box",
    "dtype_name",
    "floor_float",
    "gamma",
    "outward",
    "scaled_ceiling",
]
