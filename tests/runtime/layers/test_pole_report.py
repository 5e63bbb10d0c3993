"""pole_report: true poles vs Froissart doublets, clusters, residues, the data test; zero_set_report.

Inputs are exact expressions with planted poles, doublets and near-double
poles (so the expected answer is known exactly), and fitted layers.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from zpml_runtime.layers import (
    MultivariateRationalLayer,
    SCMRationalLayer,
    fit_rational,
    monomial_exponents,
    pole_report,
    remove_spurious_poles,
    zero_set_report,
)

x = sp.Symbol("x")


def expr(num, den):
    with sp.evaluate(False):
        return num / den


def test_near_cancelled_pair_is_spurious_with_its_numbers():
    report = pole_report(
        expr(
            x - sp.Rational(3, 10) - sp.Rational(1, 10**9),
            (x - sp.Rational(3, 10)) * (x + sp.Rational(1, 2)),
        ),
        (-1, 1),
    )
    assert report.locations == (-0.5,)
    (doublet,) = report.spurious
    assert doublet.location == 0.3 and doublet.kind == "spurious" and doublet.bottom
    assert doublet.zero_distance == pytest.approx(1e-9, rel=1e-6)
    assert doublet.residue == pytest.approx(-1e-9 / 0.8, rel=1e-6)
    assert report.poles[0].residue == pytest.approx((-0.8 - 1e-9) / -0.8, rel=1e-12)
    assert "spurious" in str(report) and "residue" in str(report)


def test_negligible_residue_is_spurious():
    report = pole_report("1 + 1/(10**12*(x - 3/10))", (-1, 1))
    assert report.poles == () and [p.location for p in report.spurious] == [0.3]
    # the same pole with a visible residue is a pole
    assert pole_report("1 + 1/(10**3*(x - 3/10))", (-1, 1)).locations == (0.3,)
    # spurious_tol=0 turns the data-free test off
    assert pole_report("1 + 1/(10**12*(x - 3/10))", (-1, 1), spurious_tol=0.0).locations == (0.3,)


def test_double_pole_perturbed_into_a_complex_pair_is_one_double_pole():
    report = pole_report("1/((x - 1/4)**2 + 1/10**20)", (-1, 1))
    (pole,) = report.poles
    assert pole.multiplicity == 2 and pole.order == 2
    assert abs(pole.location - 0.25) <= 1e-15
    assert (
        not pole.bottom
    )  # no exact real zero of Q: strict inference gives huge values, not bottom
    assert pole.residue == pytest.approx(1.0, rel=1e-9)  # Laurent coefficient of 1/(x - 1/4)**2
    assert report.zeros == report.poles


def test_double_pole_split_into_two_real_zeros_is_one_double_pole():
    # Q = (x - 1/4)**2 - 2**-40 exactly in float64: two real zeros 2**-19 apart
    layer = SCMRationalLayer(
        0,
        2,
        numerator_init=[1.0],
        denominator_init=[1 / 16 - 2.0**-40, -0.5, 1.0],
        dtype=torch.float64,
    )
    report = pole_report(layer, (-1, 1))
    (pole,) = report.poles
    assert pole.multiplicity == 2 and pole.bottom
    lo, hi = pole.interval
    assert lo <= Fraction(1, 4) - Fraction(1, 2**20) and hi >= Fraction(1, 4) + Fraction(1, 2**20)
    assert pole.location == 0.25  # the mean of the two zeros, exactly
    assert len(pole_report(layer, (-1, 1), cluster_tol=1e-8).poles) == 2


def test_close_genuine_poles_stay_apart_and_residues_are_exact():
    report = pole_report("1/(x - 3/10) + 2/(x - 32/100)", (-1, 1))
    assert report.locations == (0.3, 0.32)
    assert [p.residue for p in report.poles] == pytest.approx([1.0, 2.0], rel=1e-12)
    assert report.spurious == () and report.data_checked is False


def test_cluster_tol_decides_what_is_one_pole():
    close = "1/((x - 3/10)*(x - 3/10 - 1/10**7))"
    assert [p.multiplicity for p in pole_report(close, (-1, 1)).poles] == [2]
    assert len(pole_report(close, (-1, 1), cluster_tol=1e-9).poles) == 2


def noisy_overfit(seed):
    rng = np.random.default_rng(seed)
    xs = np.linspace(-1, 1, 512)
    ys = 1 / (xs + 0.1) * (1 + 0.01 * rng.standard_normal(512))
    return xs, ys, fit_rational(xs, ys, 3, 3, reduce_degree=False, remove_spurious=False)


def rms_rel(layer, xs, ys):
    with torch.no_grad():
        P, Q = layer(torch.as_tensor(xs, dtype=layer.numerator.dtype))
    r = (P.double() / Q.double()).numpy()
    return float(np.sqrt(np.mean(((r - ys) / np.maximum(np.abs(ys), 1)) ** 2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_data_test_and_removal(seed):
    xs, ys, layer = noisy_overfit(seed)
    blind = pole_report(layer, (-1, 1))
    assert len(blind.zeros) == 3  # the over-fit layer has two extra real poles
    checked = pole_report(layer, (-1, 1), data=(xs, ys))
    assert checked.data_checked and len(checked.poles) == 1 and len(checked.spurious) == 2
    assert abs(checked.poles[0].location + 0.1) <= 1e-3
    cleaned, report = remove_spurious_poles(layer, xs, ys)
    assert report.spurious == () and len(report.poles) == 1 and len(report.zeros) == 1
    assert abs(report.poles[0].location - checked.poles[0].location) <= 1e-6
    assert rms_rel(cleaned, xs, ys) <= 1.05 * rms_rel(layer, xs, ys)
    # the original layer is untouched; degrees, basis, domain and dtype are kept
    assert len(pole_report(layer, (-1, 1)).zeros) == 3
    assert (
        cleaned.numerator_degree,
        cleaned.denominator_degree,
        cleaned.basis,
        cleaned.domain,
    ) == (3, 3, "chebyshev", layer.domain)


def test_removal_keeps_monomial_basis_and_float32():
    xs, ys, layer = noisy_overfit(0)
    mono = fit_rational(
        xs,
        ys,
        3,
        3,
        reduce_degree=False,
        remove_spurious=False,
        basis="monomial",
        dtype=torch.float32,
    )
    cleaned, report = remove_spurious_poles(mono, xs, ys)
    assert cleaned.basis == "monomial" and cleaned.numerator.dtype == torch.float32
    assert len(report.poles) == 1 and report.spurious == ()
    same, rep = remove_spurious_poles(cleaned, xs, ys)  # nothing left to remove: an equal copy
    assert same is not cleaned and torch.equal(same.denominator, cleaned.denominator)


def test_data_keeps_a_small_but_real_pole():
    # residue 4e-4 next to a zero at distance 9e-3: a real feature the samples resolve
    f = lambda t: (t + 0.839) / ((t + 0.8477) * ((t - 0.6) ** 2 + 0.02))  # noqa: E731
    xs = np.linspace(-1, 1, 512)
    layer = fit_rational(xs, f(xs), 1, 3)
    assert pole_report(layer, (-1, 1)).locations == pytest.approx((-0.8477,), abs=1e-12)
    assert pole_report(layer, (-1, 1), data=(xs, f(xs))).locations == pytest.approx(
        (-0.8477,), abs=1e-12
    )


def test_bottom_targets_in_the_data_test():
    xs = np.sort(np.concatenate([np.linspace(-1, 1, 300), [-0.1]]))
    with np.errstate(divide="ignore"):
        ys = 1 / (xs + 0.1)
    layer = fit_rational(xs, ys, 2, 2)
    assert pole_report(layer, (-1, 1), data=(xs, ys)).locations == pytest.approx((-0.1,), abs=1e-14)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.fractions(min_value=Fraction(-9, 10), max_value=Fraction(9, 10), max_denominator=40),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    st.lists(st.integers(min_value=1, max_value=9), min_size=3, max_size=3),
    st.fractions(min_value=Fraction(-9, 10), max_value=Fraction(9, 10), max_denominator=40),
)
def test_planted_poles_found_and_planted_doublet_flagged(poles, residues, doublet_at):
    poles = sorted(poles)
    if min((b - a for a, b in zip(poles, poles[1:], strict=False)), default=1) < Fraction(1, 20):
        return
    if min(abs(doublet_at - p) for p in poles) < Fraction(1, 20):
        return
    # independent reference: r = sum_k c_k / (x - p_k) + 1, exact
    terms = [
        sp.Integer(c) / (x - sp.Rational(p.numerator, p.denominator))
        for c, p in zip(residues, poles, strict=False)
    ]
    r = sp.together(sum(terms) + 1)
    num, den = sp.fraction(r)
    report = pole_report(expr(sp.expand(num), sp.expand(den)), (-1, 1))
    assert report.locations == tuple(float(p) for p in poles)
    assert [p.residue for p in report.poles] == pytest.approx(residues[: len(poles)], rel=1e-9)
    assert report.spurious == ()
    d = sp.Rational(doublet_at.numerator, doublet_at.denominator)
    with_doublet = pole_report(
        expr(sp.expand(num * (x - d - sp.Rational(1, 10**10))), sp.expand(den * (x - d))), (-1, 1)
    )
    assert with_doublet.locations == report.locations
    assert [p.location for p in with_doublet.spurious] == [float(doublet_at)]


def test_pole_report_errors():
    with pytest.raises(InvalidConfigError, match="spurious_tol"):
        pole_report("1/x", (-1, 1), spurious_tol=2.0)
    with pytest.raises(InvalidConfigError, match="cluster_tol"):
        pole_report("1/x", (-1, 1), cluster_tol=-1.0)
    with pytest.raises(InvalidConfigError, match="scale"):
        pole_report("1/x", (-1, 1), scale=0.0)
    with pytest.raises(InvalidConfigError, match="data must be a pair"):
        pole_report("1/(x - 1/2)", (-1, 1), data=np.ones(3))
    with pytest.raises(ShapeMismatchError, match="data y must have the shape of x"):
        pole_report("1/(x - 1/2)", (-1, 1), data=(np.ones(3), np.ones(4)))
    with pytest.raises(
        UnsupportedInputError, match="remove_spurious_poles expects an SCMRationalLayer"
    ):
        remove_spurious_poles(torch.nn.Linear(1, 1), np.ones(3), np.ones(3))  # type: ignore[arg-type]


# ---------------------------------------------------------------- multivariate zero set


def planted_head():
    """in 3, out 1: P = h0 - 1/2, Q = h1 * (h0 - 1/2) (one shared factor), degree 2."""
    head = MultivariateRationalLayer(3, 1, 2, 2, dtype=torch.float64)
    exps = [e for e in monomial_exponents(3, 2) if sum(1 for i in e if i) <= 2]
    coef = torch.zeros(len(exps), 2, dtype=torch.float64)
    coef[exps.index((0, 0)), 0] = -0.5
    coef[exps.index((0, 1)), 0] = 1.0
    coef[exps.index((1, 2)), 1] = 1.0
    coef[exps.index((0, 2)), 1] = -0.5
    head.set_monomial_coefficients(coef)
    return head


def test_zero_set_report_factors_and_cancellation():
    head = planted_head()
    h = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)
    with torch.no_grad():
        P, Q = head(h)
    assert float(P) == pytest.approx(0.2) and float(Q) == pytest.approx(0.2 * 0.2)
    report = zero_set_report(head, ["a", "b", "c"])
    a, b, _ = report.variables
    assert {f for f, _ in report.factors[0]} == {b, 2 * a - 1}  # primitive integer factors
    assert report.depends_on[0] == (a, b)
    assert report.cancelled[0] == (2 * a - 1,)
    assert "b = 0" in str(report) and "removable" in str(report)


def test_zero_set_report_slice():
    head = planted_head()
    report = zero_set_report(head, ["a", "b", "c"], fixed={"a": 0.75, "c": 3.0}, interval=(-1, 1))
    (rep,) = report.slices
    assert rep.locations == (0.0,) and rep.poles[0].residue == pytest.approx(1.0)
    on_factor = zero_set_report(head, None, fixed={"h1": 0.5, "h2": 0.0}, interval=(0, 1))
    assert on_factor.slices[0].poles == () and [
        z.location for z in on_factor.slices[0].removable
    ] == [0.5]


def test_zero_set_report_errors():
    head = planted_head()
    with pytest.raises(InvalidConfigError, match="names must be 3 distinct identifiers"):
        zero_set_report(head, ["a", "a", "b"])
    with pytest.raises(InvalidConfigError, match="exactly one feature free"):
        zero_set_report(head, fixed={"h0": 1.0}, interval=(0, 1))
    with pytest.raises(InvalidConfigError, match="unknown feature 'z'"):
        zero_set_report(head, fixed={"z": 1.0, "h1": 0.0}, interval=(0, 1))
    with pytest.raises(InvalidConfigError, match="needs interval"):
        zero_set_report(head, fixed={"h1": 1.0, "h2": 0.0})
    with pytest.raises(InvalidConfigError, match="finite number"):
        zero_set_report(head, fixed={"h1": math.inf, "h2": 0.0}, interval=(0, 1))
    with pytest.raises(UnsupportedInputError, match="expects a MultivariateRationalLayer"):
        zero_set_report(torch.nn.Linear(1, 1))  # type: ignore[arg-type]
    empty = MultivariateRationalLayer(2, 1, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        empty.weight.zero_()
    with pytest.raises(InvalidConfigError, match="identically zero"):
        zero_set_report(empty)
