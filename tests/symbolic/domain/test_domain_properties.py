"""Soundness of ``domain_report`` against planted zeros, with independent exact rechecks.

Random polynomials get a planted rational zero (inside the box, on a face, at a
corner); products, powers and sums of squares (zeros without a sign change)
too. Every answer is rechecked with plain :class:`~fractions.Fraction`
arithmetic on the reported exact terms (no FLINT, no Bernstein code):

- a factor that vanishes at the planted point is never ``"nonzero"``, and the
  planted point lies in its zero-set cover when one is reported;
- ``"nonzero"`` answers hold on a dense exact grid (corners, faces and interior):
  ``|factor| / scale >= lower_bound > 0`` everywhere on it;
- witnesses are exact: a zero is a zero of the factor, a sign change has exact
  opposite signs, every point and box lies in the closed box.

:func:`check_report` is shared with the other domain tests.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_symbolic.domain import DomainReport

NAMES = ("x", "y", "z")
SYMS = {n: sp.Symbol(n) for n in NAMES}
#: small budget: an undecided case costs a fraction of a second here, never the default seconds
TEST_BUDGET = zs.Budget(max_work=400_000, max_seconds=20.0)
GRID = 9

CASES: dict[str, int] = {}


def _count(key: str) -> None:
    CASES[key] = CASES.get(key, 0) + 1


# ------------------------------------------------------------------ reference
def factor_value(verdict: object, point: dict[str, Fraction]) -> Fraction:
    """The canonical factor at a point, from its exact terms (plain Fractions)."""
    total = Fraction(0)
    for monomial, coeff in verdict.factor_terms:  # type: ignore[attr-defined]
        term = Fraction(coeff)
        for name, e in zip(verdict.generators, monomial, strict=True):  # type: ignore[attr-defined]
            term *= point[name] ** e
        total += term
    return total


def _in_box(point: dict[str, Fraction], box: dict[str, tuple[Fraction, Fraction]]) -> bool:
    return all(lo <= point[n] <= hi for n, (lo, hi) in box.items())


def _grid(box: dict[str, tuple[Fraction, Fraction]], n: int = GRID) -> list[dict[str, Fraction]]:
    axes = [
        [lo + (hi - lo) * Fraction(i, n - 1) for i in range(n)] if lo < hi else [lo]
        for lo, hi in box.values()
    ]
    return [dict(zip(box, p, strict=True)) for p in itertools.product(*axes)]


def check_report(report: DomainReport, *, grid: int = GRID) -> None:
    """Recheck every verdict of a report exactly (see the module docstring)."""
    full = {**report.box, **report.parameters}
    points = _grid(full, grid)
    for f in report.factors:
        if f.verdict == "nonzero":
            _count("nonzero")
            assert f.lower_bound is not None and f.lower_bound > 0, f
            assert f.min_found is None or f.min_found >= f.lower_bound
            for p in points:
                assert abs(factor_value(f, p)) / f.scale >= f.lower_bound, (f.factor, p)
        elif f.verdict == "vanishes":
            _count("vanishes")
            w = f.witness
            assert w is not None
            if w.kind in ("zero", "identically_zero"):
                assert _in_box(w.point, full) and factor_value(f, w.point) == 0, (f.factor, w)
            elif w.kind == "sign_change":
                assert _in_box(w.negative, full) and _in_box(w.positive, full)
                assert factor_value(f, w.negative) < 0 < factor_value(f, w.positive), (f.factor, w)
                assert w.values == (factor_value(f, w.negative), factor_value(f, w.positive))
            else:
                assert w.kind == "isolating_box" and w.box is not None
                assert all(full[n][0] <= lo <= hi <= full[n][1] for n, (lo, hi) in w.box.items())
        else:
            _count("unknown")
            assert f.verdict == "unknown" and f.cover, f
        for b in f.cover:
            assert all(full[n][0] <= lo <= hi <= full[n][1] for n, (lo, hi) in b.items())


def assert_sound_at(report: DomainReport, point: dict[str, Fraction]) -> None:
    """Every factor vanishing at ``point`` is reported as vanishing or unknown, never nonzero,
    and ``point`` lies in its cover when a cover was computed."""
    assert not report.defined_everywhere
    hit = False
    for f in report.factors:
        if factor_value(f, point) != 0:
            continue
        hit = True
        assert f.verdict != "nonzero", (f.factor, point, report.box)
        if f.cover and f.cover_complete:
            inside = [b for b in f.cover if all(lo <= point[n] <= hi for n, (lo, hi) in b.items())]
            assert inside, (f.factor, point)
        _count(f"planted:{f.verdict}")
    assert hit


# ----------------------------------------------------------------- strategies
@st.composite
def boxes(draw: st.DrawFn, k: int) -> dict[str, tuple[Fraction, Fraction]]:
    out = {}
    for n in NAMES[:k]:
        lo = Fraction(draw(st.integers(-6, 6)), draw(st.integers(1, 4)))
        w = Fraction(draw(st.integers(1, 8)), draw(st.integers(1, 4)))
        out[n] = (lo, lo + w)
    return out


@st.composite
def points_in(
    draw: st.DrawFn, box: dict[str, tuple[Fraction, Fraction]], where: str
) -> dict[str, Fraction]:
    p = {}
    for n, (lo, hi) in box.items():
        q = draw(st.sampled_from([2, 3, 5, 7, 16, 97]))
        p[n] = lo + (hi - lo) * Fraction(draw(st.integers(1, q - 1)), q)
    names = list(box)
    if where == "face":
        n = draw(st.sampled_from(names))
        p[n] = box[n][draw(st.integers(0, 1))]
    elif where == "corner":
        for n in names:
            p[n] = box[n][draw(st.integers(0, 1))]
    return p


@st.composite
def polynomials(draw: st.DrawFn, k: int, max_degree: int = 3) -> sp.Expr:
    monomials = [
        m for m in itertools.product(range(max_degree + 1), repeat=k) if 0 < sum(m) <= max_degree
    ]
    chosen = draw(st.lists(st.sampled_from(monomials), min_size=1, max_size=5, unique=True))
    expr = sp.Integer(draw(st.integers(-4, 4)))
    for m in chosen:
        c = draw(st.integers(-4, 4).filter(bool))
        expr += c * sp.Mul(*[SYMS[n] ** e for n, e in zip(NAMES, m, strict=False)])
    return expr


def _value(expr: sp.Expr, point: dict[str, Fraction]) -> sp.Rational:
    return expr.subs({SYMS[n]: sp.Rational(v.numerator, v.denominator) for n, v in point.items()})


def _report(denominator: sp.Expr, box: dict[str, tuple[Fraction, Fraction]]) -> DomainReport:
    used = {s.name for s in denominator.free_symbols}
    assume(used)
    return zs.domain_report(
        1 / denominator, {n: iv for n, iv in box.items() if n in used}, budget=TEST_BUDGET
    )


def _restrict(point: dict[str, Fraction], report: DomainReport) -> dict[str, Fraction]:
    return {n: point[n] for n in report.box}


PROFILE = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ---------------------------------------------------------------------- tests
@PROFILE
@given(data=st.data(), k=st.integers(1, 3), where=st.sampled_from(["inside", "face", "corner"]))
def test_planted_zero_is_never_called_nonzero(data: st.DataObject, k: int, where: str) -> None:
    box = data.draw(boxes(k))
    p = data.draw(points_in(box, where))
    g = data.draw(polynomials(k))
    f = sp.expand(g - _value(g, p))
    assume(f != 0 and f.free_symbols)
    report = _report(f, box)
    check_report(report)
    assert_sound_at(report, _restrict(p, report))


@PROFILE
@given(data=st.data(), k=st.integers(2, 3), where=st.sampled_from(["inside", "face", "corner"]))
def test_sum_of_squares_zero_without_sign_change(data: st.DataObject, k: int, where: str) -> None:
    """``(g - g(p))**2 + (h - h(p))**2`` touches zero at ``p`` without changing sign."""
    box = data.draw(boxes(k))
    p = data.draw(points_in(box, where))
    g, h = data.draw(polynomials(k, 2)), data.draw(polynomials(k, 2))
    f = sp.expand((g - _value(g, p)) ** 2 + (h - _value(h, p)) ** 2)
    assume(f != 0 and f.free_symbols)
    report = _report(f, box)
    check_report(report)
    assert_sound_at(report, _restrict(p, report))


@PROFILE
@given(
    data=st.data(),
    k=st.integers(1, 3),
    where=st.sampled_from(["inside", "face", "corner"]),
    power=st.integers(1, 4),
)
def test_products_and_powers(data: st.DataObject, k: int, where: str, power: int) -> None:
    """``(g - g(p))**power * h``: high multiplicity zeros, reducible denominators."""
    box = data.draw(boxes(k))
    p = data.draw(points_in(box, where))
    g, h = data.draw(polynomials(k, 2)), data.draw(polynomials(k, 2))
    base = sp.expand(g - _value(g, p))
    assume(base != 0 and base.free_symbols and h != 0)
    report = _report(base**power * h, box)
    check_report(report)
    assert_sound_at(report, _restrict(p, report))


@PROFILE
@given(data=st.data(), k=st.integers(1, 3))
def test_random_factors_recheck_on_dense_grids(data: st.DataObject, k: int) -> None:
    """No planted zero: every verdict is rechecked, ``nonzero`` on a dense exact grid."""
    box = data.draw(boxes(k))
    g = data.draw(polynomials(k))
    shift = Fraction(data.draw(st.integers(-20, 20)), data.draw(st.integers(1, 9)))
    f = sp.expand(g + sp.Rational(shift.numerator, shift.denominator))
    assume(f != 0 and f.free_symbols)
    check_report(_report(f, box), grid=13)


@PROFILE
@given(data=st.data())
def test_positive_definite_with_tiny_margin(data: st.DataObject) -> None:
    """``g**2 + h**2 + eps`` is nonzero; the certified bound is at most the true minimum."""
    box = data.draw(boxes(2))
    p = data.draw(points_in(box, "inside"))
    g, h = data.draw(polynomials(2, 1)), data.draw(polynomials(2, 1))
    eps = Fraction(1, 10 ** data.draw(st.integers(1, 12)))
    f = sp.expand(
        (g - _value(g, p)) ** 2
        + (h - _value(h, p)) ** 2
        + sp.Rational(eps.numerator, eps.denominator)
    )
    report = _report(f, box)
    check_report(report)
    for v in report.factors:
        if v.verdict == "nonzero" and factor_value(v, _restrict(p, report)) != 0:
            # the minimum of the product over the box is <= its value at p
            assert v.lower_bound <= abs(factor_value(v, _restrict(p, report))) / v.scale


def test_case_counts_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    """Print how many verdicts the property tests rechecked (run after them in this module)."""
    with capsys.disabled():
        print(f"\ndomain property cases: {dict(sorted(CASES.items()))}")
