"""fit_rational: poles, accuracy on a fine grid, degree selection, bottom rows, noise, multivariate.

Errors are measured on grids of 100,001 points (never only the 512 training
points) as ``|r - f| / max(|f|, 1)`` away from the true poles; pole errors come
from the exact ``pole_report``. The fit is deterministic, so "several seeds"
means several noise draws or random sample sets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper
from zpml_runtime.layers import (
    MultivariateRationalLayer,
    SCMRationalLayer,
    fit_rational,
    pole_report,
    zero_set_report,
)
from zpml_runtime.losses import SCMTrainingLoss
from zpml_runtime.training import SCMTrainer, TrainingConfig

FINE = 100_001


def values(layer: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        P, Q = layer(torch.as_tensor(x, dtype=next(layer.parameters()).dtype))[:2]
    return (P.double() / Q.double()).numpy()


def max_error(layer, f, lo, hi, poles, away):
    x = np.linspace(lo, hi, FINE)
    with np.errstate(all="ignore"):
        fx = f(x)
    r = values(layer, x)
    keep = np.isfinite(fx)
    if poles:
        keep &= np.min(np.abs(x[:, None] - np.asarray(poles)[None, :]), axis=1) > away
    return float(np.max(np.abs(r[keep] - fx[keep]) / np.maximum(np.abs(fx[keep]), 1)))


def pole_errors(report, poles):
    return [min((abs(p - t) for p in report.locations), default=math.inf) for t in poles]


# (name, f, interval, degrees, true poles, pole tolerance / width, error bound, distance to poles)
EXACT = [
    ("1/(x+0.1) [3/3]", lambda x: 1 / (x + 0.1), (-1.0, 1.0), (3, 3), [-0.1]),
    ("1/(1.69-w^2) [2/2]", lambda w: 1 / (1.69 - w**2), (0.0, 2.5), (2, 2), [1.3]),
    ("1/(1.69-w^2) [4/4]", lambda w: 1 / (1.69 - w**2), (0.0, 2.5), (4, 4), [1.3]),
    ("double pole [3/2]", lambda x: 1 / (x - 0.3) ** 2 + x, (-1.0, 1.0), (3, 2), [0.3]),
    (
        "poles 0.02 apart [2/2]",
        lambda x: 1 / (x - 0.3) + 1 / (x - 0.32),
        (-1.0, 1.0),
        (2, 2),
        [0.3, 0.32],
    ),
    (
        "zero between poles [2/2]",
        lambda x: (x - 0.31) / ((x - 0.3) * (x - 0.32)),
        (-1.0, 1.0),
        (2, 2),
        [0.3, 0.32],
    ),
]
APPROX = [
    ("tan [6/6]", np.tan, (-2.0, 2.0), (6, 6), [-math.pi / 2, math.pi / 2]),
    ("gamma [8/8]", special.gamma, (-1.8, 2.5), (8, 8), [-1.0, 0.0]),
    ("digamma [8/8]", special.digamma, (-2.5, 3.0), (8, 8), [-2.0, -1.0, 0.0]),
]


def check_case(f, interval, degrees, poles, pole_tol, err_tol, away, x=None):
    lo, hi = interval
    x = np.linspace(lo, hi, 512) if x is None else x
    with np.errstate(all="ignore"):
        y = f(x)
    layer = fit_rational(x, y, *degrees)
    assert isinstance(layer, SCMRationalLayer) and layer.numerator.dtype == torch.float64
    assert (layer.numerator_degree, layer.denominator_degree) == degrees
    report = pole_report(layer, interval)
    assert len(report.poles) == len(poles), str(report)  # no spurious pole among the poles
    assert max(pole_errors(report, poles), default=0.0) <= pole_tol * (hi - lo), str(report)
    assert max_error(layer, f, lo, hi, poles, away) <= err_tol
    return layer, report


@pytest.mark.parametrize("case", EXACT, ids=[c[0] for c in EXACT])
def test_exact_rational_functions(case):
    _, f, interval, degrees, poles = case
    _, report = check_case(f, interval, degrees, poles, 1e-10, 1e-8, 1e-3)
    assert report.spurious == ()


@pytest.mark.parametrize("case", APPROX, ids=[c[0] for c in APPROX])
def test_meromorphic_functions(case):
    _, f, interval, degrees, poles = case
    check_case(f, interval, degrees, poles, 1e-8, 1e-5, 1e-2)


def test_function_without_real_poles_gets_none():
    f = lambda w: 1 / ((1 - w**2) ** 2 + 0.04 * w**2)  # noqa: E731
    for degrees in ((2, 4), (4, 4), (6, 6)):
        layer, report = check_case(f, (0.0, 2.5), degrees, [], 0.0, 1e-8, 0.0)
        assert report.zeros == ()


def test_overspecified_fit_drops_the_unused_degrees():
    x = np.linspace(0, 2.5, 512)
    layer, info = fit_rational(x, 1 / (1.69 - x**2), 4, 4, return_info=True)
    assert info.effective_degrees == (0, 2)
    # the unused leading coefficients are exactly zero: no extra pole and no doublet
    assert layer.numerator[1:].tolist() == [0.0] * 4 and layer.denominator[3:].tolist() == [0.0] * 2
    assert (4, 4) in [c[:2] for c in info.candidates] and info.snapped > 0
    assert pole_report(layer, (0, 2.5)).zeros == pole_report(layer, (0, 2.5)).poles


def test_without_degree_selection_the_doublets_appear_and_are_flagged():
    # the mechanism the defaults switch on: an over-specified noisy fit grows Froissart doublets
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 512)
    y = 1 / (x + 0.1) * (1 + 0.01 * rng.standard_normal(512))
    raw = fit_rational(x, y, 3, 3, reduce_degree=False, remove_spurious=False)
    with_data = pole_report(raw, (-1, 1), data=(x, y))
    assert len(with_data.poles) == 1 and len(with_data.spurious) >= 1
    assert abs(with_data.poles[0].location + 0.1) < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sample_positions(seed):
    x = np.sort(np.random.default_rng(seed).uniform(-1, 1, 512))
    check_case(lambda x: 1 / (x + 0.1), (-1.0, 1.0), (3, 3), [-0.1], 1e-10, 1e-8, 1e-3, x=x)


def random_rational(seed):
    rng = np.random.default_rng(seed)
    poles = np.sort(rng.uniform(-0.9, 0.9, rng.integers(1, 4)))
    zeros = rng.uniform(-1.5, 1.5, rng.integers(0, 3))
    c, s = rng.uniform(-1, 1), rng.uniform(0.1, 0.5)  # plus a complex pole pair

    def f(x):
        num = np.prod([x - z for z in zeros], axis=0) if zeros.size else np.ones_like(x)
        return num / np.prod([x - p for p in poles], axis=0) / ((x - c) ** 2 + s**2)

    return f, poles, (len(zeros), len(poles) + 2)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("extra", [0, 2])
def test_random_rational_functions(seed, extra):
    """Random poles, zeros and a complex pair; exact type and over-specified by 2."""
    f, poles, (n, m) = random_rational(seed)
    # poles closer than 0.05 to each other are ill-conditioned beyond 1e-10 relative
    check_case(f, (-1.0, 1.0), (n + extra, m + extra), list(poles), 1e-9, 1e-7, 1e-3)


@pytest.mark.parametrize("label", [math.inf, -math.inf, math.nan])
def test_bottom_row_at_the_exact_pole(label):
    x = np.sort(np.concatenate([np.linspace(-1, 1, 512), [-0.1]]))
    with np.errstate(divide="ignore"):
        y = 1 / (x + 0.1)
    y[np.isinf(y)] = label
    layer, info = fit_rational(x, y, 3, 3, return_info=True)
    assert info.bottom_rows == 1 and info.bottom_constraint == "exact"
    report = pole_report(layer, (-1, 1))
    assert len(report.poles) == 1 and abs(report.poles[0].location + 0.1) <= 1e-10 * 2
    assert report.poles[0].bottom
    assert max_error(layer, lambda x: 1 / (x + 0.1), -1, 1, [-0.1], 1e-3) <= 1e-8
    # Q vanishes at the labelled row to rounding: strict inference with a tiny tau returns bottom
    wrapped = SCMInferenceWrapper(layer, config=InferenceConfig(tau_infer=1e-12)).eval()
    _, bottom, _ = wrapped(torch.tensor([-0.1, -0.1 + 1e-3, 0.5], dtype=torch.float64))
    assert bottom.tolist() == [True, False, False]


def noisy_pole_case(seed):
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, 512)
    return x, 1 / (x + 0.1) * (1 + 0.01 * rng.standard_normal(512))


def check_noisy(seed):
    x, y = noisy_pole_case(seed)
    layer = fit_rational(x, y, 3, 3)
    report = pole_report(layer, (-1, 1))
    assert len(report.poles) == 1 and abs(report.poles[0].location + 0.1) <= 1e-3, str(report)
    assert len(pole_report(layer, (-1, 1), data=(x, y)).poles) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_percent_noise_exactly_one_pole(seed):
    check_noisy(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 20))
def test_one_percent_noise_exactly_one_pole_more_seeds(seed):
    check_noisy(seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_additive_noise_and_over_specified_degree(seed):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 2.5, 512)
    y = 1 / (1.69 - x**2) + 1e-3 * rng.standard_normal(512)
    report = pole_report(fit_rational(x, y, 6, 6), (0, 2.5))
    assert len(report.poles) == 1 and abs(report.poles[0].location - 1.3) <= 1e-5


def test_monomial_basis_domain_and_weights():
    x = np.linspace(-1, 1, 400)
    y = 1 / (x + 0.1)
    mono = fit_rational(x, y, 2, 2, basis="monomial")
    assert mono.basis == "monomial"
    assert abs(pole_report(mono, (-1, 1)).poles[0].location + 0.1) <= 1e-12
    wide = fit_rational(x, y, 2, 2, domain=(-2.0, 3.0))
    assert wide.domain == (-2.0, 3.0)
    assert abs(pole_report(wide, (-1, 1)).poles[0].location + 0.1) <= 1e-12
    # zero weight on half the rows: the other half alone determine the fit
    w = (x < 0).astype(float)
    half = fit_rational(x, np.where(x < 0, y, 5.0), 2, 2, weights=w)
    assert abs(pole_report(half, (-1, 1)).poles[0].location + 0.1) <= 1e-12


def test_float32_fine_tune_with_scm_trainer_keeps_the_pole():
    x = np.linspace(0, 2.5, 512)
    y = 1 / (1.69 - x**2)
    layer = fit_rational(x, y, 4, 4).to(torch.float32)
    assert layer.numerator.dtype == torch.float32
    before = pole_report(layer, (0, 2.5), data=(x, y))
    assert len(before.poles) == 1 and abs(before.poles[0].location - 1.3) <= 1e-6
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    torch.manual_seed(0)
    # fine-tuning an optimum: a small step (Adam moves every coefficient by ~lr per step)
    trainer = SCMTrainer(
        layer,
        torch.optim.Adam(layer.parameters(), lr=1e-5),
        SCMTrainingLoss(),
        [(xt, yt)],
        config=TrainingConfig(max_epochs=20, progress=False),
    )
    history = trainer.fit()
    assert history[-1]["train_loss"] <= 1e-8  # float32 rounding level of the implicit loss
    after = pole_report(layer, (0, 2.5), data=(x, y))
    assert len(after.poles) == 1 and abs(after.poles[0].location - 1.3) <= 1e-4, str(after)
    assert after.spurious == () and pole_report(layer, (0, 2.5)).spurious == ()
    assert (
        max_error(layer, lambda w: 1 / (1.69 - w**2), 0, 2.5, [1.3], 1e-2) <= 1e-2
    )  # Adam steps ~lr


# ---------------------------------------------------------------- multivariate


def two_link(n, seed, l1=1.0, l2=0.7):
    """Inverse-Jacobian labels of a 2-link arm: ~20% near-singular, ~2% exactly singular rows."""
    rng = np.random.default_rng(seed)
    th1 = rng.uniform(-math.pi, math.pi, n)
    th2 = rng.uniform(-math.pi, math.pi, n)
    near = rng.random(n) < 0.2
    th2[near] = rng.choice([0.0, math.pi], near.sum()) + rng.normal(
        0, 1e-3, near.sum()
    ) * 10 ** rng.uniform(-3, 0, near.sum())
    exact = rng.random(n) < 0.02
    c1, s1, c2 = np.cos(th1), np.sin(th1), np.cos(th2)
    s2 = np.where(exact, 0.0, np.sin(th2))
    c2 = np.where(exact, np.sign(c2), c2)
    dx, dy = rng.normal(size=n), rng.normal(size=n)
    c12, s12 = c1 * c2 - s1 * s2, s1 * c2 + c1 * s2
    det = l1 * l2 * s2
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.stack(
            [
                (l2 * c12 * dx + l2 * s12 * dy) / det,
                (-(l1 * c1 + l2 * c12) * dx - (l1 * s1 + l2 * s12) * dy) / det,
            ],
            axis=1,
        )
    y[exact] = np.inf
    return np.stack([c1, s1, c2, s2, dx, dy], axis=1), y, det, exact


@pytest.mark.parametrize("degrees", [(3, 1), (3, 2)])
def test_two_link_generic_head(degrees):
    feats, y, det, exact = two_link(6000, seed=0)
    train = np.arange(6000) < 4500
    head, info = fit_rational(feats[train], y[train], *degrees, return_info=True)
    assert isinstance(head, MultivariateRationalLayer) and (
        head.in_features,
        head.out_features,
    ) == (6, 2)
    assert info.bottom_constraint == "exact"
    held = ~train
    r = values(head, feats[held])
    ok = np.abs(det[held]) >= 1e-5
    rel = np.abs(r[ok] - y[held][ok]) / np.maximum(np.abs(y[held][ok]), 1)
    assert np.median(rel) <= 1e-6
    wrapped = SCMInferenceWrapper(head, config=InferenceConfig(tau_infer=0.0)).eval()
    _, bottom, _ = wrapped(torch.as_tensor(feats[held]))
    predicted = bottom.all(dim=-1).numpy()
    assert exact[held].any()
    assert (predicted == exact[held]).all()  # precision and recall 1.0 on the exactly singular rows
    report = zero_set_report(head, ["c1", "s1", "c2", "s2", "dx", "dy"])
    assert [str(f) for f, _ in report.factors[0]] == ["s2"] and report.depends_on[0] == (
        report.variables[3],
    )


def test_multivariate_per_output_denominators_and_vector_target():
    rng = np.random.default_rng(1)
    h = rng.uniform(-1, 1, (800, 2))
    y = np.stack([1 / (h[:, 0] - 1.5), h[:, 1] / (1 + h[:, 0] ** 2)], axis=1)
    head = fit_rational(h, y, 1, 2, shared_denominator=False)
    assert not head.shared_denominator
    g = rng.uniform(-1, 1, (5000, 2))
    truth = np.stack([1 / (g[:, 0] - 1.5), g[:, 1] / (1 + g[:, 0] ** 2)], axis=1)
    assert np.max(np.abs(values(head, g) - truth) / np.maximum(np.abs(truth), 1)) <= 1e-10
    single = fit_rational(h, y[:, 0], 1, 1)
    assert single.out_features == 1


def test_feature_relations_do_not_give_a_vanishing_denominator():
    # cos**2 + sin**2 - 1 vanishes on every sample: it must never be taken for Q
    rng = np.random.default_rng(2)
    th = rng.uniform(-3, 3, 500)
    feats = np.stack([np.cos(th), np.sin(th)], axis=1)
    y = np.cos(th) / (1.5 + np.sin(th))
    head = fit_rational(feats, y, 2, 2)
    Q = head(torch.as_tensor(feats))[1].detach().numpy()
    assert np.min(np.abs(Q)) > 1e-3 * np.max(np.abs(Q))
    grid = np.linspace(-3, 3, FINE)
    truth = np.cos(grid) / (1.5 + np.sin(grid))
    assert (
        np.max(np.abs(values(head, np.stack([np.cos(grid), np.sin(grid)], 1))[:, 0] - truth))
        <= 1e-10
    )


# ---------------------------------------------------------------- errors


def test_typed_errors_name_the_culprit():
    x = np.linspace(-1, 1, 10)
    with pytest.raises(InvalidConfigError, match="numerator_degree"):
        fit_rational(x, x, -1, 1)
    with pytest.raises(InvalidConfigError, match="denominator_degree"):
        fit_rational(x, x, 1, 1.5)
    with pytest.raises(InvalidConfigError, match="x must be finite; row 3"):
        fit_rational(np.where(np.arange(10) == 3, np.nan, x), x, 1, 1)
    with pytest.raises(ShapeMismatchError, match="y must have shape"):
        fit_rational(x, x[:5], 1, 1)
    with pytest.raises(ShapeMismatchError, match="y must have shape"):
        fit_rational(x, np.stack([x, x], 1), 1, 1)
    with pytest.raises(ShapeMismatchError, match="x must have shape"):
        fit_rational(np.zeros((2, 2, 2)), np.zeros(2), 1, 1)
    with pytest.raises(InvalidConfigError, match="no finite target"):
        fit_rational(x, np.full(10, np.inf), 1, 1)
    with pytest.raises(InvalidConfigError, match="domain applies to univariate"):
        fit_rational(np.stack([x, x], 1), x, 1, 1, domain=(0, 1))
    with pytest.raises(InvalidConfigError, match="domain must satisfy"):
        fit_rational(x, x, 1, 1, domain=(1, 0))
    with pytest.raises(InvalidConfigError, match="unknown basis"):
        fit_rational(x, x, 1, 1, basis="legendre")
    with pytest.raises(InvalidConfigError, match="dtype"):
        fit_rational(x, x, 1, 1, dtype=torch.float16)
    with pytest.raises(InvalidConfigError, match="weights must be finite"):
        fit_rational(x, x, 1, 1, weights=-np.ones(10))
    with pytest.raises(ShapeMismatchError, match="weights needs one entry per row"):
        fit_rational(x, x, 1, 1, weights=np.ones(3))
    with pytest.raises(UnsupportedInputError, match="must be a real tensor"):
        fit_rational(np.array(["a", "b"]), np.ones(2), 1, 1)
    with pytest.raises(InvalidConfigError, match="tol"):
        fit_rational(x, x, 1, 1, tol=-1.0)
    with pytest.raises(InvalidConfigError, match="exact_bottom must be a bool"):
        fit_rational(x, x, 1, 1, exact_bottom=1)
    with pytest.raises(UnsupportedInputError, match="unknown layer option"):
        fit_rational(x, x, 1, 1, bogus=1)


def test_inputs_as_tensors_and_layer_options():
    x = torch.linspace(-1, 1, 64, dtype=torch.float32)
    layer = fit_rational(x, 1 / (x + 0.1), 1, 1, gradient_policy="project", tau_train=1e-6)
    assert layer.gradient_policy.value == "project" and layer.tau_train == 1e-6
    assert abs(pole_report(layer, (-1, 1)).poles[0].location + float(torch.tensor(0.1))) <= 1e-6
