"""Flattening budgets: bombs are refused quickly with the numbers, realistic models pass."""

from __future__ import annotations

import math
import random
import time
from fractions import Fraction

import pytest
import sympy as sp
from sym_strategies import ref_eval

import zpml_symbolic as zs
from zpml_symbolic.flatten.budget import dense_term_bound

x, y, z = sp.symbols("x y z")


def div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)


def squared(base: sp.Expr, times: int) -> sp.Expr:
    """``e = e*e`` ``times`` times, unevaluated: a shared DAG of degree ``2**times``."""
    e = base
    for _ in range(times):
        e = sp.Mul(e, e, evaluate=False)
    return e


def refuse(expr: sp.Expr, **kwargs: object) -> tuple[zs.BudgetExceededError, float]:
    start = time.perf_counter()
    with pytest.raises(zs.BudgetExceededError) as info:
        zs.flatten(expr, **kwargs)  # type: ignore[arg-type]
    return info.value, time.perf_counter() - start


def frac(value: sp.Rational) -> Fraction:
    return Fraction(int(value.p), int(value.q))


# ---------------------------------------------------------------------- bombs


def test_univariate_square_bomb_is_refused_fast() -> None:
    bomb = squared(x + 1, 40)  # degree 2**40 if expanded
    err, _ = refuse(bomb)  # refused by the degree check before any product (no clock involved)
    assert (err.budget, err.limit, err.requested) == ("max_degree", 512, 1024)
    message = str(err)
    assert "max_degree=1024" in message and "the budget is 512" in message
    assert "Budget(max_degree=...)" in message  # says how to raise it
    assert "refused at '(1 + x)*(1 + x)" in message and "…" in message
    assert len(message) < 600  # the huge subexpression is capped
    assert isinstance(err, ValueError) and isinstance(err, zs.ZeroProofError)


def test_shared_dag_is_flattened_once_up_to_the_degree_limit() -> None:
    bomb = squared(x + 1, 9)  # (x+1)**512, 2**9 leaves as a tree, 11 DAG nodes
    fru = zs.flatten(bomb)
    assert fru.degrees.numerator == 512 and fru.denominator == 1
    assert fru.numerator.subs(x, 1) == 2**512
    assert fru.numerator.coeff(x, 256) == math.comb(512, 256)
    err, _ = refuse(bomb, budget=zs.Budget(max_degree=511))
    assert (err.budget, err.limit, err.requested) == ("max_degree", 511, 512)


def test_huge_power_is_refused_before_computing() -> None:
    err, _ = refuse(sp.Pow(x + y + z + 1, 2**40, evaluate=False))
    assert (err.budget, err.limit, err.requested) == ("max_degree", 512, 2**40)
    assert "a power needs max_degree=1099511627776" in str(err)


def test_negative_power_beyond_max_degree_is_refused_by_flatten() -> None:
    err, _ = refuse(sp.Pow(x + y, -600, evaluate=False))
    assert (err.budget, err.requested) == ("max_degree", 600)


def test_results_stay_usable_after_the_time_budget() -> None:
    fru = zs.flatten("1/(x - 1) + 1/(x - 2)", budget=zs.Budget(max_seconds=0.05))
    time.sleep(0.1)
    assert sp.expand(fru.denominator - (x - 1) * (x - 2)) == 0
    assert fru.evaluate({"x": 3}) == sp.Rational(3, 2)


def test_multivariate_square_bomb_refused_by_max_terms() -> None:
    v = sp.symbols("v0:8")
    bomb = squared(sp.Add(*v, 1), 5)
    err, _ = refuse(bomb)
    # degree 8 -> 16: dense bound C(16 + 8, 8) terms exceeds the default 200000
    assert (err.budget, err.limit, err.requested) == ("max_terms", 200_000, math.comb(24, 8))
    assert "max_terms=735471" in str(err)


def test_multivariate_bomb_with_small_budgets() -> None:
    bomb = squared(x + y + z + 1, 6)  # (x+y+z+1)**64
    err, _ = refuse(bomb, budget=zs.Budget(max_terms=1000))
    # 16 -> 32: min(969**2, dense C(35, 3)) terms
    assert (err.budget, err.limit, err.requested) == ("max_terms", 1000, math.comb(35, 3))
    assert err.requested == dense_term_bound(32, 3)
    err, _ = refuse(bomb, budget=zs.Budget(max_degree=20))
    assert (err.budget, err.limit, err.requested) == ("max_degree", 20, 32)


def test_multivariate_square_bomb_refused_fast_with_default_budget() -> None:
    err, _ = refuse(squared(x + y + z + 1, 7))  # (x+y+z+1)**128
    assert err.budget in ("max_terms", "max_degree", "max_work")


# ---------------------------------------------------------------- budget kinds


