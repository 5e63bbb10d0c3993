"""The executable specification of ``docs/semantics.md`` section 3, one element at a time.

This module is the *reference*, not the fast path. It decides the strict
outputs of one sample from Python numbers (``float``, ``int`` or
:class:`fractions.Fraction`) with exact rational comparisons, written to be
read next to the table of section 3:

===============================================  ==============================
condition                                        result
===============================================  ==============================
``P``, ``Q`` or a ``V_i`` non-finite, or ``P/Q``  ``fault``
overflows the evaluation dtype
finite ``Q`` with ``Q == 0`` or ``|Q| < tau``,    ``semantic``
or a finite ``V_i`` with ``V_i == 0`` or
``|V_i| < tau_i``
``fault or semantic``                            ``bottom`` (both: "mixed")
not bottom and ``tau_infer <= |Q| < tau_train``   ``gap``
``fault + 2 * semantic``                         ``provenance`` (0, 1, 2, 3)
``P/Q`` rounded to the dtype, NaN where bottom   ``decoded``
===============================================  ==============================

Extension (underflow, docs/semantics.md "Executable specification"): when
``Q`` is evaluated as a product of factors and ``Q == 0`` although none of
the factors' values (``q_factors``) is 0, ``Q`` underflowed: a ``fault``,
and ``Q`` contributes nothing to ``semantic`` (its magnitude is unknown).

Every other copy of this rule (the numpy/torch kernels, ``strict_inference``,
the ONNX graph, ``FlattenedFRU.evaluate/explain/structural_validity_failures``,
the CLI's exact explanation, the validation report, the tau sweep, the
monitor) calls it or is differentially tested against it
(``tests/core/test_mask_spec.py`` and ``tests/*/test_spec_*.py``).

Nothing here is clever on purpose: thresholds are compared as real numbers
(``Fraction(|Q|) < Fraction(tau)``), the quotient is the exact rational
``P/Q`` rounded once to nearest-even in the dtype, and :func:`reference_masks`
is a plain loop over :func:`classify`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .errors import InvalidConfigError, ThresholdUnderflowError
from .resolution import check_order

__all__ = [
    "DTYPES",
    "Number",
    "Verdict",
    "below_threshold",
    "boundary_values",
    "classify",
    "is_finite",
    "largest_finite",
    "reference_masks",
    "round_to_dtype",
    "smallest_subnormal",
]

Number = float | int | Fraction

#: precision in bits (incl. the implicit bit), smallest normal exponent, largest exponent
_FORMATS: dict[str, tuple[int, int, int]] = {
    "float16": (11, -14, 15),
    "bfloat16": (8, -126, 127),
    "float32": (24, -126, 127),
    "float64": (53, -1022, 1023),
}
#: the evaluation dtypes this specification knows
DTYPES: tuple[str, ...] = tuple(_FORMATS)


def _format(dtype: str) -> tuple[int, int, int]:
    try:
        return _FORMATS[dtype]
    except KeyError:  # the lookup's KeyError adds nothing to the message: no chain
        raise InvalidConfigError(
            f"dtype={dtype!r} is not one of {DTYPES} (or None for exact arithmetic)"
        ) from None


def smallest_subnormal(dtype: str) -> Fraction:
    """The smallest positive value of ``dtype``, exactly (``2**-1074`` for float64)."""
    precision, emin, _ = _format(dtype)
    return Fraction(2) ** (emin - precision + 1)


def largest_finite(dtype: str) -> Fraction:
    """The largest finite value of ``dtype``, exactly."""
    precision, _, emax = _format(dtype)
    return (2 - Fraction(2) ** (1 - precision)) * Fraction(2) ** emax


def is_finite(v: Number) -> bool:
    """True for every ``int``/``Fraction`` and for finite floats (NaN and +-inf are not)."""
    return not isinstance(v, float) or math.isfinite(v)


def round_to_dtype(x: Fraction, dtype: str) -> float:
    """The exact rational ``x`` rounded to nearest (ties to even) in ``dtype``; +-inf on overflow.

    The result is a Python float holding the ``dtype`` value exactly.
    """
    precision, emin, _ = _format(dtype)
    if x == 0:
        return 0.0
    sign = -1.0 if x < 0 else 1.0
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2**(e-1) < a < 2**(e+1)
    if Fraction(2) ** e > a:
        e -= 1  # now 2**e <= a < 2**(e+1)
    quantum = Fraction(2) ** (max(e, emin) - precision + 1)  # spacing of dtype values near a
    steps, rest = divmod(a, quantum)  # a = steps * quantum + rest, 0 <= rest < quantum
    steps = int(steps)
    if rest * 2 > quantum or (rest * 2 == quantum and steps % 2 == 1):
        steps += 1
    rounded = steps * quantum
    if rounded > largest_finite(dtype):
        return sign * math.inf
    return sign * float(rounded)


def below_threshold(v: Number, tau: Number) -> bool:
    """The semantic test of one value: finite and (``v == 0`` or ``|v| < tau``), exactly.

    ``tau = 0`` means "exact zeros only" (either sign of zero). NaN and +-inf
    are never semantic (they are faults).
    """
    if not is_finite(v):
        return False
    return v == 0 or abs(Fraction(v)) < Fraction(tau)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The strict outputs of one sample (``docs/semantics.md`` section 3).

    Attributes:
        fault: ``P``, ``Q`` or a factor non-finite, or ``P/Q`` overflowed the dtype.
        semantic: ``Q`` or a factor finite and zero or below its threshold.
        bottom: ``fault or semantic``.
        gap: not bottom and ``tau_infer <= |Q| < tau_train`` (False without ``tau_train``).
        provenance: ``0`` finite, ``1`` fault, ``2`` semantic, ``3`` mixed.
        decoded: ``P/Q`` (rounded to the dtype, or exact with ``dtype=None``); NaN where bottom.
        factor_faults: per factor, ``V_i`` non-finite.
        factor_semantics: per factor, :func:`below_threshold` of ``V_i`` and ``tau_i``.
    """

    fault: bool
    semantic: bool
    bottom: bool
    gap: bool
    provenance: int
    decoded: float | Fraction
    factor_faults: tuple[bool, ...] = ()
    factor_semantics: tuple[bool, ...] = ()


