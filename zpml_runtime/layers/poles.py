"""Pole report: the real zeros of ``Q`` in an interval, exact, with true poles told from artefacts.

The coefficients are taken as exact rationals (the binary value of each float,
or its rounding to ``digits`` significant digits), so the zero set is a fact
about the polynomials the layer evaluates, not an estimate. Real roots are
isolated with sympy's exact root isolation (``Poly.intervals``), multiplicities
come from the square-free decomposition, and exact cancellation with ``P`` is
decided by an exact polynomial gcd.

On top of that, zeros of ``Q`` closer than ``cluster_tol * width`` are one pole
(a double pole perturbed by rounding splits into two close roots or a complex
pair near the axis), and each pole gets its Laurent coefficient (the residue
for a simple pole) and its distance to the nearest (complex) zero of ``P``. A
pole whose influence radius ``(|residue| / scale) ** (1 / order)`` or whose
distance to a zero of ``P`` is below ``spurious_tol * width`` is a Froissart
doublet: listed in ``report.spurious``, not in ``report.poles``. With
``data=(x, y)`` the data decide instead: a pole is spurious when the data are
explained as well without it (divide its factor out of ``Q``, refit ``P``, an
F-test on the relative error), whatever its residue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp

import zpml_symbolic as zs

from ..errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from ._exact import check_digits
from ._pole_class import ChebForm, laurent_coefficient, typical_scale
from ._real_zeros import real_zeros, zero_multiplicity
from ._roots import RootCluster, clusters
from .rational import SCMRationalLayer
from .template import RationalTemplateLayer

__all__ = ["Pole", "PoleReport", "pole_report", "real_zeros"]

POLE = "pole"
REMOVABLE = "removable"
SPURIOUS = "spurious"
VALIDITY = "validity_factor"


@dataclass(frozen=True)
class Pole:
    """One real pole of ``P/Q`` (a cluster of zeros of ``Q``), or a zero of a validity factor.

    * ``interval``: exact isolating interval ``(lo, hi)`` (Fractions; ``lo == hi``
      for a rational zero) refined to width below ``1e-18 * max(1, |x|)``; for a
      cluster, the hull of its exact real zeros (``(location, location)`` when
      it has none: a complex pair within ``cluster_tol`` of the axis);
    * ``location``: the correctly rounded midpoint for an exact zero, the mean
      of the cluster otherwise;
    * ``multiplicity``: as a zero of ``Q`` (cluster size);
    * ``order``: multiplicity minus the multiplicity in ``gcd(P, Q)``: > 0 is a
      pole, <= 0 a removable point (``P`` vanishes there exactly too);
    * ``kind``: ``"pole"``, ``"spurious"`` (a Froissart doublet: negligible
      residue, near-cancelled by a zero of ``P``, or not supported by the data),
      ``"removable"`` or ``"validity_factor"``;
    * ``residue``: ``lim (x - a)**order P/Q`` at ``a = location`` (the residue
      of a simple pole; None for validity factors and removable points);
    * ``zero_distance``: distance to the nearest complex zero of ``P`` (inf if none);
    * ``bottom``: ``Q`` has an exact real zero here, so strict inference returns
      bottom there; False for a complex pair near the axis (huge finite values).
    """

    interval: tuple[Fraction, Fraction]
    location: float
    multiplicity: int
    order: int
    kind: str
    residue: float | None = None
    zero_distance: float | None = None
    bottom: bool = True

    @property
    def is_pole(self) -> bool:
        """True for a true pole (not spurious, not cancelled by ``P``)."""
        return self.kind == POLE

    @property
    def is_spurious(self) -> bool:
        """True for a Froissart doublet."""
        return self.kind == SPURIOUS


@dataclass(frozen=True)
class PoleReport:
    """Real poles of ``P/Q`` (and zeros of the validity factors) in ``[lo, hi]``.

    ``zeros`` lists every entry (true, spurious and removable) left to right;
    ``scale`` is the typical ``|P/Q|`` used for the residue test and
    ``data_checked`` tells whether the poles were tested against data.
    """

    interval: tuple[float, float]
    numerator: sp.Poly
    denominator: sp.Poly
    zeros: tuple[Pole, ...]
    validity_zeros: tuple[Pole, ...] = ()
    scale: float = 1.0
    data_checked: bool = False

    @property
    def poles(self) -> tuple[Pole, ...]:
        """The true poles, left to right (no spurious and no removable ones)."""
        return tuple(z for z in self.zeros if z.is_pole)

    @property
    def spurious(self) -> tuple[Pole, ...]:
        """Froissart doublets: poles with negligible residue or near-cancelled by a zero of ``P``."""
        return tuple(z for z in self.zeros if z.is_spurious)

    @property
    def removable(self) -> tuple[Pole, ...]:
        """Zeros of ``Q`` that cancel exactly with zeros of ``P`` (still bottom, no blow-up)."""
        return tuple(z for z in self.zeros if z.kind == REMOVABLE)

    @property
    def locations(self) -> tuple[float, ...]:
        """Float locations of the true poles."""
        return tuple(p.location for p in self.poles)

    def nearest(self, x0: float) -> Pole | None:
        """The true pole closest to ``x0`` (None when there is none)."""
        return min(self.poles, key=lambda p: abs(p.location - x0), default=None)

    def __str__(self) -> str:
        lo, hi = self.interval
        lines = [
            f"poles of P/Q in [{lo:g}, {hi:g}]: {len(self.poles)} true, {len(self.spurious)} spurious, "
            f"{len(self.removable)} removable (typical |P/Q| {self.scale:.3g}"
            f"{', checked against data' if self.data_checked else ''})"
        ]
        for z in self.zeros + self.validity_zeros:
            extra = ""
            if z.residue is not None:
                extra = f", residue {z.residue:.3g}, nearest zero of P at distance {z.zero_distance:.3g}"
            if not z.bottom:
                extra += ", no exact real zero of Q (not bottom)"
            lines.append(
                f"  x = {z.location:.17g}  {z.kind} (multiplicity {z.multiplicity}, order {z.order}{extra})"
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
        raise InvalidConfigError(
            f"interval must satisfy lo <= hi with finite ends, got {interval!r}"
        )
    return Fraction(lo), Fraction(hi), (lo, hi)


def _validity_zeros(poly: sp.Poly, lo: Fraction, hi: Fraction) -> list[Pole]:
    return [
        Pole((a, b), float((a + b) / 2), mult, mult, VALIDITY)
        for (a, b), mult in real_zeros(poly, lo, hi)
    ]


@dataclass
class _Group:
    """A cluster of zeros of ``Q`` (numerical, in ``t``) with the exact real zeros it holds."""

    cluster: RootCluster
    exact: list[tuple[tuple[Fraction, Fraction], int]]

    @property
    def size(self) -> int:
        return max(self.cluster.size, sum(m for _, m in self.exact))


def _groups(
    QF: ChebForm, exact: list[tuple[tuple[Fraction, Fraction], int]], radius: float
) -> list[_Group]:
    """Numerical clusters of ``Q``'s roots near ``[-1, 1]``, each exact real zero in its cluster."""
    found = clusters(QF.roots_t(), radius)
    groups = [_Group(c, []) for c in found]
    for iv, mult in exact:
        t = complex(QF.to_t(float((iv[0] + iv[1]) / 2)))
        best = min(groups, key=lambda g: abs(g.cluster.centre - t), default=None)
        if best is None or abs(best.cluster.centre - t) > radius + 1e-12:
            best = _Group(RootCluster((t,) * mult, t), [])
            groups.append(best)
        best.exact.append((iv, mult))
    return [
        g
        for g in groups
        if g.exact
        or (abs(g.cluster.centre.imag) <= radius and -1.0 <= g.cluster.centre.real <= 1.0)
    ]


