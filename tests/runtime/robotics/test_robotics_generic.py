"""The generic IK head: fitted from data with no Jacobian, its exact singular set, the 3-link arm."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.layers import fit_rational, monomial_exponents
from zpml_runtime.robotics import IKDatasetConfig, PlanarArm, PlanarArm3, generate_ik_dataset
from zpml_runtime.robotics.compare import rational_values
from zpml_runtime.robotics.evaluation import bucket_table
from zpml_runtime.robotics.generic import fit_generic_head, head_monomials
from zpml_runtime.robotics.singular_set import singular_set_report, snap_coefficients

NAMES2 = ("c1", "s1", "c2", "s2", "dx", "dy")
ABOVE_1E5 = ("[1e-5,1e-4)", "[1e-4,1e-3)", "[1e-3,1e-2)", "[1e-2,inf)")


def _splits(arm, n: int, seed: int, label_mode: str = "inverse"):
    data = generate_ik_dataset(
        IKDatasetConfig(n_samples=n, seed=seed, arm=arm, label_mode=label_mode)
    )
    return data.split((0.6, 0.2, 0.2), seed=seed)


def _evaluate(fit, test):
    value, bottom = rational_values(fit.model, test.inputs)
    table = bucket_table(test, {"g": value}, accepted={"g": ~bottom}, bottom_mask=bottom)
    return {r["bucket"]: r for r in table}


# -- the fit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arm, seed", [(PlanarArm(), 3), (PlanarArm3(), 4)], ids=["2link", "3link"])
def test_generic_head_learns_the_inverse_jacobian_and_its_singular_set(arm, seed) -> None:
    train, calib, test = _splits(arm, 1500, seed)
    fit = fit_generic_head(train, calib, arm)
    assert (fit.numerator_degree, fit.denominator_degree) == (
        3,
        1,
    )  # found by the search, not given
    assert [(t.numerator_degree, t.denominator_degree) for t in fit.trials][-1] == (3, 1)
    assert fit.singular_set.matches_reference and fit.singular_set.description == "{s2 = 0}"
    b = _evaluate(fit, test)
    assert b["all"]["bottom_precision"] == 1.0 and b["all"]["bottom_recall"] == 1.0
    for k in ABOVE_1E5:  # held-out rows
        assert b[k]["g.median_rel_err"] <= 1e-6, k
        assert b[k]["bottom_rate"] == 0.0, k


def test_generic_head_fits_damped_least_squares_labels() -> None:
    arm = PlanarArm()
    train, calib, test = _splits(arm, 1200, 5, label_mode="dls")
    fit = fit_generic_head(train, calib, arm, reference=None)
    assert (fit.numerator_degree, fit.denominator_degree) == (4, 2)
    b = _evaluate(fit, test)
    assert b["all"]["n_bottom"] == 0  # det(J J^T + lam^2 I) > 0: never bottom
    assert all(b[k]["g.median_rel_err"] <= 1e-6 for k in b if k != "all")


def _perturbing_fitter(x, y, num, den):
    """fit_rational, then Q's zero coefficients nudged by 1e-13 (a fitter that snaps nothing)."""
    head = fit_rational(x, y, num, den)
    c = head.monomial_coefficients().detach().clone()
    q = c[:, -1]
    c[:, -1] = torch.where(q == 0, torch.full_like(q, 1e-13), q * (1 + 1e-13))
    head.set_monomial_coefficients(c)
    return head


def test_snapping_makes_q_exactly_zero_on_the_singular_rows_and_refits_p() -> None:
    arm = PlanarArm(0.8, 0.5)
    train, calib, test = _splits(arm, 900, 6)
    raw = _perturbing_fitter(arm.features(train.inputs), train.targets, 3, 1)
    linear = [i for i, e in enumerate(head_monomials(raw)) if sum(1 for j in e if j) <= 1]
    assert (raw.monomial_coefficients()[linear, -1] != 0).all()  # Q would not vanish at s2 == 0
    fit = fit_generic_head(train, calib, arm, degrees=[(3, 1)], fitter=_perturbing_fitter)
    q = fit.model.head.monomial_coefficients().detach().numpy()[:, -1]
    exps = head_monomials(fit.model.head)
    assert fit.snapped and np.count_nonzero(q) == 1 and exps[int(np.flatnonzero(q)[0])] == (0, 0, 4)
    b = _evaluate(fit, test)
    assert b["all"]["bottom_precision"] == 1.0 and b["all"]["bottom_recall"] == 1.0
    assert all(b[k]["g.median_rel_err"] <= 1e-6 for k in ABOVE_1E5)


def test_degree_search_falls_back_to_the_most_accurate_candidate() -> None:
    arm = PlanarArm()
    train, calib, _ = _splits(arm, 600, 7)
    fit = fit_generic_head(train, calib, arm, degrees=[(2, 1), (1, 1)], tolerance=0.0)
    assert [(t.numerator_degree, t.denominator_degree) for t in fit.trials] == [
        (1, 1),
        (2, 1),
    ]  # by size
    best = min(fit.trials, key=lambda t: t.calibration_median_rel_err)
    assert (fit.numerator_degree, fit.denominator_degree) == (
        best.numerator_degree,
        best.denominator_degree,
    )
    assert best.calibration_median_rel_err > 1e-2  # too low a degree: no exact fit, and it says so


