"""pole_report: exact real zeros of Q, multiplicities, cancellation with P, validity factors."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zpml_runtime.errors import InvalidConfigError, UnsupportedInputError
from zpml_runtime.layers import RationalTemplateLayer, SCMRationalLayer, pole_report
from zpml_runtime.layers.poles import real_zeros


def test_known_polynomial_poles_multiplicity_and_cancellation():
    # Q = (x - 1/2)**2 (x + 1/3)(x**2 - 2) (x - 5); P cancels the (x + 1/3) factor, which
    # flattening moves to a validity factor (P/Q is coprime); removable points of a trained
    # template are tested below
    x = sp.Symbol("x")
    with sp.evaluate(False):
        expr = (x + sp.Rational(1, 3)) / (
            (x - sp.Rational(1, 2)) ** 2 * (x + sp.Rational(1, 3)) * (x**2 - 2) * (x - 5)
        )
    report = pole_report(expr, (-2, 2))
    kinds = [(z.location, z.multiplicity, z.kind) for z in report.zeros]
    assert kinds == [
        (-math.sqrt(2), 1, "pole"),
        (0.5, 2, "pole"),
        (math.sqrt(2), 1, "pole"),
    ]
    assert [v.interval for v in report.validity_zeros] == [(Fraction(-1, 3), Fraction(-1, 3))]
    assert report.locations == (-math.sqrt(2), 0.5, math.sqrt(2))  # correctly rounded floats
    assert report.nearest(0.4).order == 2
    assert "validity_factor" in str(report) and "multiplicity 2" in str(report)


def test_interval_ends_are_closed_and_outside_roots_ignored():
    report = pole_report("1/((x - 1)*(x + 3))", (-1, 1))
    assert report.locations == (1.0,)
    assert pole_report("1/(x**2 + 1)", (-10, 10)).zeros == ()


def test_validity_factor_zeros_are_listed():
    report = pole_report("1/(1 + 1/x)", (-2, 2))  # Q = x + 1, validity factor x
    assert report.locations == (-1.0,)
    assert [(v.location, v.kind) for v in report.validity_zeros] == [(0.0, "validity_factor")]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.fractions(min_value=-3, max_value=3, max_denominator=50),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    st.integers(min_value=1, max_value=3),
)
def test_roots_of_products_of_linear_factors(roots, mult):
    x = sp.Symbol("x")
    Q = sp.Poly(
        sp.prod([(x - sp.Rational(r.numerator, r.denominator)) for r in roots]) ** mult,
        x,
        domain=sp.QQ,
    )
    found = real_zeros(Q, Fraction(-3), Fraction(3))
    assert [iv for iv, _ in found] == [(r, r) for r in sorted(roots)]
    assert {m for _, m in found} == {mult}


def test_trained_layer_coefficients_are_exact_and_digits_round():
    layer = SCMRationalLayer(1, 1, numerator_init=[1.0, 0.0], denominator_init=[0.1, 1.0])
    exact = pole_report(layer, (-1, 1))
    assert exact.locations == (-float(torch.tensor(0.1)),)  # the float32 value of 0.1, exactly
    rounded = pole_report(layer, (-1, 1), digits=3)
    assert rounded.zeros[0].interval == (Fraction(-1, 10), Fraction(-1, 10))
    cheb = SCMRationalLayer(
        1,
        2,
        basis="chebyshev",
        domain=(0.0, 2.0),
        numerator_init=[1.0, 0.0],
        denominator_init=[0.0, 0.0, 1.0],
    )
    # T_2(t) = 2t**2 - 1 with t = x - 1: zeros at 1 +- 1/sqrt(2)
    expected = tuple(float(sp.N(1 + s / sp.sqrt(2), 40)) for s in (-1, 1))  # correctly rounded
    assert pole_report(cheb, (0, 2)).locations == expected


def test_template_report_substitutes_the_coefficients():
    layer = RationalTemplateLayer(
        "(a0 + a1*x)/(b0 + b1*x)",
        ["a0", "a1", "b0", "b1"],
        init={"a0": 0.5, "a1": 1.0, "b0": 0.5, "b1": 1.0},
    )
    report = pole_report(layer, (-1, 1))
    assert [z.kind for z in report.zeros] == ["removable"]  # (x + 1/2)/(x + 1/2)
    assert report.poles == ()


def test_errors():
    with pytest.raises(InvalidConfigError, match="interval must satisfy lo <= hi"):
        pole_report("1/x", (1, -1))
    with pytest.raises(InvalidConfigError, match="interval must be a pair"):
        pole_report("1/x", 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="needs a univariate expression"):
        pole_report("1/(x - y)", (-1, 1))
    with pytest.raises(InvalidConfigError, match="needs a univariate model"):
        pole_report(RationalTemplateLayer("a/(x - y)", ["a"]), (-1, 1))
    with pytest.raises(UnsupportedInputError, match="pole_report expects an SCMRationalLayer"):
        pole_report(torch.nn.Linear(1, 1), (-1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="identically zero"):
        pole_report(SCMRationalLayer(1, 1, denominator_init=[0.0, 0.0]), (-1, 1))
