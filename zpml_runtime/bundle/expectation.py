"""Exact expectation of a compiled graph's outputs at one point (the second line of defence).

:func:`expected_outputs` evaluates ``P``, ``Q`` and every retained validity
factor exactly at a validator point (the metadata's ``"p/q"`` coefficients,
never evaluated as code) and derives the strict outputs of docs/semantics.md
section 3 from the baked thresholds, or says the dtype cannot decide them: a
point is decided only where the floating-point evaluation is provably exact
(every term a dyadic rational that fits the mantissa, with headroom for the
evaluation order), or where a rounding-error bound keeps each value away from
0 and from every threshold. Coordinates beyond ``2**+-EXTREME_EXPONENT`` are
left to the bit-exact program comparison (:mod:`.differential`).

The values come from the one exact evaluator, :class:`~.exact.SparsePoly`
(python-flint rationals); they leave it as ``Fraction``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from zpml_runtime.bundle.exact import (
    MetadataFRU,
    Sparse,
    SparsePoly,
    num_den,
    to_fast,
    to_fraction,
)
from zpml_runtime.bundle.metadata import EffectiveThresholds
from zpml_runtime.bundle.sampling import Point, representable

_MANTISSA = {"float32": 24, "float64": 53}
_MAX = {
    "float32": Fraction(np.finfo(np.float32).max.item()),
    "float64": Fraction(float(np.finfo(np.float64).max)),
}
_MIN_EXP = {"float32": -149, "float64": -1074}
_MIN_NORMAL_EXP = {"float32": -125, "float64": -1021}
_HEADROOM_BITS = 4  # evaluation order (Horner, products of factors) may grow intermediates


def _gen_values(fru: MetadataFRU, point: Sequence[Any], params: Sequence[Fraction]) -> list[Any]:
    variables = set(fru.variables)
    names = list(fru.variables) + [g for g in fru.generators if g not in variables]
    by_name = dict(zip(names, list(point) + list(params), strict=True))
    return [by_name[g] for g in fru.generators]


_num = to_fast
_frac = to_fraction
_nd = num_den


@dataclass(frozen=True, slots=True)
class _Fast:
    """A polynomial in the exact evaluator's form, and whether every coefficient is
    exactly a value of the dtype (computed once)."""

    poly: SparsePoly
    representable: bool

    @property
    def terms(self) -> tuple[tuple[Any, tuple[tuple[int, int], ...]], ...]:
        return self.poly.terms

    @staticmethod
    def of(poly: Sparse, dtype: str) -> _Fast:
        return _Fast(SparsePoly.of(poly), all(representable(c, dtype) for c, _ in poly))


def _fast_value(poly: _Fast, gens: Sequence[Any]) -> Any:
    return poly.poly.value(gens)


def _bound_bits(poly: _Fast, gens: Sequence[Any]) -> tuple[Any, int | None]:
    """(sum of |term| with |g| replaced by max(|g|, 1), lowest 2-adic valuation or None)."""
    one = _num(Fraction(1))
    total = _num(Fraction(0))
    low: int | None = 0
    big_gens = [max(abs(g), one) for g in gens]
    for c, mono in poly.terms:
        t, big = c, abs(c)
        for i, e in mono:
            t *= gens[i] ** e
            big *= big_gens[i] ** e
        total += big
        if low is not None and t:
            n, d = _nd(t)
            if d & (d - 1):
                low = None  # not dyadic: not exact in any binary format
            else:
                n = abs(n)
                low = min(low, (n & -n).bit_length() - 1 - (d.bit_length() - 1))
    return total, low


def _exactly_evaluable(poly: _Fast, gens: Sequence[Any], dtype: str) -> bool:
    """True when any sensible evaluation order of the polynomial is exact in ``dtype``."""
    if not poly.representable:
        return False
    bound, low = _bound_bits(poly, gens)
    if low is None:
        return False
    if not bound:
        return True
    if bound * 2**_HEADROOM_BITS > _num(_MAX[dtype]):
        return False
    if low < _MIN_EXP[dtype]:
        return False  # below the smallest subnormal: not exact
    n, d = _nd(bound)
    high = n.bit_length() - d.bit_length() + 1 + _HEADROOM_BITS  # >= floor(log2) + 1 + headroom
    if high - _HEADROOM_BITS - 1 < _MIN_NORMAL_EXP[dtype]:
        return False  # subnormal range: fewer mantissa bits than assumed
    return high - low <= _MANTISSA[dtype]


@dataclass(frozen=True, slots=True)
class _Expected:
    fault: bool
    semantic: bool | None  # None: not decided (NaN rows)
    gap: bool | None
    decoded: Fraction | None  # exact P/Q where accepted
    decoded_tol: float  # absolute bound on the rounding error of decoded
    # per factor: (fault, semantic, (exact value, error bound) or None)
    factors: tuple[tuple[bool, bool | None, tuple[Fraction, Fraction] | None], ...]


def _uses(poly: Sparse, gi: set[int]) -> bool:
    return any(i in gi for _, mono in poly for i, _ in mono)


@dataclass(frozen=True, slots=True)
class _Polys:
    P: Sparse
    Q: Sparse
    V: tuple[Sparse, ...]
    fast: tuple[_Fast, ...] | None = None  # P, Q, V... in the fast type (see _Polys.with_fast)

    def with_fast(self, dtype: str) -> _Polys:
        """The same polynomials with their fast forms computed for ``dtype``."""
        fast = tuple(_Fast.of(p, dtype) for p in (self.P, self.Q, *self.V))
        return _Polys(self.P, self.Q, self.V, fast)


def expected_outputs(
    fru: MetadataFRU,
    point: Point,
    params: Sequence[Fraction],
    polys: _Polys,
    thresholds: EffectiveThresholds,
    dtype: str,
) -> _Expected | None:
    """The strict outputs at ``point`` from exact arithmetic; ``None`` when undecidable."""
    t_infer = _threshold(thresholds.t_infer)
    t_train = _threshold(thresholds.t_train)
    t_factors = [_threshold(t) for t in thresholds.t_factors]
    nonfinite = {
        fru.generators.index(v)
        for v, x in zip(fru.variables, point.values, strict=True)
        if not isinstance(x, Fraction) and v in fru.generators
    }
    retained = polys.V
    if nonfinite:
        if not any(_uses(t, nonfinite) for t in (polys.P, polys.Q, *retained)):
            return None
        factors = tuple(
            (True, None, None) if _uses(t, nonfinite) else (False, None, None) for t in retained
        )
        if any(not _uses(t, nonfinite) for t in retained):
            return None  # that factor's value is finite: its masks depend on it; not needed here
        return _Expected(True, None, None, None, 0.0, factors)
    if any(_extreme(v) for v in point.values):
        return None  # huge or tiny coordinates: left to the bit-exact program comparison
    fast = polys.fast or polys.with_fast(dtype).fast
    assert fast is not None
    f_p, f_q, f_vs = fast[0], fast[1], fast[2:]
    gens = [_num(g) for g in _gen_values(fru, point.values, params)]
    limit = _num(_MAX[dtype])
    e_q = _error_bound(f_q, gens, dtype)
    e_vs = [_error_bound(t, gens, dtype) for t in f_vs]
    p_bound, _ = _bound_bits(f_p, gens)
    if e_q is None or any(e is None for e in e_vs) or p_bound * 2**_HEADROOM_BITS > limit:
        return None
    q = _fast_value(f_q, gens)
    p = _fast_value(f_p, gens)
    vs = [_fast_value(t, gens) for t in f_vs]
    ti, tt = (None if t is None else _num(t) for t in (t_infer, t_train))
    sem_q = _below(q, e_q, [ti, tt])
    factor_sem = [
        _below(v, e, [None if t is None else _num(t)])
        for v, e, t in zip(vs, e_vs, t_factors, strict=True)
    ]
    decided = [f for f in factor_sem if f is not None]
    if sem_q is None or len(decided) != len(factor_sem):
        return None  # rounding could decide either way
    semantic = bool(sem_q[0]) or any(f[0] for f in decided)
    decoded = None
    tol = 0.0
    if not semantic:
        dec = p / q
        eps = _num(Fraction(1, 2 ** (_MANTISSA[dtype] - 8)))
        tol_exact = (
            eps * (p_bound / abs(q) + abs(dec))
            + abs(dec) * 2 * e_q / abs(q)
            + _num(Fraction(float(np.finfo(dtype).tiny)))
        )
        if abs(dec) + tol_exact >= limit:
            return None  # P/Q may overflow: undecided
        decoded = _frac(dec)
        tol = float(_frac(tol_exact))
    gap = (not semantic) and t_train is not None and bool(sem_q[1])
    return _Expected(
        False,
        semantic,
        gap,
        decoded,
        tol,
        tuple(
            (False, bool(f[0]), (_frac(v), _frac(e)))
            for f, v, e in zip(decided, vs, e_vs, strict=True)
        ),
    )


#: coordinates beyond 2**+-EXTREME_EXPONENT are not evaluated exactly (rounding or overflow
#: then decides almost every outcome, and exact powers of them are slow)
EXTREME_EXPONENT = 64


def _extreme(v: Fraction | float) -> bool:
    if not isinstance(v, Fraction) or not v:
        return False
    return abs(math.frexp(float(v))[1]) > EXTREME_EXPONENT or float(v) == 0.0


def _error_bound(poly: _Fast, gens: Sequence[Any], dtype: str) -> Any:
    """0 when the float evaluation is exact, else a bound on its error; None: may overflow."""
    if _exactly_evaluable(poly, gens, dtype):
        return _num(Fraction(0))
    bound, _ = _bound_bits(poly, gens)
    if bound * 2**_HEADROOM_BITS > _num(_MAX[dtype]):
        return None
    return bound * _num(Fraction(1, 2 ** (_MANTISSA[dtype] - 8)))


def _below(value: Any, err: Any, thresholds: Sequence[Any]) -> list[bool] | None:
    """For each threshold t: the graph's ``value == 0 or |value| < t``; None if rounding decides.

    A ``None`` threshold gives False.
    """
    if not err:
        return [t is not None and (value == 0 or abs(value) < t) for t in thresholds]
    if abs(value) <= 2 * err:
        return None  # a rounded value might be 0
    out = []
    for t in thresholds:
        if t is None:
            out.append(False)
        elif abs(abs(value) - t) <= err:
            return None
        else:
            out.append(abs(value) < t)
    return out


def _threshold(value: Any) -> Fraction | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Fraction(10) ** 400 if value == "inf" else Fraction(0)
    return Fraction(float(value))


__all__ = ["EXTREME_EXPONENT", "Sparse", "expected_outputs"]
