"""Pole report: the real zeros of ``Q`` in an interval, exactly, for univariate models.

The coefficients are taken as exact rationals (the binary value of each float,
or its rounding to ``digits`` significant digits), so the report is a fact
about the polynomials the layer evaluates, not an estimate. Real roots are
isolated with sympy's exact root isolation (``Poly.intervals``), multiplicities
come from the square-free decomposition, and cancellation with ``P`` is
decided by an exact polynomial gcd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

import zpml_symbolic as zs

from ..errors import InvalidConfigError, UnsupportedInputError
from ._exact import check_digits
from .rational import SCMRationalLayer
from .template import RationalTemplateLayer

__all__ = ["Pole", "PoleReport", "pole_report", "real_zeros"]

POLE = "pole"
REMOVABLE = "removable"
VALIDITY = "validity_factor"


@dataclass(frozen=True)
class Pole:
    """One real zero of ``Q`` (or of a validity factor) in the interval.

    * ``interval``: exact isolating interval ``(lo, hi)`` (Fractions; ``lo == hi``
      for a rational zero), refined to width below ``1e-18 * max(1, |x|)``;
    * ``location``: its midpoint as a float;
    * ``multiplicity``: as a zero of ``Q`` (or of the factor);
    * ``order``: multiplicity in ``Q`` minus multiplicity in ``gcd(P, Q)``: > 0 is a
      true pole of that order, <= 0 a removable point (``P`` vanishes there too);
    * ``kind``: ``"pole"``, ``"removable"`` or ``"validity_factor"``.

    Every kind is bottom under strict semantics (``Q`` or a factor is zero there).
    """

    interval: tuple[Fraction, Fraction]
    location: float
    multiplicity: int
    order: int
    kind: str

    @property
    def is_pole(self) -> bool:
        """True for a zero of ``Q`` that does not cancel with ``P``."""
        return self.kind == POLE


@dataclass(frozen=True)
class PoleReport:
    """Real zeros of ``Q`` (and of the validity factors) in ``[lo, hi]``."""

    interval: tuple[float, float]
    numerator: sp.Poly
    denominator: sp.Poly
    zeros: tuple[Pole, ...]
    validity_zeros: tuple[Pole, ...] = ()

    @property
    def poles(self) -> tuple[Pole, ...]:
        """The true poles (zeros of ``Q`` not cancelled by ``P``), left to right."""
        return tuple(z for z in self.zeros if z.is_pole)

    @property
    def removable(self) -> tuple[Pole, ...]:
        """Zeros of ``Q`` that cancel with zeros of ``P`` (still bottom, no blow-up)."""
        return tuple(z for z in self.zeros if not z.is_pole)

    @property
    def locations(self) -> tuple[float, ...]:
        """Float locations of the true poles."""
        return tuple(p.location for p in self.poles)

    def nearest(self, x0: float) -> Pole | None:
        """The true pole closest to ``x0`` (None when there is none)."""
        return min(self.poles, key=lambda p: abs(p.location - x0), default=None)

    def __str__(self) -> str:
        lo, hi = self.interval
        lines = [f"zeros of Q in [{lo:g}, {hi:g}]: {len(self.zeros)} ({len(self.poles)} poles)"]
        for z in self.zeros + self.validity_zeros:
            lines.append(
                f"  x = {z.location:.17g}  {z.kind} (multiplicity {z.multiplicity}, order {z.order})"
            )
        return "\n".join(lines)


def _interval(interval: Any) -> tuple[Fraction, Fraction, tuple[float, float]]:
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise InvalidConfigError(
            f"interval must be a pair (lo, hi) of finite numbers, got {interval!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise InvalidConfigError(f"interval must satisfy lo <= hi with finite ends, got {interval!r}")
    return Fraction(lo), Fraction(hi), (lo, hi)


def _refine(poly: sp.Poly, a: sp.Rational, b: sp.Rational) -> tuple[Fraction, Fraction]:
    if a == b:
        return Fraction(int(a.p), int(a.q)), Fraction(int(a.p), int(a.q))
    scale = max(1.0, abs(float(a)), abs(float(b)))
    eps = sp.Rational(Fraction(scale * 1e-18))
    a, b = poly.refine_root(a, b, eps=eps)
    return Fraction(int(a.p), int(a.q)), Fraction(int(b.p), int(b.q))


def real_zeros(poly: sp.Poly, lo: Fraction, hi: Fraction) -> list[tuple[tuple[Fraction, Fraction], int]]:
    """Exact isolating intervals and multiplicities of the real zeros of ``poly`` in ``[lo, hi]``.

    ``poly`` is a univariate polynomial over QQ. The zero polynomial raises
    ``InvalidConfigError`` (it vanishes everywhere).
    """
    if poly.is_zero:
        raise InvalidConfigError("the polynomial is identically zero: every point is bottom")
    if poly.degree() <= 0:
        return []
    out = []
    for factor, mult in poly.sqf_list()[1]:
        sq = sp.Poly(factor, poly.gen, domain=sp.QQ)
        # closed window: a zero at lo or hi is found (as a degenerate interval)
        for (a, b), _ in sq.intervals(inf=sp.Rational(lo), sup=sp.Rational(hi)):
            out.append((_refine(sq, a, b), int(mult)))
    out.sort(key=lambda r: r[0][0])
    return out


def _multiplicity(poly: sp.Poly, a: Fraction, b: Fraction) -> int:
    """Multiplicity in ``poly`` of the unique zero of a square-free factor inside ``[a, b]``."""
    if poly.degree() <= 0:
        return 0
    count = 0
    for factor, mult in poly.sqf_list()[1]:
        sq = sp.Poly(factor, poly.gen, domain=sp.QQ)
        if sq.degree() > 0 and sq.count_roots(sp.Rational(a), sp.Rational(b)) > 0:
            count += int(mult)
    return count


def _zeros(poly: sp.Poly, other: sp.Poly | None, lo: Fraction, hi: Fraction) -> list[Pole]:
    gcd = poly.gcd(other) if other is not None else None
    out = []
    for (a, b), mult in real_zeros(poly, lo, hi):
        if gcd is None:
            order, kind = mult, VALIDITY
        else:
            order = mult - _multiplicity(gcd, a, b)
            kind = POLE if order > 0 else REMOVABLE
        out.append(Pole((a, b), float((a + b) / 2), mult, order, kind))
    return out


def _polys(model: Any, digits: int | None) -> tuple[sp.Poly, sp.Poly, tuple[sp.Poly, ...]]:
    if isinstance(model, SCMRationalLayer):
        P, Q = model.exact_polynomials(digits)
        return P, Q, ()
    if isinstance(model, RationalTemplateLayer):
        if len(model.variables) != 1:
            raise InvalidConfigError(
                f"pole_report needs a univariate model; this template has inputs {list(model.variables)}"
            )
        x = sp.Symbol(model.variables[0])
        P, Q, V = model.exact_polynomials(digits)
        var = [s for s in Q.free_symbols | P.free_symbols if s.name == x.name]
        gen = var[0] if var else x
        return (
            sp.Poly(P, gen, domain=sp.QQ),
            sp.Poly(Q, gen, domain=sp.QQ),
            tuple(sp.Poly(v, gen, domain=sp.QQ) for v in V),
        )
    if isinstance(model, str | sp.Basic | zs.FlattenedFRU):
        fru = model if isinstance(model, zs.FlattenedFRU) else zs.flatten(model)
        if len(fru.variables) != 1:
            raise InvalidConfigError(
                f"pole_report needs a univariate expression; this one has inputs {list(fru.variables)}"
            )
        gen = fru.variables[0]
        return (
            sp.Poly(fru.numerator, gen, domain=sp.QQ),
            sp.Poly(fru.denominator, gen, domain=sp.QQ),
            tuple(sp.Poly(v, gen, domain=sp.QQ) for v in fru.validity_factors),
        )
    raise UnsupportedInputError(
        "pole_report expects an SCMRationalLayer, a univariate RationalTemplateLayer, an expression "
        f"(text or sympy) or a FlattenedFRU, got {type(model).__name__}"
    )


def pole_report(
    model: SCMRationalLayer | RationalTemplateLayer | str | sp.Expr | zs.FlattenedFRU,
    interval: tuple[float, float],
    *,
    digits: int | None = None,
) -> PoleReport:
    """Exact report of the real zeros of ``Q`` in the closed ``interval``.

    ``digits=None`` uses the exact binary value of every float coefficient;
    ``digits=k`` rounds them to ``k`` significant digits first (what a user
    reading the rounded ``to_sympy(digits=k)`` would compute). Zeros of the
    validity factors of a template are listed in ``validity_zeros``.
    """
    digits = check_digits(digits)
    lo, hi, floats = _interval(interval)
    P, Q, V = _polys(model, digits)
    zeros = _zeros(Q, P, lo, hi)
    vzeros = [z for v in V for z in _zeros(v, None, lo, hi)]
    vzeros.sort(key=lambda z: z.interval[0])
    return PoleReport(floats, P, Q, tuple(zeros), tuple(vzeros))
