"""Argument types of the ``zpml`` command: thresholds, ``--input`` values, ``--init``,
``--const``, ``--param`` and ``--box`` (the shared options are in :mod:`.options`).

Thresholds go through ``zpml_core``'s exact converter (:mod:`zpml_core.thresholds`),
the one threshold parser of zpml; this module only names the option in its errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

from zpml_core.errors import InvalidConfigError, ThresholdUnderflowError
from zpml_runtime.cli.errors import UsageError

__all__ = [
    "csv_floats",
    "parse_box_option",
    "parse_constants",
    "parse_exact_input",
    "parse_init",
    "parse_threshold",
    "threshold_float",
    "threshold_value",
    "unique_params",
]

_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NONFINITE = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf}
_NONFINITE |= {"+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}
#: longest number text read (a guard against huge decimal strings, not a parser)
MAX_VALUE_CHARS = 100


# ----------------------------------------------------------------- thresholds


def _field(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def _underflow(option: str, shown: str, dtype: str) -> ThresholdUnderflowError:
    from zpml_core.thresholds import DTYPE_FORMATS

    p, emin, _ = DTYPE_FORMATS[dtype]
    smallest = math.ldexp(1.0, emin - p + 1)
    return ThresholdUnderflowError(
        f"{option} ({_field(option)}) = {shown} is positive but below the smallest positive "
        f"{dtype} value ({smallest:.6g}): it would round to 0 and only catch exact zeros. "
        f"Use {option} >= {smallest:.6g}, or 0 for exact-zero-only semantics"
    )


def _refusal(option: str, text: str, e: InvalidConfigError) -> UsageError:
    """The converter's refusal with the option named; NaN and overflow said plainly
    (classified by the builtin ``float``, after the converter has refused the text)."""
    field = _field(option)
    try:
        approx: float | None = float(text)
    except ValueError:
        approx = None
    if approx is not None and math.isnan(approx):
        return UsageError(
            f"{option} ({field}) {text!r} is not a number (use decimals such as 1e-6 or 0)"
        )
    if approx == math.inf:
        return UsageError(
            f"{option} ({field}) {text[:40]!r} is too large for float64; use a finite threshold"
        )
    return UsageError(f"{option}: {e}")


def parse_threshold(text: str, option: str) -> Fraction:
    """An exact non-negative threshold from its text (``zpml_core``'s converter; ``1e-400``
    is refused as an underflow, never read as 0)."""
    from zpml_core.thresholds import exact_threshold

    if len(text.strip()) > MAX_VALUE_CHARS:
        raise UsageError(
            f"{option} ({_field(option)}) {text[:40]!r}... is too long to be a threshold"
        )
    try:
        return exact_threshold(text, _field(option), text=True)
    except ThresholdUnderflowError as e:
        raise _underflow(option, text.strip(), "float64") from e
    except InvalidConfigError as e:
        raise _refusal(option, text, e) from e


def threshold_float(value: Fraction, option: str, dtype: str) -> float:
    """The threshold as the config stores it (the smallest float64 ``>= value``, by
    ``zpml_core``'s converter); a positive value ``dtype`` cannot hold is refused."""
    from zpml_core.thresholds import ceil_to_dtype, to_threshold

    field = _field(option)
    try:
        ceil_to_dtype(value, dtype, field)  # refuses 0 < value < smallest positive dtype value
        return to_threshold(value, field)
    except ThresholdUnderflowError as e:
        raise _underflow(option, _fraction_brief(value), dtype) from e
    except InvalidConfigError as e:
        raise _refusal(option, str(value), e) from e


def threshold_value(text: str, option: str, dtype: str) -> float:
    """``--tau-*`` text -> the stored float64 threshold for evaluation in ``dtype``."""
    try:
        value = parse_threshold(text, option)
    except ThresholdUnderflowError as e:  # below every float: name the dtype in use
        raise _underflow(option, text.strip(), dtype) from e
    return threshold_float(value, option, dtype)


def _fraction_brief(v: Fraction) -> str:
    digits = max(len(str(v.numerator)), len(str(v.denominator)))
    return f"{float(v):.6g}" if digits > 40 else str(v)


# ----------------------------------------------------------------- values


def csv_floats(text: str, what: str) -> list[float]:
    """Comma-separated floats (``--taus``)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what} is empty; give comma-separated numbers such as 1e-6,1e-5")
    try:
        return [float(t) for t in items]
    except ValueError:
        raise UsageError(f"{what} {text!r} must be comma-separated numbers") from None


def parse_exact_input(text: str, variables: Sequence[str]) -> list[Fraction | float]:
    """Parse ``--input`` values: exact decimals as :class:`Fraction`, ``inf``/``nan`` as floats."""
    items = [t.strip() for t in text.split(",")] if text.strip() or variables else []
    if len(items) != len(variables):
        raise UsageError(
            f"--input {text!r} has {len(items)} value(s); the bundle takes {len(variables)} "
            f"({', '.join(variables) or 'no variables'})"
        )
    out: list[Fraction | float] = []
    for name, item in zip(variables, items, strict=True):
        low = item.lower()
        if low in _NONFINITE:
            out.append(_NONFINITE[low])
            continue
        if len(item) > MAX_VALUE_CHARS or not _DECIMAL.match(item):
            raise UsageError(
                f"--input value {item[:40]!r} for {name} is not a number "
                "(use decimals such as 0.5, -2, 1e-3, or inf/nan)"
            )
        if not math.isfinite(float(item)):
            raise UsageError(f"--input value {item!r} for {name} overflows float64")
        out.append(Fraction(item))
    return out


def parse_init(items: Sequence[str], params: Sequence[str]) -> dict[str, float]:
    """``--init NAME=VALUE`` for declared ``--param`` names (finite floats)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--init {item!r} must look like NAME=VALUE")
        if name not in params:
            raise UsageError(f"--init {name}: {name!r} is not declared with --param {name}")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--init {item!r}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise UsageError(f"--init {item!r}: the value must be finite")
        out[name] = number
    return out


def parse_constants(items: Sequence[str]) -> dict[str, str]:
    """``--const NAME=VALUE`` (repeatable): exact decimals, each name once."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UsageError(
                f"--const {item!r} must look like NAME=VALUE, e.g. pi=3.141592653589793"
            )
        if name in out:
            raise UsageError(f"--const {name} is given twice; give each constant once")
        if len(value) > MAX_VALUE_CHARS or not _DECIMAL.match(value):
            raise UsageError(
                f"--const {item!r}: {value[:40]!r} is not a decimal number (it is read exactly)"
            )
        out[name] = value
    return out


def unique_params(items: Sequence[str]) -> list[str]:
    """``--param`` names in order; a name given twice is refused."""
    seen: list[str] = []
    for name in items:
        if name in seen:
            raise UsageError(
                f"--param {name} is given twice; declare each learnable coefficient once"
            )
        seen.append(name)
    return seen


def parse_box_option(text: str, option: str = "--box") -> dict[str, tuple[Fraction, Fraction]]:
    """``--box x=0:1,y=-2:2`` -> exact intervals (:func:`zpml_symbolic.parse_box`); a bad
    entry is a usage error naming its field."""
    from zpml_symbolic.domain.box import BoxError, parse_box

    try:
        return dict(parse_box(text))
    except BoxError as e:
        raise UsageError(f"{option} ({e.field}): {e}") from e
