"""Budgets of expressions in many variables: refused early, metered by monomial width.

``1/v0 + 1/v1 + ... + 1/v1199`` has a common denominator of degree 1200: it
used to add 512 ever wider fractions (14.6 s) before ``max_degree`` refused
it. A denominator factor of exactly one term of a sum cannot cancel, so the
sum is now refused before any addition; and a product of monomials in ``n``
generators is charged about ``n/16`` times a narrow one, so ``max_work`` keeps
tracking time. The tests assert *that* and *how* the refusal happens, not how
long it took (the time is in ``benchmarks/bench_flatten.py``).
"""

from __future__ import annotations

import importlib

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_symbolic.flatten.algebra import PolyContext
from zpml_symbolic.flatten.budget import WIDTH_GENS, width_weight

driver = importlib.import_module("zpml_symbolic.flatten.driver")
numeric_ir = importlib.import_module("zpml_symbolic.flatten.numeric_ir")


def _poles(n: int) -> str:
    return " + ".join(f"1/v{i}" for i in range(n))


def test_sum_of_1200_poles_is_refused_before_any_addition(monkeypatch: pytest.MonkeyPatch) -> None:
    adds: list[int] = []
    real_add = PolyContext.add

    def counting_add(self: PolyContext, a: object, b: object) -> object:
        adds.append(1)
        return real_add(self, a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(PolyContext, "add", counting_add)
    with pytest.raises(zs.BudgetExceededError) as info:
        zs.flatten("+".join(f"1/v{i}" for i in range(1200)))
    err = info.value
    assert (err.budget, err.limit, err.requested) == ("max_degree", 512, 1200)
    assert "a sum (the common denominator of its terms) needs max_degree=1200" in str(err)
    assert "--max-degree" in str(err)
    assert adds == []  # refused predictively: not one fraction was added


def test_raising_max_degree_lets_the_same_sum_through_the_check() -> None:
    fru = zs.flatten(_poles(40), budget=zs.Budget(max_degree=40))
    assert fru.degrees.denominator == 40 and len(fru.variables) == 40
    with pytest.raises(zs.BudgetExceededError) as info:
        zs.flatten(_poles(40), budget=zs.Budget(max_degree=39))
    assert (info.value.budget, info.value.requested) == ("max_degree", 40)


def test_only_factors_that_cannot_cancel_are_counted() -> None:
    # x is in two terms and cancels: the sum is 1/y, legal with max_degree=1
    fru = zs.flatten("1/x - 1/x + 1/y", budget=zs.Budget(max_degree=1))
    assert fru.denominator == sp.Symbol("y") and fru.numerator == 1
    assert {str(s.factor) for s in fru.denominator_provenance} == {"x", "y"}
    # a shared factor that does not cancel is still refused, by the product that forms it
    with pytest.raises(zs.BudgetExceededError) as info:
        zs.flatten("1/(x*y) + 1/(x*z)", budget=zs.Budget(max_degree=2))
    assert (info.value.budget, info.value.requested) == ("max_degree", 3)


_FACTORS = ["x", "y", "z", "x - y", "y + 1", "x*y + 1", "z**2 + 1"]


@st.composite
def _sums(draw: st.DrawFn) -> str:
    terms = []
    for _ in range(draw(st.integers(2, 6))):
        picked = draw(st.lists(st.sampled_from(_FACTORS), min_size=1, max_size=3))
        coeff = draw(st.sampled_from(["1", "-1", "2", "3/7", "x"]))
        power = draw(st.sampled_from(["", "**2"]))
        terms.append(f"{coeff}/(({')*('.join(picked)}){power})")
    return " + ".join(terms)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_sums(), max_degree=st.integers(1, 14))
def test_the_predictive_check_never_changes_an_outcome(text: str, max_degree: int) -> None:
    """Reference: the flattener without the check. Same accept/refuse, same result."""
    budget = zs.Budget(max_degree=max_degree, max_seconds=1e9)

    def run() -> object:
        try:
            return zs.flatten(text, budget=budget)
        except zs.BudgetExceededError as e:
            return e

    with_check = run()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(driver, "_check_sum_degree", lambda *a: None)
        without = run()
    assert isinstance(with_check, zs.BudgetExceededError) == isinstance(
        without, zs.BudgetExceededError
    )
    if not isinstance(with_check, zs.BudgetExceededError):
        assert with_check.numerator == without.numerator  # type: ignore[attr-defined]
        assert with_check.denominator == without.denominator  # type: ignore[attr-defined]


def test_width_weight() -> None:
    assert [width_weight(n) for n in (0, 1, WIDTH_GENS - 1, WIDTH_GENS, 1200)] == [1, 1, 1, 2, 76]


def test_products_of_wide_monomials_cost_more_work() -> None:
    """A term product in n generators is charged ``1 + n // 16`` units (sympy adds the
    exponent tuples element by element), so work keeps tracking time for wide sums:
    150 poles in one variable (dense, 0.1 s) pass a budget that 150 poles in 150
    variables (0.2 s) exceed."""
    from zpml_symbolic.flatten.budget import Budget, BudgetMeter

    narrow, wide = BudgetMeter(Budget()), BudgetMeter(Budget())
    narrow.check_product(1, 1, 10, 10, 1)
    wide.check_product(1, 1, 10, 10, 1200)
    assert (narrow.work, wide.work) == (100, 100 * 76)
    budget = zs.Budget(max_work=100_000, max_seconds=1e9)
    x = sp.Symbol("x")
    poles_in_x = sp.Add(*[1 / (x - sp.Rational(k, 7)) for k in range(150)])
    assert zs.flatten(poles_in_x, budget=budget).degrees.denominator == 150
    with pytest.raises(zs.BudgetExceededError) as info:
        zs.flatten(_poles(150), budget=budget)
    assert info.value.budget == "max_work"


def test_horner_skips_unused_generators_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Horner form of a sparse polynomial in 600 generators is the node (interned, so
    ``is``) the step-by-one recursion builds."""
    from zpml_symbolic.flatten.budget import Budget, BudgetMeter
    from zpml_symbolic.ir import node as ir

    fru = zs.flatten(
        "1/(v3*v500 + v599**2*v7 - 2*v0 + v250*v251*v252 + 5)",
        variables=[f"v{i}" for i in range(600)],
    )
    ((poly, _),) = fru.denominator_factor_polys
    gens = tuple(ir.var(s.name) for s in fru.generators)
    fast = numeric_ir.horner(poly, gens, BudgetMeter(Budget()))
    with monkeypatch.context() as m:
        m.setattr(numeric_ir, "_next_used", lambda terms, k: k)  # step one generator at a time
        slow = numeric_ir.horner(poly, gens, BudgetMeter(Budget()))
    assert fast is slow
    assert fast is fru.denominator_factor_irs[0][0]
