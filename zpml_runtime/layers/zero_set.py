"""Zero set of a multivariate rational layer's denominator: exact factors, and slices.

``zero_set_report(layer, names)`` writes each ``Q`` of a
:class:`MultivariateRationalLayer` as an exact polynomial in the named
features (each float coefficient as its exact binary rational, or rounded to
``digits``), factors it over the rationals and lists the variables it depends
on: a fitted 2-link arm head reports ``Q = c * s2``, i.e. the singular set
``{s2 = 0}``. ``fixed={...}`` fixes all features but one and reports the exact
real zeros along the free one (a univariate :class:`PoleReport` per output).
This is a description of the polynomials, not a certified domain analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from ..errors import InvalidConfigError, UnsupportedInputError
from ._exact import check_digits, exact_value
from .multivariate import MultivariateRationalLayer, monomial_exponents
from .poles import PoleReport, _classify, _interval

__all__ = ["ZeroSetReport", "zero_set_report"]


@dataclass(frozen=True)
class ZeroSetReport:
    """Exact denominators of a multivariate layer and their factors.

    * ``variables``: the feature symbols;
    * ``numerators``: ``P_j`` (sympy expressions); ``denominators``: one ``Q``
      (shared) or one per output;
    * ``factors``: per ``Q``, its non-constant irreducible factors over QQ with
      multiplicities (``Q = 0`` exactly where one of them is 0);
    * ``depends_on``: per ``Q``, the variables it involves;
    * ``cancelled``: per ``Q``, the factors it shares with every numerator it
      divides (removable: ``P`` vanishes there too);
    * ``slices``: with ``fixed``, one :class:`PoleReport` per output along the free variable;
    * ``domain``: with ``box``, one certified
      :class:`~zpml_symbolic.domain.DomainReport` per ``Q`` over that box (does ``Q``
      vanish there, with a witness, or how far from 0 is it, proved).
    """

    variables: tuple[sp.Symbol, ...]
    numerators: tuple[sp.Expr, ...]
    denominators: tuple[sp.Expr, ...]
    factors: tuple[tuple[tuple[sp.Expr, int], ...], ...]
    depends_on: tuple[tuple[sp.Symbol, ...], ...]
    cancelled: tuple[tuple[sp.Expr, ...], ...]
    slices: tuple[PoleReport, ...] = ()
    domain: tuple[Any, ...] = ()

    def __str__(self) -> str:
        lines = []
        for i, fac in enumerate(self.factors):
            label = "Q" if len(self.factors) == 1 else f"Q_{i}"
            if not fac:
                lines.append(f"{label} is a nonzero constant: no singular set")
                continue
            conds = " or ".join(f"{_readable(f)} = 0" for f, _ in fac)
            lines.append(
                f"{label} = 0  <=>  {conds}   (depends on {', '.join(map(str, self.depends_on[i]))})"
            )
            if self.cancelled[i]:
                lines.append(
                    f"  shared with the numerators (removable): {', '.join(map(str, self.cancelled[i]))}"
                )
        for j, rep in enumerate(self.slices):
            lines.append(f"slice, output {j}: " + str(rep).replace("\n", "\n  "))
        for i, dom in enumerate(self.domain):
            label = "Q" if len(self.domain) == 1 else f"Q_{i}"
            lines.append(f"{label} on the box: {dom.summary()}")
        return "\n".join(lines)


def _readable(f: sp.Expr) -> str:
    """A factor divided by its leading coefficient, with 8 significant digits (exact factors stay exact)."""
    poly = sp.Poly(f, *sorted(f.free_symbols, key=lambda s: s.name))
    monic = sp.expand(f / poly.LC())
    if all(sp.Rational(c).q < 10**6 for c in sp.Poly(monic, *poly.gens).coeffs()):
        return str(monic)
    return str(sp.N(monic, 8))


def _names(names: Any, d: int) -> tuple[sp.Symbol, ...]:
    if names is None:
        return tuple(sp.Symbol(f"h{i}") for i in range(d))
    names = list(names)
    if (
        len(names) != d
        or not all(isinstance(n, str) and n.isidentifier() for n in names)
        or len(set(names)) != d
    ):
        raise InvalidConfigError(
            f"zero_set_report: names must be {d} distinct identifiers (one per feature), got {names!r}"
        )
    return tuple(sp.Symbol(n) for n in names)


def _polys(
    layer: MultivariateRationalLayer, syms: tuple[sp.Symbol, ...], digits: int | None
) -> list[sp.Expr]:
    coef = layer.monomial_coefficients().detach().cpu().double()
    degree = max(layer.numerator_degree, layer.denominator_degree)
    exps = [
        e
        for e in monomial_exponents(layer.in_features, max(degree, 2))
        if sum(1 for i in e if i) <= degree
    ]
    aug = (sp.Integer(1),) + syms
    monos = [sp.Mul(*(aug[i] for i in e)) for e in exps]
    out = []
    for col in range(coef.shape[1]):
        terms = []
        for r, mono in enumerate(monos):
            v = float(coef[r, col])
            if v != 0:
                f = exact_value(v, digits)
                terms.append(sp.Rational(f.numerator, f.denominator) * mono)
        out.append(sp.Add(*terms))
    return out


def zero_set_report(
    layer: MultivariateRationalLayer,
    names: list[str] | tuple[str, ...] | None = None,
    *,
    fixed: dict[str, float] | None = None,
    interval: tuple[float, float] | None = None,
    digits: int | None = None,
    box: Any = None,
) -> ZeroSetReport:
    """Exact denominators of ``layer``, their factors over QQ and the variables they involve.

    ``names``: one identifier per input feature (default ``h0, h1, ...``).
    ``fixed`` (with ``interval``): values for all features but one; the report
    then holds, per output, the :class:`PoleReport` of ``P_j/Q`` along the free
    feature on ``interval``. ``digits`` rounds the coefficients first.
    ``box``: ``{name: (lo, hi)}`` or ``"h0=0:1,h1=-2:2"`` over the features; each
    ``Q`` is then analysed on it by :func:`zpml_symbolic.domain_report` (exact
    coefficients, certified verdicts; a degenerate interval fixes a feature, so a
    slice is a box too). Features a ``Q`` does not involve are left out of its box.
    """
    if not isinstance(layer, MultivariateRationalLayer):
        raise UnsupportedInputError(
            f"zero_set_report expects a MultivariateRationalLayer, got {type(layer).__name__}"
        )
    digits = check_digits(digits)
    syms = _names(names, layer.in_features)
    polys = _polys(layer, syms, digits)
    k = layer.out_features
    P, Qs = polys[:k], polys[k:]
    factors, depends, cancelled = [], [], []
    for i, Q in enumerate(Qs):
        if Q == 0:
            raise InvalidConfigError(
                f"zero_set_report: denominator {i} is identically zero (every point is bottom)"
            )
        _, fl = sp.factor_list(sp.expand(Q), *syms)
        fac = tuple((f, int(m)) for f, m in fl if f.free_symbols)
        factors.append(fac)
        depends.append(tuple(s for s in syms if s in Q.free_symbols))
        users = P if len(Qs) == 1 else [P[i]]
        shared = tuple(f for f, _ in fac if all(sp.rem(Pj, f, *syms) == 0 for Pj in users))
        cancelled.append(shared)
    slices: tuple[PoleReport, ...] = ()
    if fixed is not None:
        slices = _slices(P, Qs, syms, fixed, interval)
    domain: tuple[Any, ...] = ()
    if box is not None:
        domain = _domain(Qs, syms, box)
    return ZeroSetReport(
        syms, tuple(P), tuple(Qs), tuple(factors), tuple(depends), tuple(cancelled), slices, domain
    )


def _domain(Qs: list[sp.Expr], syms: tuple[sp.Symbol, ...], box: Any) -> tuple[Any, ...]:
    from zpml_symbolic.domain import domain_report as certify
    from zpml_symbolic.domain import normalize_box

    names = {s.name for s in syms}
    full = normalize_box(box)
    unknown = sorted(str(k) for k in full if str(k) not in names)
    if unknown:
        raise InvalidConfigError(
            f"zero_set_report: box names {', '.join(unknown)}, which are not features of the layer "
            f"(features: {', '.join(sorted(names))})"
        )
    out = []
    for Q in Qs:
        used = {s.name for s in Q.free_symbols}
        sub = {k: v for k, v in full.items() if str(k) in used}
        missing = sorted(used - {str(k) for k in sub})
        if missing:
            raise InvalidConfigError(
                f"zero_set_report: box has no interval for {', '.join(missing)}"
            )
        out.append(certify(sp.Integer(1) / Q, sub))
    return tuple(out)


def _slices(
    P: list[sp.Expr], Qs: list[sp.Expr], syms: tuple[sp.Symbol, ...], fixed: Any, interval: Any
) -> tuple[PoleReport, ...]:
    if not isinstance(fixed, dict):
        raise InvalidConfigError(
            f"zero_set_report: fixed must be a dict name -> value, got {type(fixed).__name__}"
        )
    by_name = {s.name: s for s in syms}
    unknown = [n for n in fixed if n not in by_name]
    if unknown:
        raise InvalidConfigError(
            f"zero_set_report: fixed names unknown feature {unknown[0]!r}; features are {list(by_name)}"
        )
    free = [s for s in syms if s.name not in fixed]
    if len(free) != 1:
        raise InvalidConfigError(
            f"zero_set_report: fixed must leave exactly one feature free, leaves {[s.name for s in free]}"
        )
    if interval is None:
        raise InvalidConfigError(
            "zero_set_report: a slice (fixed=...) needs interval=(lo, hi) for the free feature"
        )
    subs = {}
    for name, value in fixed.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidConfigError(
                f"zero_set_report: fixed value of {name!r} must be a finite number, got {value!r}"
            )
        f = Fraction(value)
        subs[by_name[name]] = sp.Rational(f.numerator, f.denominator)
    lo, hi, floats = _interval(interval)
    x = free[0]
    out = []
    for j, Pj in enumerate(P):
        Q = Qs[0] if len(Qs) == 1 else Qs[j]
        Pp = sp.Poly(sp.expand(Pj.xreplace(subs)), x, domain=sp.QQ)
        Qp = sp.Poly(sp.expand(Q.xreplace(subs)), x, domain=sp.QQ)
        if Qp.is_zero:
            raise InvalidConfigError(
                f"zero_set_report: Q vanishes identically on this slice (output {j})"
            )
        zeros, S = _classify(
            Pp, Qp, lo, hi, spurious_tol=1e-6, cluster_tol=1e-5, scale=None, data=None
        )
        out.append(PoleReport(floats, Pp, Qp, tuple(zeros), (), S, False))
    return tuple(out)
