"""Exact threshold conversion: one converter for every threshold of zpml.

A threshold ``tau`` is a real number; the guard it defines is the *real*
comparison ``|v| < tau``. Two roundings happen on the way to a float
comparison and both are upward, so the guard never fails open:

1. :func:`to_threshold` converts the user's value exactly (ints, floats,
   ``Fraction``, ``Decimal``, numpy scalars incl. ``longdouble``, decimal or
   ``"p/q"`` strings) and stores the smallest float64 ``>= tau``;
2. :func:`ceil_to_dtype` rounds that float64 up to the evaluation dtype.

For every value ``v`` of a dtype no wider than float64, ``|v| < ceil(tau)``
is then exactly ``|v| < tau`` (a value below ``ceil(tau)`` in the dtype's
grid is below ``tau``, because no grid point lies in ``[tau, ceil(tau))``).
A positive ``tau`` below the smallest positive value of the dtype is refused
with :class:`ThresholdUnderflowError` (it would silently turn the guard into
an exact-zero test); ``0`` means "exact zeros only" and gives the effective
threshold ``0.0``, tested as ``v == 0`` (see :mod:`zpml_core.kernels`).
"""

from __future__ import annotations

import decimal
import math
import numbers
import sys
from fractions import Fraction
from typing import Any

from .errors import InvalidConfigError, ThresholdUnderflowError

__all__ = [
    "DTYPE_FORMATS",
    "ceil_to_dtype",
    "exact_threshold",
    "smallest_normal",
    "to_threshold",
]

#: dtype name -> (precision p incl. the implicit bit, exponent of the smallest
#: normal 2**emin, exponent of the largest binade): values are m * 2**(e - p + 1)
DTYPE_FORMATS: dict[str, tuple[int, int, int]] = {
    "float16": (11, -14, 15),
    "bfloat16": (8, -126, 127),
    "float32": (24, -126, 127),
    "float64": (53, -1022, 1023),
}

_FLOAT64_MAX = Fraction(sys.float_info.max)


def smallest_normal(dtype: str) -> float:
    """The smallest positive normal value of ``dtype`` (``2**emin``)."""
    return math.ldexp(1.0, DTYPE_FORMATS[dtype][1])


def _too_large(field: str, value: Any) -> InvalidConfigError:
    return InvalidConfigError(
        f"{field}={value!r} exceeds the largest finite float64 (about 1.8e308); thresholds "
        f"must be finite: pass a value <= 1.7976931348623157e308"
    )


def _underflow(field: str, value: Any, dtype: str) -> ThresholdUnderflowError:
    p, emin, _ = DTYPE_FORMATS[dtype]
    smallest = math.ldexp(1.0, emin - p + 1)
    return ThresholdUnderflowError(
        f"{field}={value!r} is positive but below the smallest positive {dtype} value "
        f"({smallest:.6g}); in {dtype} it would round to 0 and the guard would silently only "
        f"catch exact zeros. Use {field} >= {smallest:.6g}, pass {field}=0 to ask for "
        f"exact-zero-only semantics explicitly, or evaluate in a wider dtype."
    )


def _decimal_fraction(d: decimal.Decimal, field: str, shown: Any) -> Fraction:
    if d.is_nan() or d.is_infinite():
        raise InvalidConfigError(f"{field} must be finite and >= 0, got {shown!r}")
    if d.is_zero():
        return Fraction(0)
    if d.is_signed():
        raise InvalidConfigError(
            f"{field} must be >= 0 (0 means 'exact zeros only'), got {shown!r}"
        )
    adjusted = d.adjusted()  # d in [10**adjusted, 10**(adjusted + 1))
    if adjusted > 310:
        raise _too_large(field, shown)
    if adjusted < -340:  # below 1e-340 < 2**-1074: no float64 can hold it
        raise _underflow(field, shown, "float64")
    return Fraction(d)


def exact_threshold(value: Any, field: str, *, text: bool = True) -> Fraction:
    """The exact rational value of a threshold, validated (finite, ``>= 0``).

    Accepts ``int``, ``float``, :class:`fractions.Fraction`, :class:`decimal.Decimal`,
    other :class:`numbers.Rational`, numpy integer/floating scalars (``longdouble``
    included, converted exactly) and, with ``text=True``, strings (``"1e-400"``,
    ``"0.25"``, ``"1/3"``; what command lines and config files hold).

    Raises:
        InvalidConfigError: (a ``ValueError``) naming ``field``: wrong type, negative,
            NaN or infinite values, magnitudes above float64's range.
        ThresholdUnderflowError: a positive value below ``2**-1074``.
    """
    if isinstance(value, bool) or value is None:
        raise InvalidConfigError(
            f"{field} must be a finite real number >= 0, got {type(value).__name__} {value!r}"
        )
    if isinstance(value, str) and text:
        text_ = value.strip()
        if "/" in text_:
            num, _, den = text_.partition("/")
            frac = exact_threshold(num, field) if num.strip() else None
            div = exact_threshold(den, field) if den.strip() else None
            if frac is None or div is None or div == 0:
                raise InvalidConfigError(
                    f"{field}={value!r} is not a number: use a decimal ('1e-6') or 'p/q' with q > 0"
                )
            return _checked(frac / div, field, value)
        try:
            d = decimal.Decimal(text_)
        except decimal.InvalidOperation:  # "[<class 'decimal.ConversionSyntax'>]": noise
            raise InvalidConfigError(
                f"{field}={value!r} is not a number: use a decimal such as '1e-6' or '0.001'"
            ) from None
        return _checked(_decimal_fraction(d, field, value), field, value)
    if isinstance(value, decimal.Decimal):
        return _checked(_decimal_fraction(value, field, value), field, value)
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0.0:
            raise InvalidConfigError(
                f"{field} must be finite and >= 0 (0 means 'exact zeros only'), got {value!r}"
            )
        return Fraction(value)
    if isinstance(value, numbers.Rational):
        return _checked(Fraction(int(value.numerator), int(value.denominator)), field, value)
    ratio = getattr(value, "as_integer_ratio", None)  # numpy floating (longdouble incl.)
    if isinstance(value, numbers.Real) and callable(ratio):
        try:
            n, d = ratio()
        except (OverflowError, ValueError):  # "cannot convert Infinity/NaN": the message says it
            raise InvalidConfigError(
                f"{field} must be finite and >= 0 (0 means 'exact zeros only'), got {value!r}"
            ) from None
        return _checked(Fraction(int(n), int(d)), field, value)
    if isinstance(value, numbers.Integral):
        return _checked(Fraction(int(value)), field, value)
    raise InvalidConfigError(
        f"{field} must be a finite real number >= 0 (int, float, Fraction, Decimal, numpy "
        f"scalar or a decimal string), got {type(value).__name__} {value!r}"
    )