def test_each_budget_kind_triggers() -> None:
    moderate = squared(x + y + z + 1, 4)  # (x+y+z+1)**16, 969 terms
    cases = {
        "max_degree": zs.Budget(max_degree=8),
        "max_terms": zs.Budget(max_terms=100),
        "max_work": zs.Budget(max_work=1000),
        "max_seconds": zs.Budget(max_seconds=1e-9),
    }
    for name, budget in cases.items():
        err, _ = refuse(moderate, budget=budget)
        assert err.budget == name
        assert err.limit == getattr(budget, name)
        assert err.requested > err.limit
        assert f"needs {name}=" in str(err) and f"Budget({name}=...)" in str(err)
    assert zs.flatten(moderate).degrees.numerator == 16  # the default budget accepts it


def test_max_work_is_cumulative() -> None:
    # each product alone is small; the total work is what the budget counts
    terms = [squared(sp.Add(v, 1, evaluate=False), 3) for v in sp.symbols("w0:12")]
    expr = sp.Add(*terms, evaluate=False)
    fru = zs.flatten(expr)
    assert fru.degrees.numerator == 8
    err, _ = refuse(expr, budget=zs.Budget(max_work=60))
    assert err.budget == "max_work" and err.requested > 60


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_degree": 0}, r"Budget\.max_degree must be a positive int, got 0"),
        ({"max_degree": -5}, r"Budget\.max_degree must be a positive int, got -5"),
        ({"max_degree": 2.0}, r"Budget\.max_degree must be a positive int, got 2\.0"),
        ({"max_degree": True}, r"Budget\.max_degree must be a positive int, got True"),
        ({"max_terms": 0}, r"Budget\.max_terms must be a positive int"),
        ({"max_terms": "100"}, r"Budget\.max_terms must be a positive int, got '100'"),
        ({"max_work": 1.5}, r"Budget\.max_work must be a positive int, got 1\.5"),
        ({"max_work": None}, r"Budget\.max_work must be a positive int, got None"),
        ({"max_seconds": 0}, r"Budget\.max_seconds must be > 0, got 0"),
        ({"max_seconds": -1.0}, r"Budget\.max_seconds must be > 0, got -1\.0"),
        ({"max_seconds": float("nan")}, r"Budget\.max_seconds must be > 0, got nan"),
        ({"max_seconds": "1"}, r"Budget\.max_seconds must be > 0, got '1'"),
        pytest.param(
            {"max_seconds": True},
            r"Budget\.max_seconds must be",
            id="max_seconds-bool",
        ),
    ],
)
def test_invalid_budget_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(zs.InvalidArgumentError, match=match) as info:
        zs.Budget(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_valid_budget_values() -> None:
    b = zs.Budget(max_degree=1, max_terms=1, max_work=1, max_seconds=0.5)
    assert (b.max_degree, b.max_terms, b.max_work, b.max_seconds) == (1, 1, 1, 0.5)
    assert zs.Budget(max_seconds=2).max_seconds == 2
    assert zs.Budget(max_seconds=float("inf")).max_seconds == math.inf
    with pytest.raises(AttributeError):
        b.max_degree = 3  # type: ignore[misc]
    # a budget of 1 still flattens linear expressions (no polynomial products)
    assert zs.flatten(x + 2 * y - 1, budget=b).numerator == x + 2 * y - 1


def test_flatten_rejects_a_non_budget() -> None:
    with pytest.raises(zs.InvalidArgumentError, match="budget"):
        zs.flatten(x + 1, budget=100)  # type: ignore[arg-type]


# ------------------------------------------------------------ realistic models


def test_sum_of_64_simple_poles_is_accepted() -> None:
    poles = [sp.Rational(k, 10) for k in range(64)]
    coeffs = [sp.Rational(k + 1, 3) * (-1) ** k for k in range(64)]
    expr = sp.Add(
        *[div(c, sp.Add(x, -p, evaluate=False)) for c, p in zip(coeffs, poles, strict=True)],
        evaluate=False,
    )
    fru = zs.flatten(expr)
    assert fru.strict_validity_sources == ()
    assert len(fru.denominator_provenance) == 64
    assert all(s.kind == "explicit_denominator" for s in fru.denominator_provenance)
    assert fru.degrees.numerator == 63 and fru.degrees.denominator == 64
    # each x - k/10 normalises to its primitive integer form (x, 10*x - 1, 5*x - 1, ...)
    factors = [sp.Poly(10 * x - k, x).primitive()[1] for k in range(64)]
    assert {str(f.as_expr()) for f in factors[:3]} == {"x", "10*x - 1", "5*x - 1"}
    assert sp.Poly(fru.denominator, x) == sp.prod(factors)
    for point in (Fraction(1, 3), Fraction(-7, 2), Fraction(641, 100)):
        want = sum(frac(c) / (point - frac(p)) for c, p in zip(coeffs, poles, strict=True))
        assert fru.evaluate({"x": point}) == sp.Rational(want.numerator, want.denominator)
    assert fru.evaluate({"x": Fraction(37, 10)}) is zs.BOTTOM


@pytest.mark.slow
def test_sum_of_64_poles_with_parameter_coefficients_is_accepted() -> None:
    cs = sp.symbols("c0:64")
    expr = sp.Add(
        *[div(cs[k], sp.Add(x, -sp.Rational(k, 10), evaluate=False)) for k in range(64)],
        evaluate=False,
    )
    fru = zs.flatten(expr, parameters=cs)
    assert fru.parameters == cs and fru.variables == (x,)
    assert fru.strict_validity_sources == ()
    assert fru.degrees.numerator == 63 and fru.degrees.denominator == 64
    rng = random.Random(1)
    values = {c: Fraction(rng.randint(-9, 9), rng.randint(1, 5)) for c in cs}
    point = Fraction(13, 7)
    want = sum(values[cs[k]] / (point - Fraction(k, 10)) for k in range(64))
    got = fru.evaluate({x: point, **values})
    assert got == sp.Rational(want.numerator, want.denominator)


def _continued_fraction(depth: int) -> sp.Expr:
    """``x/(1 + x/(2 + x/(3 + ... + x/depth)))``, unevaluated."""
    e: sp.Expr = sp.Integer(depth)
    for k in range(depth - 1, 0, -1):
        e = sp.Add(k, div(x, e), evaluate=False)
    return div(x, e)


def test_64_deep_continued_fraction_is_accepted() -> None:
    depth = 64
    expr = _continued_fraction(depth)
    fru = zs.flatten(expr)
    # f_k = k + x/f_(k+1) = A_k/B_k: A_k = k*A_(k+1) + x*A_(k+2), B_k = A_(k+1); value x*A_2/A_1
    X = sp.Poly(x, x)
    A = {depth + 1: sp.Poly(1, x), depth: sp.Poly(depth, x)}
    for k in range(depth - 1, 0, -1):
        A[k] = A[k + 1] * k + X * A[k + 2]
    P, Q = sp.Poly(fru.numerator, x), sp.Poly(fru.denominator, x)
    assert (P * A[1] - Q * X * A[2]).is_zero
    assert Q.LC() > 0 and Q.content() == 1 and Q.degree() == 32

    # every inner divisor numerator A_2..A_(depth-1) is a retained validity factor
    def canonical(p: sp.Poly) -> sp.Expr:
        p = p.primitive()[1]
        return (p if p.LC() > 0 else -p).as_expr()

    want = {canonical(A[k]) for k in range(2, depth)}
    assert set(fru.validity_factors) == want
    assert len(fru.validity_factors) == depth - 2
    assert fru.degrees.validity_factors == tuple(sorted(fru.degrees.validity_factors))
    for point in (Fraction(1, 2), Fraction(-3), Fraction(22, 7)):
        want_value = ref_eval(expr, {x: point})
        assert fru.evaluate({x: point}) == sp.Rational(want_value.numerator, want_value.denominator)
    assert fru.evaluate({x: Fraction(-63 * 64)}) is zs.BOTTOM  # A_63 = 63*64 + x


def test_pade_10_10_with_parameter_coefficients_is_accepted() -> None:
    a = sp.symbols("a0:11")
    b = sp.symbols("b0:11")
    num = sp.Add(*[a[i] * x**i for i in range(11)], evaluate=False)
    den = sp.Add(*[b[i] * x**i for i in range(11)], evaluate=False)
    fru = zs.flatten(div(num, den), parameters=a + b)
    assert fru.variables == (x,) and fru.parameters == a + b
    assert sp.expand(fru.numerator - sum(a[i] * x**i for i in range(11))) == 0
    assert sp.expand(fru.denominator - sum(b[i] * x**i for i in range(11))) == 0
    assert fru.strict_validity_sources == ()
    (src,) = fru.denominator_provenance
    assert src.kind == "explicit_denominator" and not src.retained
    assert fru.degrees.numerator == 10 and fru.degrees.denominator == 10
    rng = random.Random(7)
    values = {s: Fraction(rng.randint(-5, 5), rng.randint(1, 4)) for s in a + b}
    point = Fraction(3, 5)
    p_val = sum(values[a[i]] * point**i for i in range(11))
    q_val = sum(values[b[i]] * point**i for i in range(11))
    want = p_val / q_val
    assert fru.evaluate({x: point, **values}) == sp.Rational(want.numerator, want.denominator)
    zero_den = {**values, **{s: 0 for s in b}}
    assert fru.evaluate({x: point, **zero_den}) is zs.BOTTOM
