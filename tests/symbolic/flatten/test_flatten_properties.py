"""docs/semantics.md §2 invariant against the independent reference evaluator,
at random points and at points chosen on the divisors' zero sets."""

from __future__ import annotations

import random
from fractions import Fraction

import sympy as sp
from hypothesis import given, note, settings
from hypothesis import strategies as st
from sym_strategies import BOT, SYMBOLS, expressions, random_points, ref_eval, singular_points

import zpml_symbolic as zs
from zpml_symbolic.ir import verify


def _check_point(fru: zs.FlattenedFRU, expr: sp.Expr, env: dict) -> bool:
    ref = ref_eval(expr, env)
    values = {s: env[s] for s in fru.variables}
    got = fru.evaluate(values)
    note(f"point {env}: reference {ref}, flattened {got}")
    # The invariant, checked on the public sympy polynomials (not the ring code).
    sub = {s: sp.Rational(env[s].numerator, env[s].denominator) for s in fru.variables}
    q = fru.denominator.subs(sub)
    vs = [v.subs(sub) for v in fru.validity_factors]
    predicted_bottom = q == 0 or any(v == 0 for v in vs)
    if ref is BOT:
        assert got is zs.BOTTOM
        assert predicted_bottom
        return True
    assert got is not zs.BOTTOM and not predicted_bottom
    assert Fraction(int(got.p), int(got.q)) == ref
    assert fru.numerator.subs(sub) / q == sp.Rational(ref.numerator, ref.denominator)
    return False


@given(expressions, st.randoms(use_true_random=False))
def test_invariant_random_and_singular_points(expr: sp.Expr, rnd: random.Random) -> None:
    fru = zs.flatten(expr, variables=SYMBOLS)
    verify(fru.root)
    rng = random.Random(rnd.random())
    for env in random_points(rng) + singular_points(expr, rng):
        _check_point(fru, expr, env)


@given(expressions)
def test_canonical_form(expr: sp.Expr) -> None:
    fru = zs.flatten(expr, variables=SYMBOLS)
    P = sp.Poly(fru.numerator, *SYMBOLS)
    Q = sp.Poly(fru.denominator, *SYMBOLS)
    assert not Q.is_zero
    # coprime
    assert sp.gcd(P, Q).total_degree() == 0
    # integer-primitive content, positive leading coefficient (lex)
    coeffs = Q.coeffs()
    assert all(c.is_Integer for c in coeffs)
    assert sp.igcd(*coeffs) == 1 if len(coeffs) > 1 else abs(coeffs[0]) == 1
    assert Q.LC() > 0
    # every validity factor is canonical and not a factor of Q
    for v in fru.validity_factors:
        V = sp.Poly(v, *SYMBOLS)
        if V.is_zero:
            continue
        assert V.LC() > 0 and all(c.is_Integer for c in V.coeffs())
        assert not sp.div(Q, V)[1].is_zero


@given(expressions)
def test_round_trip_through_sympy(expr: sp.Expr) -> None:
    front = zs.from_sympy(expr)
    assert zs.from_sympy(zs.to_sympy(front.root)).root is front.root


@settings(max_examples=25)
@given(expressions, st.randoms(use_true_random=False))
def test_singular_points_are_really_hit(expr: sp.Expr, rnd: random.Random) -> None:
    """Guard against a vacuous test: every point on a divisor's zero set is a bottom.

    A root of the divisor's numerator makes the division by zero (or the divisor
    itself bottom), and bottom absorbs every operation above it, so both the
    reference and the flattened FRU must say bottom there (``_check_point`` is
    True exactly for reference bottoms and checks the flattened side agrees).
    """
    rng = random.Random(rnd.random())
    fru = zs.flatten(expr, variables=SYMBOLS)
    for env in singular_points(expr, rng):
        assert _check_point(fru, expr, env), f"{env} is on a divisor's zero set but not bottom"


def test_singular_point_generator_finds_bottoms() -> None:
    x = SYMBOLS[0]
    expr = sp.Add(1, sp.Pow(sp.Add(x, -2, evaluate=False), -1, evaluate=False), evaluate=False)
    pts = singular_points(expr, random.Random(0))
    assert pts and all(ref_eval(expr, p) is BOT for p in pts)


@given(expressions)
def test_structural_numeric_ir_equals_canonical_polynomials(expr: sp.Expr) -> None:
    """The division-free IR that emitters evaluate is exactly P, Q and each V_i."""
    fru = zs.flatten(expr, variables=SYMBOLS)

    def expand(node: zs.ir.Node) -> sp.Expr:
        return sp.expand(zs.to_sympy(node).doit())

    assert sp.expand(expand(fru.numerator_ir) - fru.numerator) == 0
    q = sp.Integer(1)
    for f, m in fru.denominator_factor_irs:
        q *= expand(f) ** m
    assert sp.expand(q - fru.denominator) == 0
    assert sp.expand(expand(fru.denominator_ir) - fru.denominator) == 0
    for v_ir, v in zip(fru.validity_factor_irs, fru.validity_factors, strict=True):
        assert sp.expand(expand(v_ir) - v) == 0