def _threshold(value: Any, field: str, dtype: str | None) -> Fraction:
    """A finite threshold ``>= 0``; a positive one below the dtype's smallest value is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction):
        raise InvalidConfigError(f"{field} must be a finite real number >= 0, got {value!r}")
    if not is_finite(value) or value < 0:
        raise InvalidConfigError(
            f"{field} must be finite and >= 0 (0 means 'exact zeros only'), got {value!r}"
        )
    tau = Fraction(value)
    if dtype is not None and 0 < tau < smallest_subnormal(dtype):
        raise ThresholdUnderflowError(
            f"{field}={value!r} is positive but below the smallest positive {dtype} value; "
            f"use {field}=0.0 for exact zeros only, a larger {field}, or a wider dtype"
        )
    return tau


def _factor_taus(taus: Number | Sequence[Number], k: int) -> list[Number]:
    if isinstance(taus, Sequence):
        if len(taus) != k:
            raise InvalidConfigError(f"taus has {len(taus)} entries but there are {k} factors")
        return list(taus)
    return [taus] * k


def classify(
    p: Number,
    q: Number,
    factors: Sequence[Number] = (),
    *,
    tau_infer: Number = 0.0,
    tau_train: Number | None = None,
    taus: Number | Sequence[Number] = 0.0,
    dtype: str | None = "float64",
    q_factors: Sequence[Number] = (),
) -> Verdict:
    """Strict outputs of one sample from the values of ``P``, ``Q`` and the factors ``V_i``.

    Args:
        p, q: the values of ``P`` and ``Q`` (floats may be NaN/+-inf).
        factors: the values of the retained validity factors ``V_i``.
        tau_infer, tau_train, taus: thresholds as in ``InferenceConfig`` and
            ``validity_taus`` (one number for every factor or one per factor).
        dtype: the evaluation dtype (decides when ``P/Q`` overflows and how
            ``decoded`` is rounded), or ``None`` for exact arithmetic (no overflow,
            ``decoded`` is the exact :class:`~fractions.Fraction`).
        q_factors: the evaluated values of the factors ``Q`` is the product of (empty:
            ``Q`` is not a product). ``q == 0`` with every one of them nonzero is an
            underflow: a fault, and no semantic bottom from ``Q``.

    Raises:
        InvalidConfigError: a negative or non-finite threshold, ``tau_train < tau_infer``,
            a wrong number of ``taus``; :class:`ThresholdUnderflowError` for a positive
            threshold the dtype cannot represent.
    """
    t_infer = _threshold(tau_infer, "tau_infer", dtype)
    t_train = None if tau_train is None else _threshold(tau_train, "tau_train", dtype)
    if t_train is not None:
        check_order(tau_infer, tau_train)  # validated above; compared exactly
    t_factors = [
        _threshold(t, f"taus[{i}]", dtype) for i, t in enumerate(_factor_taus(taus, len(factors)))
    ]

    factor_faults = tuple(not is_finite(v) for v in factors)
    factor_semantics = tuple(below_threshold(v, t) for v, t in zip(factors, t_factors, strict=True))

    quotient: float | Fraction = math.nan
    overflow = False
    if is_finite(p) and is_finite(q) and q != 0:
        exact = Fraction(p) / Fraction(q)
        quotient = exact if dtype is None else round_to_dtype(exact, dtype)
        overflow = not is_finite(quotient)

    underflow = bool(q_factors) and q == 0 and all(v != 0 for v in q_factors)
    fault = not is_finite(p) or not is_finite(q) or overflow or underflow or any(factor_faults)
    semantic = (below_threshold(q, t_infer) and not underflow) or any(factor_semantics)
    bottom = fault or semantic
    gap = (
        not bottom
        and t_train is not None
        and is_finite(q)
        and t_infer <= abs(Fraction(q)) < t_train
    )
    return Verdict(
        fault=fault,
        semantic=semantic,
        bottom=bottom,
        gap=gap,
        provenance=int(fault) + 2 * int(semantic),
        decoded=math.nan if bottom else quotient,
        factor_faults=factor_faults,
        factor_semantics=factor_semantics,
    )


def reference_masks(
    P: Any,
    Q: Any,
    factors: Sequence[Any] = (),
    *,
    tau_infer: Number = 0.0,
    tau_train: Number | None = None,
    taus: Number | Sequence[Number] = 0.0,
    dtype: str | None = None,
    q_factors: Sequence[Any] = (),
) -> dict[str, Any]:
    """:func:`classify` applied to every element of equally shaped numpy arrays.

    ``P``, ``Q`` and each factor in ``factors`` (and in ``q_factors``, the factors
    ``Q`` is the product of) must have one shape (no broadcasting: this is the reference). ``dtype`` defaults to the dtype name
    of ``Q``. Returns numpy arrays under the strict output names
    (``decoded`` in float64 holding the dtype's values, ``bottom_mask``,
    ``gap_mask``, ``fault_mask``, ``semantic_bottom_mask``, int8
    ``bottom_provenance``) plus ``factor_fault_masks`` and
    ``factor_semantic_masks`` (tuples of bool arrays).
    """
    import numpy as np

    P, Q = np.asarray(P), np.asarray(Q)
    vs = [np.asarray(v) for v in factors]
    qs = [np.asarray(v) for v in q_factors]
    named = [("P", P), *((f"factors[{i}]", v) for i, v in enumerate(vs))]
    for name, arr in (*named, *((f"q_factors[{i}]", v) for i, v in enumerate(qs))):
        if arr.shape != Q.shape:
            raise InvalidConfigError(
                f"reference_masks needs equal shapes: {name} has {arr.shape}, Q has {Q.shape}"
            )
    dt = dtype if dtype is not None else Q.dtype.name
    shape = Q.shape
    p_list = [float(v) for v in P.astype(np.float64).reshape(-1)]
    q_list = [float(v) for v in Q.astype(np.float64).reshape(-1)]
    v_lists = [[float(x) for x in v.astype(np.float64).reshape(-1)] for v in vs]
    q_lists = [[float(x) for x in v.astype(np.float64).reshape(-1)] for v in qs]
    verdicts = [
        classify(
            p,
            q,
            [v[n] for v in v_lists],
            tau_infer=tau_infer,
            tau_train=tau_train,
            taus=taus,
            dtype=dt,
            q_factors=[v[n] for v in q_lists],
        )
        for n, (p, q) in enumerate(zip(p_list, q_list, strict=True))
    ]

    def field(get: Any, kind: Any) -> Any:
        return np.array([get(v) for v in verdicts], dtype=kind).reshape(shape)

    k = len(vs)
    return {
        "decoded": field(lambda v: float(v.decoded), np.float64),
        "bottom_mask": field(lambda v: v.bottom, bool),
        "gap_mask": field(lambda v: v.gap, bool),
        "fault_mask": field(lambda v: v.fault, bool),
        "semantic_bottom_mask": field(lambda v: v.semantic, bool),
        "bottom_provenance": field(lambda v: v.provenance, np.int8),
        "factor_fault_masks": tuple(
            field(lambda v, i=i: v.factor_faults[i], bool) for i in range(k)
        ),
        "factor_semantic_masks": tuple(
            field(lambda v, i=i: v.factor_semantics[i], bool) for i in range(k)
        ),
    }


def _neighbours(v: float, dtype: str) -> list[float]:
    """``v`` and the ``dtype`` values one quantum below and above it (exact)."""
    precision, emin, _ = _format(dtype)
    if v == 0 or not math.isfinite(v):
        return [v]
    _, e = math.frexp(abs(v))  # 2**(e-1) <= |v| < 2**e
    quantum = Fraction(2) ** (max(e - 1, emin) - precision + 1)
    return [round_to_dtype(Fraction(v) + d, dtype) for d in (-quantum, 0, quantum)]


def boundary_values(dtype: str, thresholds: Sequence[Number] = ()) -> list[float]:
    """Values of ``dtype`` where the rule of section 3 changes its answer, for tests.

    Both zeros, the smallest subnormal (and twice it), the smallest normal, the
    largest finite value (its quotients by values below 1 overflow), NaN,
    +-inf, +-1, +-0.5, and for each threshold ``tau`` the ``dtype`` values
    nearest to it with their neighbours (so ``|v| == tau`` is hit exactly when
    ``tau`` is representable), each with both signs.
    """
    tiny = float(smallest_subnormal(dtype))
    precision, emin, _ = _format(dtype)
    base = [0.0, tiny, 2 * tiny, math.ldexp(1.0, emin), float(largest_finite(dtype)), 1.0, 0.5]
    for tau in thresholds:
        t = round_to_dtype(Fraction(tau), dtype)
        base += _neighbours(t, dtype)
    out: dict[str, float] = {}  # keyed by repr: keeps both zeros, drops duplicates
    for v in [math.nan, math.inf, *base]:
        for signed in (v, -v):
            out.setdefault(repr(signed), signed)
    return list(out.values())
