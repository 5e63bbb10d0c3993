"""Zeros without a sign change: exact solutions of ``f = grad f = 0`` in a box.

If a polynomial ``f`` has a zero ``p`` inside a box and does not change sign
near ``p``, then ``p`` is a local extremum of ``f`` and ``grad f(p) = 0``:
``p`` solves the *critical system* ``f = df/dx_1 = ... = df/dx_k = 0``. For an
irreducible ``f`` that system has finitely many solutions in two variables
(often none). This module solves it exactly for small systems:

1. a Gröbner basis (sympy) tells whether the system has no solution at all
   (basis ``[1]``: every zero of ``f`` is then a sign change) or finitely many;
2. a lex basis in *shape position* ``{x_i - g_i(T), e(T)}`` for a linear form
   ``T`` (a variable or ``x + c*y``) turns every solution into a real root of the
   univariate ``e`` plus polynomial coordinates ``x_i = g_i(T)``;
3. exact real root isolation of ``e`` and exact range enclosures of the
   ``g_i`` on the isolating intervals place each real solution inside or
   outside the box (refining until decided); a coordinate that is rational at
   an irrational root is recognised exactly (``g_i mod p`` is constant for the
   irreducible factor ``p`` of ``e``).

A solution inside the box is a zero of ``f`` there: an exact rational point,
or a small box certified to hold an irrational one.
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from zpml_symbolic.domain.bounds import range_enclosure
from zpml_symbolic.domain.box import Interval
from zpml_symbolic.domain.polys import Poly
from zpml_symbolic.domain.report import Witness
from zpml_symbolic.domain.univariate import real_root_intervals
from zpml_symbolic.flatten.budget import BudgetMeter

#: Largest systems handed to the Gröbner basis (sympy cannot be interrupted): variables -> degree.
MAX_DEGREE = {2: 8, 3: 4}
MAX_TERMS = 40
#: Linear forms tried for shape position after the variables themselves.
SHAPE_MULTIPLIERS = (2, -3, 5, 7)
REFINE_STEPS = 12


def _frac(v: object) -> Fraction:
    r = sp.Rational(v)
    return Fraction(int(r.p), int(r.q))


def _shape(
    basis: list[sp.Expr], syms: list[sp.Symbol], t: sp.Symbol
) -> tuple[dict[sp.Symbol, sp.Expr], sp.Expr] | None:
    """``({x_i: g_i(t)}, e(t))`` if the lex basis is ``{x_i - g_i(t)} + {e(t)}``, else None."""
    coords: dict[sp.Symbol, sp.Expr] = {}
    elim = None
    for g in basis:
        free = g.free_symbols
        if free <= {t}:
            if elim is not None:
                return None
            elim = g
            continue
        xs = [s for s in syms if s in free]
        if len(xs) != 1:
            return None
        s = xs[0]
        p = sp.Poly(g, s)
        if p.degree() != 1 or not p.LC().free_symbols <= set() or s in coords:
            return None
        rest = -(g - p.LC() * s) / p.LC()
        if not sp.expand(rest).free_symbols <= {t}:
            return None
        coords[s] = sp.expand(rest)
    if elim is None or set(coords) != set(syms):
        return None
    return coords, elim


def tangential_zero(
    poly: Poly, box: tuple[Interval, ...], meter: BudgetMeter
) -> tuple[str, Witness | None, str]:
    """Look for solutions of ``f = grad f = 0`` in a closed box.

    Returns ``(status, witness, note)``: status ``"none"`` (no solution in the box: every
    zero of ``f`` in the box interior is a sign change), ``"found"`` (the witness is a zero of
    ``f`` in the box), or ``"undecided"`` (system too large, infinitely many solutions, or not
    solved; the note says which).
    """
    k = len(poly.names)
    if k not in MAX_DEGREE or poly.total_degree() > MAX_DEGREE[k] or poly.num_terms() > MAX_TERMS:
        return "undecided", None, "critical-point system too large to solve exactly"
    meter.check_time()
    syms = [sp.Symbol(n) for n in poly.names]
    eqs = [_sympy_poly(p, syms) for p in [poly, *(poly.derivative(n) for n in poly.names)]]
    basis = sp.groebner(eqs, *syms, order="grevlex", domain="QQ")
    # charged by the size of the system and of its basis (deterministic, so the same budget
    # gives the same report on every run and machine; wall-clock time is max_seconds' job)
    meter.work += (poly.num_terms() + sum(len(g.terms()) for g in basis.polys)) * (k + 1) ** 2
    if list(basis.exprs) == [1]:
        return "none", None, "no critical zeros (f and its gradient have no common zero)"
    if not basis.is_zero_dimensional:
        return "undecided", None, "infinitely many critical zeros"
    t = sp.Dummy("t")
    forms: list[sp.Expr] = list(reversed(syms)) + [
        syms[0] + c * syms[-1] for c in SHAPE_MULTIPLIERS
    ]
    shape = None
    for form in forms:
        meter.check_time()
        lex = sp.groebner(list(basis.exprs) + [t - form], *syms, t, order="lex", domain="QQ")
        shape = _shape(list(lex.exprs), syms, t)
        if shape is not None:
            break
    if shape is None:
        return "undecided", None, "critical zeros not in shape position"
    coords, elim = shape
    trange = _form_range(form, syms, box)
    undecided = False
    for p_factor, _m in sp.factor_list(sp.Poly(elim, t, domain="QQ"))[1]:
        tt = sp.Symbol("_t")
        p = Poly.from_sympy(p_factor.as_expr().subs(t, tt), ("_t",))
        reduced = {
            s: Poly.from_sympy(sp.rem(sp.Poly(g, t), p_factor).as_expr().subs(t, tt), ("_t",))
            for s, g in coords.items()
        }
        width0 = trange[1] - trange[0]
        for a, b in real_root_intervals(
            p, trange[0], trange[1], width0 / 2**10 if width0 else Fraction(1)
        ):
            verdict, wit = _place(p, reduced, syms, (a, b), box, poly, meter)
            if verdict == "inside":
                return "found", wit, "zero of f with grad f = 0 (no sign change)"
            undecided |= verdict == "undecided"
    if undecided:
        return "undecided", None, "a critical zero could not be placed inside or outside the box"
    return "none", None, "no critical zero in the box"


def _sympy_poly(p: Poly, syms: list[sp.Symbol]) -> sp.Poly:
    terms = {m: sp.Rational(c.numerator, c.denominator) for m, c in p.terms().items()}
    return sp.Poly.from_dict(terms or {(0,) * len(syms): 0}, *syms, domain="QQ")


def _form_range(form: sp.Expr, syms: list[sp.Symbol], box: tuple[Interval, ...]) -> Interval:
    lo = hi = Fraction(0)
    p = sp.Poly(form, *syms)
    for (exps), c in p.terms():
        i = exps.index(1)
        c = _frac(c)
        a, b = c * box[i][0], c * box[i][1]
        lo += min(a, b)
        hi += max(a, b)
    return lo, hi


def _place(
    p: Poly,
    coords: dict[sp.Symbol, Poly],
    syms: list[sp.Symbol],
    interval: Interval,
    box: tuple[Interval, ...],
    f: Poly,
    meter: BudgetMeter,
) -> tuple[str, Witness | None]:
    """Decide whether the solution at the root of ``p`` in ``interval`` lies in the box."""
    a, b = interval
    for _ in range(REFINE_STEPS):
        meter.check_time()
        enclosures = []
        exact = True
        for s in syms:
            g = coords[s]
            if g.is_constant():
                v = g.constant_value()
                enclosures.append((v, v))
            elif a == b:
                v = g((a,))
                enclosures.append((v, v))
            else:
                exact = False
                enclosures.append(range_enclosure(g, ((a, b),)))
        outside = any(
            hi < lo_b or lo > hi_b for (lo, hi), (lo_b, hi_b) in zip(enclosures, box, strict=True)
        )
        if outside:
            return "outside", None
        inside = all(
            lo_b <= lo and hi <= hi_b
            for (lo, hi), (lo_b, hi_b) in zip(enclosures, box, strict=True)
        )
        names = f.names
        if inside and exact:
            point = {n: lo for n, (lo, _hi) in zip(names, enclosures, strict=True)}
            if f(tuple(point.values())) != 0:  # pragma: no cover - the algebra says it is a zero
                return "undecided", None
            return "inside", Witness(
                kind="zero", point=point, note="exact solution of f = grad f = 0"
            )
        if inside:
            return "inside", Witness(
                kind="isolating_box",
                box={n: iv for n, iv in zip(names, enclosures, strict=True)},
                note=f"holds a real solution of f = grad f = 0 (root of {p.to_sympy()} in [{a}, {b}])".replace(
                    "_t", "t"
                ),
            )
        x = sp.Symbol("_t")
        sp_p = sp.Poly(p.to_sympy(), x)
        w = (b - a) / 16
        a2, b2 = sp_p.refine_root(
            sp.Rational(a.numerator, a.denominator),
            sp.Rational(b.numerator, b.denominator),
            eps=sp.Rational(w.numerator, w.denominator),
        )
        a, b = _frac(a2), _frac(b2)
    return "undecided", None


__all__ = ["tangential_zero"]
