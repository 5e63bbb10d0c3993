"""Complete decision for one irreducible polynomial in one variable on an interval.

An irreducible polynomial over Q of degree >= 2 has only simple, irrational
roots, so it changes sign at each real root; exact real root isolation
(sympy's Vincent-Akritas-Strzebonski isolation over the rationals) decides
whether a root lies in the closed interval, and refines it to an isolating
interval as small as asked. Degree 1 has the exact rational root.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from zpml_symbolic.domain.box import Interval
from zpml_symbolic.domain.outcome import Outcome, Run
from zpml_symbolic.domain.polys import Poly
from zpml_symbolic.domain.report import Witness
from zpml_symbolic.domain.search import Subdivision

#: Degrees above this are left to subdivision (an irreducible polynomial's roots are simple, so
#: subdivision finds each as a sign change); exact isolation slows down fast with the degree.
MAX_ISOLATION_DEGREE = 64


def _rat(v: Fraction) -> sp.Rational:
    return sp.Rational(v.numerator, v.denominator)


def _frac(v: object) -> Fraction:
    r = sp.Rational(v)
    return Fraction(int(r.p), int(r.q))


def real_root_intervals(poly: Poly, lo: Fraction, hi: Fraction, eps: Fraction) -> list[Interval]:
    """Disjoint exact intervals (width <= eps, inside ``[lo, hi]``) each holding one real root of the
    squarefree univariate ``poly`` in ``[lo, hi]``; a rational root gives ``(r, r)``."""
    x = sp.Symbol(poly.names[0])
    p = sp.Poly(poly.to_sympy(), x, domain="QQ")
    out = []
    for (a, b), _mult in p.intervals(inf=_rat(lo), sup=_rat(hi)):
        if a != b:
            a, b = p.refine_root(a, b, eps=_rat(eps))
        fa, fb = max(_frac(a), lo), min(_frac(b), hi)
        out.append((fa, fb))
    return out


def nonzero_bound(
    poly: Poly, box: tuple[Interval, ...], run: Run
) -> tuple[Fraction | None, Fraction | None, int]:
    """Certified ``(lower_bound, min_found, boxes)`` of ``|poly|`` on a box where it has no zero."""
    sub = Subdivision(poly, box, run.meter)
    sub.run(limit=run.max_work, until_decided=True)
    if sub.nonzero:
        sub.tighten(ratio=run.tightness, limit=run.max_work)
    return sub.lower_bound(), sub.min_seen, sub.boxes


def decide_univariate(
    poly: Poly, interval: Interval, run: Run, *, need_bound: bool, need_cover: bool
) -> Outcome:
    """Decide an irreducible ``poly`` in one variable on a nondegenerate closed interval."""
    name = poly.names[0]
    lo, hi = interval
    degree = poly.total_degree()
    run.meter.work += (degree + 1) ** 2
    run.meter.check_time()
    eps = run.resolution * (hi - lo)
    if degree == 1:
        terms = poly.terms()
        c1, c0 = terms.get((1,), Fraction(0)), terms.get((0,), Fraction(0))
        root = -c0 / c1
        roots = [(root, root)] if lo <= root <= hi else []
    else:
        roots = real_root_intervals(poly, lo, hi, eps)
    if not roots:
        out = Outcome("nonzero", method="exact real root isolation: no root in the interval")
        if need_bound:
            out.lower_bound, out.min_found, out.boxes = nonzero_bound(poly, (interval,), run)
            if out.lower_bound is None:
                out.reason = "lower bound not reached within the budget"
        return out
    a, b = roots[0]
    if a == b:
        witness = Witness(kind="zero", point={name: a}, note="exact rational root")
    else:
        va, vb = poly((a,)), poly((b,))
        if va * vb >= 0:  # cannot happen for an isolating interval of a simple root
            return Outcome(
                "unknown",
                reason="root isolation gave no sign change",
                cover=[{name: r} for r in roots],
            )
        neg, pos = ((a, va), (b, vb)) if va < 0 else ((b, vb), (a, va))
        witness = Witness(
            kind="sign_change",
            negative={name: neg[0]},
            positive={name: pos[0]},
            values=(neg[1], pos[1]),
            box={name: (a, b)},
            note="isolating interval of an irrational root",
        )
    cover = [{name: r} for r in roots] if need_cover else []
    return Outcome(
        "vanishes",
        witness=witness,
        cover=cover,
        method=f"exact real root isolation: {len(roots)} root(s) in the interval",
    )


__all__ = ["decide_univariate", "nonzero_bound", "real_root_intervals"]