def _classify(
    P: sp.Poly,
    Q: sp.Poly,
    lo: Fraction,
    hi: Fraction,
    *,
    spurious_tol: float,
    cluster_tol: float,
    scale: float | None,
    data: Any,
) -> tuple[list[Pole], float]:
    """The entries of the report for ``Q`` (see the module docstring) and the scale used."""
    exact = real_zeros(Q, lo, hi)
    if Q.degree() <= 0:
        return [], 1.0 if scale is None else scale
    PF, QF = ChebForm(P, lo, hi), ChebForm(Q, lo, hi)
    width = float(2 * QF.half)
    radius = 2 * cluster_tol
    S = typical_scale(PF, QF) if scale is None else scale
    gcd = Q.gcd(P)
    p_roots = PF.to_x(PF.roots_t()) if P.degree() > 0 else np.zeros(0)
    groups = _groups(QF, exact, radius)
    entries: list[tuple[_Group, Pole]] = []
    for g in groups:
        k = g.size
        at: Fraction
        if g.exact and sum(m for _, m in g.exact) == k:
            at = sum((((a + b) / 2) * m for (a, b), m in g.exact), Fraction(0)) / k
            location = float(at)
        else:
            location = float(QF.to_x(g.cluster.centre.real))
            at = Fraction(location)
        interval: tuple[Fraction, Fraction]
        if g.exact:
            interval = (min(iv[0] for iv, _ in g.exact), max(iv[1] for iv, _ in g.exact))
        else:
            interval = (at, at)
        cancelled = sum(zero_multiplicity(gcd, a, b) for (a, b), _ in g.exact)
        order = k - cancelled
        if order <= 0:
            entries.append(
                (g, Pole(interval, location, k, order, REMOVABLE, None, 0.0, bool(g.exact)))
            )
            continue
        residue = laurent_coefficient(PF, QF, at, order) if cancelled == 0 else math.nan
        zero_distance = float(np.min(np.abs(p_roots - location))) if p_roots.size else math.inf
        radius_of_influence = (
            (abs(residue) / S) ** (1.0 / order) if math.isfinite(residue) else math.inf
        )
        doublet = (
            radius_of_influence <= spurious_tol * width or zero_distance <= spurious_tol * width
        )
        kind = SPURIOUS if doublet and data is None else POLE
        entries.append(
            (g, Pole(interval, location, k, order, kind, residue, zero_distance, bool(g.exact)))
        )
    if data is not None:
        entries = _data_test(entries, PF, QF, data)
    out = [e for _, e in entries]
    out.sort(key=lambda z: z.location)
    return out, S


