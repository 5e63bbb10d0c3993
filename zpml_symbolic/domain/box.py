"""Operating boxes: exact rational intervals per variable, parsing and validation.

A box maps each variable name to a closed interval ``(lo, hi)`` with exact
rational endpoints (``lo == hi`` fixes the variable). Floats are taken as the
exact binary rationals they denote; strings such as ``"0.9"`` or ``"1/3"`` as
the exact decimal or fraction they spell.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sympy as sp

from zpml_symbolic.errors import BoxError

Interval = tuple[Fraction, Fraction]
BoxDict = dict[str, Interval]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def exact_number(value: object, *, field: str) -> Fraction:
    """A finite real number as an exact :class:`Fraction` (``field`` names it in errors)."""
    if isinstance(value, bool):
        raise BoxError(f"box bound for {field!r} must be a number, got a bool", field=field)
    if isinstance(value, Fraction):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            out = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise BoxError(
                f"box bound for {field!r} is not a number: {value!r} (write e.g. 0.5, -2, 1/3, 1e-3)",
                field=field,
            ) from None
        return out
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise BoxError(f"box bound for {field!r} must be finite, got {value!r}", field=field)
        return Fraction(value)
    if isinstance(value, sp.Rational):
        return Fraction(int(value.p), int(value.q))
    if isinstance(value, sp.Float):
        value = float(value)
    if isinstance(value, numbers.Integral):
        return Fraction(int(value))
    if isinstance(value, numbers.Rational):
        return Fraction(int(value.numerator), int(value.denominator))
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            raise BoxError(f"box bound for {field!r} must be finite, got {value!r}", field=field)
        return Fraction(f)
    raise BoxError(
        f"box bound for {field!r} must be a real number (int, float, Fraction, sympy Rational "
        f"or a string such as '1/3'), got {type(value).__name__}",
        field=field,
    )


def normalize_box(box: Mapping[Any, object] | str) -> BoxDict:
    """Validate a box ``{name: (lo, hi) or value}`` and return exact intervals.

    Keys are names or sympy Symbols; a single number fixes the variable. A string is parsed
    by :func:`parse_box`.
    """
    if isinstance(box, str):
        return parse_box(box)
    if not isinstance(box, Mapping):
        raise BoxError(
            f"box must be a mapping {{name: (lo, hi)}} or a string 'x=0:1,y=-2:2', got "
            f"{type(box).__name__}",
            field="box",
        )
    out: BoxDict = {}
    for key, spec in box.items():
        name = key.name if isinstance(key, sp.Symbol) else key
        if not isinstance(name, str) or not _NAME.match(name):
            raise BoxError(f"box keys must be variable names, got {key!r}", field=str(key))
        if name in out:
            raise BoxError(f"variable {name!r} appears twice in the box", field=name)
        if isinstance(spec, tuple | list):
            if len(spec) != 2:
                raise BoxError(
                    f"box entry for {name!r} must be (lo, hi) or one number, got {len(spec)} values",
                    field=name,
                )
            lo, hi = exact_number(spec[0], field=name), exact_number(spec[1], field=name)
        else:
            lo = hi = exact_number(spec, field=name)
        if lo > hi:
            raise BoxError(
                f"box interval for {name!r} is empty: lo {_show(lo)} > hi {_show(hi)}", field=name
            )
        out[name] = (lo, hi)
    return out


def parse_box(text: str) -> BoxDict:
    """Parse ``"x=0:1, y=-2:2, z=1/3"`` (``name=lo:hi`` or ``name=value``) into exact intervals.

    Raises :class:`BoxError` naming the bad field.
    """
    if not isinstance(text, str):
        raise BoxError(f"box text must be a string, got {type(text).__name__}", field="box")
    out: BoxDict = {}
    parts = [p.strip() for p in text.split(",")]
    if not text.strip():
        raise BoxError("box text is empty; write e.g. 'x=0:1,y=-2:2'", field="box")
    for part in parts:
        if not part:
            raise BoxError(f"empty entry in box text {text!r}", field="box")
        if "=" not in part:
            raise BoxError(
                f"box entry {part!r} has no '='; write name=lo:hi or name=value", field=part
            )
        name, _, rng = (s.strip() for s in part.partition("="))
        if not _NAME.match(name):
            raise BoxError(f"box entry {part!r}: {name!r} is not a variable name", field=name)
        if name in out:
            raise BoxError(f"variable {name!r} appears twice in the box", field=name)
        bounds = rng.split(":")
        if len(bounds) == 1:
            lo = hi = exact_number(bounds[0], field=name)
        elif len(bounds) == 2:
            lo, hi = (exact_number(b, field=name) for b in bounds)
        else:
            raise BoxError(f"box entry {part!r}: write name=lo:hi", field=name)
        if lo > hi:
            raise BoxError(
                f"box interval for {name!r} is empty: lo {_show(lo)} > hi {_show(hi)}", field=name
            )
        out[name] = (lo, hi)
    return out


def format_box(box: Mapping[str, Interval]) -> str:
    """The text form ``"x=0:1,y=-2:2"`` that :func:`parse_box` reads back exactly."""
    items = []
    for name, (lo, hi) in box.items():
        items.append(f"{name}={_show(lo)}" if lo == hi else f"{name}={_show(lo)}:{_show(hi)}")
    return ",".join(items)


def _show(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def simplest_rational(lo: Fraction, hi: Fraction) -> Fraction:
    """The rational with the smallest denominator (then smallest magnitude) in ``[lo, hi]``."""
    if lo > hi:
        raise ValueError("empty interval")
    if lo <= 0 <= hi:
        return Fraction(0)
    if hi < 0:
        return -simplest_rational(-hi, -lo)
    a, b, c, d = lo.numerator, lo.denominator, hi.numerator, hi.denominator  # lo = a/b, hi = c/d
    terms: list[int] = []
    while True:  # continued fraction of the simplest rational, in integers
        fl = a // b
        if fl * b == a:
            terms.append(fl)
            break
        if (fl + 1) * d <= c:
            terms.append(fl + 1)
            break
        terms.append(fl)
        a, b, c, d = d, c - fl * d, b, a - fl * b  # [1/(hi - fl), 1/(lo - fl)]
    num, den = terms[-1], 1
    for t in reversed(terms[:-1]):
        num, den = t * num + den, num
    return Fraction(num, den)


def width(interval: Interval) -> Fraction:
    """``hi - lo``."""
    return interval[1] - interval[0]


__all__ = [
    "BoxDict",
    "BoxError",
    "Interval",
    "exact_number",
    "format_box",
    "normalize_box",
    "parse_box",
    "simplest_rational",
    "width",
]