@pytest.mark.parametrize("degrees", [[], [(1,)], [(1, -1)], [(True, 1)], [("3", 1)]])
def test_degree_search_rejects_bad_degrees(degrees) -> None:
    arm = PlanarArm()
    train, calib, _ = _splits(arm, 100, 0)
    with pytest.raises(InvalidConfigError, match="degrees"):
        fit_generic_head(train, calib, arm, degrees=degrees)


# -- the singular-set report (exact) ---------------------------------------------------------

EXPS2 = monomial_exponents(6, 2)


def _coef(terms: dict[tuple[int, ...], float]) -> np.ndarray:
    c = np.zeros(len(EXPS2))
    for mono, v in terms.items():
        c[EXPS2.index(mono)] += v
    return c


def test_report_recognises_sin_theta2_up_to_scale_and_the_circle_relations() -> None:
    # -0.6*s2 + 0.3*(c1^2 + s1^2 - 1): equal to -0.6*s2 on the arm
    r = singular_set_report(
        EXPS2, _coef({(0, 4): -0.6, (1, 1): 0.3, (2, 2): 0.3, (0, 0): -0.3}), NAMES2, 2
    )
    assert r.matches_reference and r.description == "{s2 = 0}" and r.snap_residual == 0.0
    assert sp.simplify(r.normal_form + sp.Symbol("s2")) == 0
    other = singular_set_report(EXPS2, _coef({(0, 3): 1.0, (0, 0): -0.5}), NAMES2, 2)  # c2 = 1/2
    assert not other.matches_reference and other.description == "{2*c2 - 1 = 0}"
    everywhere = singular_set_report(
        EXPS2, _coef({(3, 3): 1.0, (4, 4): 1.0, (0, 0): -1.0}), NAMES2, 2
    )
    assert everywhere.normal_form == 0 and not everywhere.matches_reference
    assert "whole arm" in everywhere.description
    nowhere = singular_set_report(EXPS2, _coef({(0, 0): 2.0}), NAMES2, 2)
    assert nowhere.factors == () and "no singular configuration" in nowhere.description


def test_report_refuses_coefficients_that_do_not_snap() -> None:
    r = singular_set_report(EXPS2, _coef({(0, 4): 1.0, (0, 3): math.pi / 10}), NAMES2, 2)
    assert r.denominator is None and r.snap_residual == math.inf and not r.matches_reference
    assert "not exact" in r.description
    with pytest.raises(InvalidConfigError, match="identically zero"):
        snap_coefficients(np.zeros(3))
    with pytest.raises(InvalidConfigError, match="first features"):
        singular_set_report(EXPS2, _coef({(0, 4): 1.0}), ("s1", "c1", "c2", "s2", "dx", "dy"), 2)


small = st.fractions(min_value=-3, max_value=3, max_denominator=12)


@settings(max_examples=40, deadline=None)
@given(
    scale=small.filter(lambda f: f != 0),
    g=st.lists(small, min_size=4, max_size=4),
    extra=st.lists(small, min_size=2, max_size=2),
)
def test_report_agrees_with_evaluation_on_the_arm(scale: Fraction, g: list, extra: list) -> None:
    """Q = scale*s2 + (c1^2+s1^2-1)*g1 + ... + extra*(other terms): matches iff Q/s2 is constant on the arm."""
    terms = {(0, 4): float(scale), (0, 0): 0.0}
    rel1, rel2 = ((1, 1), (2, 2)), ((3, 3), (4, 4))
    for rel, coeff in ((rel1, g[0]), (rel2, g[1])):
        for mono in rel:
            terms[mono] = terms.get(mono, 0.0) + float(coeff)
        terms[(0, 0)] -= float(coeff)
    terms[(0, 3)] = float(extra[0])  # c2: changes the zero set unless 0
    terms[(1, 3)] = float(extra[1])  # c1*c2
    c = _coef(terms)
    r = singular_set_report(EXPS2, c, NAMES2, 2)
    # independent reference: evaluate Q / s2 at angles on the arm
    t = np.random.default_rng(0).uniform(-3, 3, size=(64, 2))
    feats = np.column_stack(
        [np.cos(t[:, 0]), np.sin(t[:, 0]), np.cos(t[:, 1]), np.sin(t[:, 1]), 0 * t]
    )
    aug = np.column_stack([np.ones(64), feats])
    Q = sum(v * aug[:, a] * aug[:, b] for (a, b), v in zip(EXPS2, c, strict=True))
    ratio = Q / feats[:, 3]
    assert r.matches_reference == bool(np.allclose(ratio, ratio[0], rtol=1e-9, atol=1e-9))