def _data_test(
    entries: list[tuple[_Group, Pole]], PF: ChebForm, QF: ChebForm, data: Any
) -> list[tuple[_Group, Pole]]:
    """Mark as spurious every pole the data explain as well without (remove, refit ``P``, compare)."""
    from dataclasses import replace

    from numpy.polynomial import chebyshev as C

    from .fitting._core import Problem
    from .fitting._data import as_array, lift
    from .fitting._select import DEFAULT_TOL
    from .fitting._spurious import spurious_clusters

    try:
        x, y = data
    except (TypeError, ValueError):
        raise InvalidConfigError("pole_report: data must be a pair (x, y) of samples") from None
    xa, ya = as_array(x, "x").reshape(-1), as_array(y, "y")
    if ya.shape != xa.shape:
        raise ShapeMismatchError(
            f"pole_report: data y must have the shape of x {list(xa.shape)}, got {list(ya.shape)}"
        )
    if not np.all(np.isfinite(xa)):
        raise InvalidConfigError("pole_report: data x must be finite")
    yn, yd = lift(ya)
    t = QF.to_t(xa)
    prob = Problem(
        C.chebvander(t, max(PF.coef.size - 1, 0)),
        C.chebvander(t, QF.coef.size - 1),
        yn[:, None],
        yd[:, None],
        np.ones((xa.size, 1)),
    )
    a = np.ldexp(PF.coef, PF.exponent - QF.exponent)[:, None]
    b = QF.coef[:, None]
    tested = [g.cluster for g, p in entries if p.kind == POLE]
    if not tested or not np.all(np.isfinite(a)):
        return entries
    _, spurious = spurious_clusters(prob, a, b, tol=DEFAULT_TOL, candidates=tested)
    ids = {id(c) for c in spurious}
    return [(g, replace(p, kind=SPURIOUS) if id(g.cluster) in ids else p) for g, p in entries]


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
    data: tuple[Any, Any] | None = None,
    spurious_tol: float = 1e-6,
    cluster_tol: float = 1e-5,
    scale: float | None = None,
) -> PoleReport:
    """Report of the real poles of ``P/Q`` in the closed ``interval``: true, spurious, removable.

    ``digits=None`` uses the exact binary value of every float coefficient;
    ``digits=k`` rounds them to ``k`` significant digits first (what a user
    reading the rounded ``to_sympy(digits=k)`` would compute). Zeros of ``Q``
    closer than ``cluster_tol * width`` form one pole. A pole is spurious when
    its influence radius ``(|residue| / scale) ** (1 / order)`` or its distance
    to the nearest zero of ``P`` is below ``spurious_tol * width`` (``scale``:
    default the median ``|P/Q|`` on the interval). With ``data=(x, y)``
    (targets may hold ``+-inf``/NaN) the data decide instead: a pole is
    spurious when removing it (divide its factor out of ``Q``, refit ``P``)
    fits the data as well (F-test on the relative error). Zeros of the validity factors of a template are in ``validity_zeros``.
    """
    digits = check_digits(digits)
    lo, hi, floats = _interval(interval)
    for name, value in (("spurious_tol", spurious_tol), ("cluster_tol", cluster_tol)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise InvalidConfigError(
                f"pole_report: {name} must be a number in [0, 1), got {value!r}"
            )
    if scale is not None and (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise InvalidConfigError(
            f"pole_report: scale must be None or a finite number > 0, got {scale!r}"
        )
    P, Q, V = _polys(model, digits)
    if Q.is_zero:
        raise InvalidConfigError("the polynomial is identically zero: every point is bottom")
    zeros, S = _classify(
        P,
        Q,
        lo,
        hi,
        spurious_tol=float(spurious_tol),
        cluster_tol=float(cluster_tol),
        scale=None if scale is None else float(scale),
        data=data,
    )
    vzeros = [z for v in V for z in _validity_zeros(v, lo, hi)]
    vzeros.sort(key=lambda z: z.interval[0])
    return PoleReport(floats, P, Q, tuple(zeros), tuple(vzeros), S, data is not None)