def _checked(frac: Fraction, field: str, shown: Any) -> Fraction:
    if frac < 0:
        raise InvalidConfigError(
            f"{field} must be >= 0 (0 means 'exact zeros only'), got {shown!r}"
        )
    if frac == 0:
        return frac
    e = frac.numerator.bit_length() - frac.denominator.bit_length()  # 2**(e-1) < frac < 2**(e+1)
    if e > 1025 or (e >= 1022 and frac > _FLOAT64_MAX):
        raise _too_large(field, shown)
    if e < -1076:
        raise _underflow(field, shown, "float64")
    return frac


def _ceil_exact(frac: Fraction, dtype: str) -> float:
    """Smallest value of ``dtype`` that is ``>= frac`` for ``frac >= 2**(emin-p+1)``
    (``inf`` when it would exceed the largest finite value)."""
    p, emin, emax = DTYPE_FORMATS[dtype]
    n, d = frac.numerator, frac.denominator
    e = n.bit_length() - d.bit_length()  # floor(log2(frac)) is e or e - 1
    if (n << max(-e, 0)) < (d << max(e, 0)):
        e -= 1
    if e > emax:
        return math.inf
    q = max(e, emin) - p + 1  # exponent of the ulp at frac (fixed spacing below 2**emin)
    num, den = (n, d << q) if q >= 0 else (n << -q, d)
    m = -((-num) // den)  # ceil(frac / 2**q) <= 2**p
    largest = math.ldexp(float((1 << p) - 1), emax - p + 1)
    if e == emax and m > (1 << p) - 1:
        return math.inf
    value = math.ldexp(float(m), q)  # exact: m has at most p + 1 bits and is even if so
    return value if value <= largest else math.inf


def ceil_to_dtype(tau: Any, dtype: str, field: str = "threshold", *, text: bool = False) -> float:
    """Smallest ``dtype`` value ``>= tau`` as a Python float (``0.0`` for ``tau == 0``).

    ``tau`` is any value :func:`exact_threshold` accepts (strings only with
    ``text=True``). ``inf`` is returned for
    a ``tau`` above the largest finite value of ``dtype`` (every finite ``|v|`` is
    below it). Raises :class:`ThresholdUnderflowError` for ``0 < tau`` below the
    smallest positive (subnormal) value of ``dtype``.
    """
    if dtype not in DTYPE_FORMATS:
        raise InvalidConfigError(
            f"{field}: unknown dtype {dtype!r}; expected one of {sorted(DTYPE_FORMATS)}"
        )
    if isinstance(tau, float) and math.isfinite(tau) and tau >= 0.0:
        frac = Fraction(tau) if tau else Fraction(0)
    else:
        frac = exact_threshold(tau, field, text=text)
    if frac == 0:
        return 0.0
    p, emin, _ = DTYPE_FORMATS[dtype]
    if frac < Fraction(2) ** (emin - p + 1):
        raise _underflow(field, tau, dtype)
    return _ceil_exact(frac, dtype)


def to_threshold(value: Any, field: str, *, text: bool = False) -> float:
    """Validate a threshold and return the smallest float64 ``>= value`` (``0.0`` for 0).

    This is how every threshold of zpml is stored (``InferenceConfig``,
    ``validity_taus``, the monitor, ``tau_sweep``, ONNX initializers, the CLI):
    rounding up keeps ``|v| < stored`` equal to ``|v| < value`` for every value
    of every supported dtype, so no rounding fails open. ``text=True`` also
    accepts decimal strings (``"1e-400"`` is refused as an underflow, never 0.0):
    use it for command-line and config-file values.

    Raises:
        InvalidConfigError: not a real number, negative, NaN/inf, or above float64's range.
        ThresholdUnderflowError: positive but below float64's smallest subnormal ``2**-1074``
            (it would become 0).
    """
    out = ceil_to_dtype(value, "float64", field, text=text)
    if out == math.inf:
        raise _too_large(field, value)
    return out
