"""Projective losses (issue 11, item 2): values, gradients, invariants, masks, errors."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from zpml_runtime.errors import (
    InvalidConfigError,
    ModelOutputError,
    ShapeMismatchError,
    UnsupportedInputError,
)
from zpml_runtime.inference import InferenceConfig, strict_inference
from zpml_runtime.losses import (
    LossConfig,
    SCMTrainingLoss,
    censored_loss,
    coverage,
    implicit_loss,
    implicit_residual,
    margin_loss,
    rejection_loss,
    relative_weight,
    sign_consistency_loss,
    soft_coverage_loss,
)
from zpml_runtime.losses.implicit import implicit_loss as implicit_loss_seed_path
from zpml_runtime.training.targets import lift_semantic_targets, lift_targets

INF, NAN = math.inf, math.nan
f64 = torch.float64


def naive(P, Q, Yn, Yd, gamma=0.0, detach=False):
    """The formula as written (no rescaling): the reference for moderate values."""
    den = Q**2 * Yd**2 + P**2 * Yn**2
    if detach:
        den = den.detach()
    return ((P * Yd - Q * Yn) ** 2 / (den + gamma)).mean()


def _f(t: torch.Tensor) -> float:
    return t.detach().item()


def leaf(values, dtype=f64):
    return torch.tensor(values, dtype=dtype, requires_grad=True)


def grads(loss_fn, *tensors):
    for t in tensors:
        t.grad = None
    loss_fn().backward()
    return [torch.zeros_like(t) if t.grad is None else t.grad.clone() for t in tensors]


nonzero = st.floats(0.05, 20.0) | st.floats(-20.0, -0.05)


# --------------------------------------------------------------------------- implicit_loss


def test_seed_import_path_is_the_same_function() -> None:
    assert implicit_loss_seed_path is implicit_loss


@pytest.mark.parametrize("detach", [False, True])
def test_implicit_matches_formula_value_and_gradient(detach: bool) -> None:
    torch.manual_seed(0)
    P, Q = torch.randn(64, 3, dtype=f64), torch.randn(64, 3, dtype=f64)
    Yn, Yd = torch.randn(64, 3, dtype=f64), (torch.rand(64, 3) > 0.2).to(f64)
    a, b = P.clone().requires_grad_(), Q.clone().requires_grad_()
    c, d = P.clone().requires_grad_(), Q.clone().requires_grad_()
    ours = implicit_loss(a, b, Yn, Yd, gamma=0.0, detach_scale=detach)
    ref = naive(c, d, Yn, Yd, detach=detach)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(a.grad, c.grad, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(b.grad, d.grad, rtol=1e-10, atol=1e-14)


def test_implicit_gradcheck() -> None:
    torch.manual_seed(1)
    P, Q = (
        torch.randn(20, dtype=f64, requires_grad=True),
        torch.randn(20, dtype=f64, requires_grad=True),
    )
    Yn, Yd = lift_targets(torch.tensor([1.0, INF, -2.0, NAN, 0.5] * 4, dtype=f64))
    assert torch.autograd.gradcheck(lambda p, q: implicit_loss(p, q, Yn, Yd), (P, Q))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("detach", [False, True])
def test_implicit_gradient_finite_at_singular_points_and_huge_values(dtype, detach) -> None:
    big = 3e38 if dtype == torch.float32 else 1e300
    P = leaf([1.0, 0.0, 0.0, 2.0, big, 1.0, -big, 1e-30], dtype)
    Q = leaf([0.0, 0.0, 0.0, 1.0, 1.0, 1e-30, big, 1e-30], dtype)
    Yn = torch.tensor([1.0, 1.0, 3.0, big, big, -big, 1.0, 0.0], dtype=dtype)
    Yd = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0], dtype=dtype)
    loss = implicit_loss(P, Q, Yn, Yd, detach_scale=detach)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(P.grad).all() and torch.isfinite(Q.grad).all()
    # Q = 0 against a finite target 1: the gradient pushes |Q| up (not a dead zone)
    assert Q.grad[0] != 0


@given(
    st.lists(st.tuples(nonzero, nonzero, st.floats(-5, 5), nonzero), min_size=1, max_size=8),
    st.sampled_from([1e-6, 1e-3, 0.5, 7.0, 1e5, 1e6]),
    st.sampled_from([1.0, -1.0]),
)
def test_implicit_is_scale_invariant_and_radially_flat(rows, scale, sign) -> None:
    P, Q, Yn, Yd = (torch.tensor(col, dtype=f64) for col in zip(*rows, strict=True))
    c = scale * sign
    base = implicit_loss(P, Q, Yn, Yd)
    torch.testing.assert_close(implicit_loss(c * P, c * Q, Yn, Yd), base, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(implicit_loss(P, Q, c * Yn, c * Yd), base, rtol=1e-12, atol=1e-300)
    # detach_scale=False: no gradient along the ray (P, Q) (Euler: the loss is 0-homogeneous),
    # so descent never changes the scale; detach_scale=True: the radial derivative is 2*mean(E)
    p, q = P.clone().requires_grad_(), Q.clone().requires_grad_()
    gp, gq = grads(lambda: implicit_loss(p, q, Yn, Yd, gamma=0.0), p, q)
    radial = (gp * P + gq * Q).sum()
    assert abs(float(radial)) <= 1e-9 * (1.0 + float(base))
    gp, gq = grads(lambda: implicit_loss(p, q, Yn, Yd, gamma=0.0, detach_scale=True), p, q)
    base0 = implicit_loss(P, Q, Yn, Yd, gamma=0.0)
    torch.testing.assert_close((gp * P + gq * Q).sum(), 2 * base0, rtol=1e-9, atol=1e-12)


@given(
    st.lists(
        st.tuples(nonzero, st.floats(-20, 20), st.floats(-20, 20), st.floats(-20, 20)),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([3.0, -0.25, 1e4, -1e-4]),
)
def test_implicit_zero_iff_proportional(rows, c) -> None:
    P, Q, Yn, Yd = (torch.tensor(col, dtype=f64) for col in zip(*rows, strict=True))
    assume(bool(((Yn != 0) | (Yd != 0)).all()))
    assert _f(implicit_loss(P, Q, c * P, c * Q)) <= 1e-24
    elementwise = [
        _f(implicit_loss(P[i : i + 1], Q[i : i + 1], Yn[i : i + 1], Yd[i : i + 1]))
        for i in range(len(rows))
    ]
    for (p, q, yn, yd), e in zip(rows, elementwise, strict=True):
        cross = Fraction(p) * Fraction(yd) - Fraction(q) * Fraction(yn)
        if cross == 0:
            assert e <= 1e-24
        elif abs(float(cross)) > 1e-6 * math.hypot(p, q) * math.hypot(yn, yd):
            assert e > 0


def test_implicit_mask_excludes_rows_even_with_nan_and_inf() -> None:
    P = leaf([1.0, NAN, 2.0, INF])
    Q = leaf([2.0, 1.0, NAN, 1.0])
    Yn = torch.tensor([1.0, 5.0, NAN, 1.0], dtype=f64)
    Yd = torch.ones(4, dtype=f64)
    mask = torch.tensor([True, False, False, False])
    loss = implicit_loss(P, Q, Yn, Yd, mask=mask)
    loss.backward()
    torch.testing.assert_close(loss, implicit_loss(P[:1], Q[:1], Yn[:1], Yd[:1]))
    assert torch.isfinite(P.grad).all() and (P.grad[1:] == 0).all() and (Q.grad[1:] == 0).all()
    assert not torch.isfinite(implicit_loss(P, Q, Yn, Yd))  # without the mask the NaN shows
    empty = implicit_loss(P, Q, Yn, Yd, mask=torch.zeros(4, dtype=torch.bool))
    assert _f(empty) == 0.0


def test_implicit_weight_and_row_masks() -> None:
    torch.manual_seed(2)
    P, Q, Yn = (
        torch.randn(3, 2, dtype=f64),
        torch.randn(3, 2, dtype=f64),
        torch.randn(3, 2, dtype=f64),
    )
    Yd = torch.ones(3, 2, dtype=f64)
    w = torch.tensor([2.0, 1.0, 0.0], dtype=f64)  # one entry per row
    dup = lambda t: torch.cat([t[:1], t[:1], t[1:2]])  # noqa: E731
    torch.testing.assert_close(
        implicit_loss(P, Q, Yn, Yd, weight=w), implicit_loss(*map(dup, (P, Q, Yn, Yd)))
    )
    row_mask = torch.tensor([True, False, True])
    torch.testing.assert_close(
        implicit_loss(P, Q, Yn, Yd, mask=row_mask),
        implicit_loss(P[row_mask], Q[row_mask], Yn[row_mask], Yd[row_mask]),
    )


def test_implicit_shape_and_type_errors() -> None:
    P = torch.zeros(4, 1)
    with pytest.raises(
        ShapeMismatchError, match=r"Y_n has shape \(4,\) but P has shape \(4, 1\).*unsqueeze"
    ):
        implicit_loss(P, P, torch.zeros(4), torch.zeros(4))
    with pytest.raises(ShapeMismatchError, match=r"Q has shape \(3, 1\) but P has shape \(4, 1\)"):
        implicit_loss(P, torch.zeros(3, 1), P, P)
    with pytest.raises(UnsupportedInputError, match="P must be a torch.Tensor, got list"):
        implicit_loss([1.0], P, P, P)
    with pytest.raises(UnsupportedInputError, match="Q has dtype torch.int64"):
        implicit_loss(P, torch.zeros(4, 1, dtype=torch.int64), P, P)
    with pytest.raises(InvalidConfigError, match="gamma must be a finite number >= 0"):
        implicit_loss(P, P, P, P, gamma=-1.0)
    with pytest.raises(UnsupportedInputError, match="mask has dtype torch.float32.*weight="):
        implicit_loss(P, P, P, P, mask=torch.ones(4))
    with pytest.raises(ShapeMismatchError, match=r"mask has shape \(5,\); expected \(4, 1\)"):
        implicit_loss(P, P, P, P, mask=torch.ones(5, dtype=torch.bool))
    # numpy targets are accepted and cast to P's dtype
    assert implicit_loss(P, P + 1, np.zeros((4, 1)), np.ones((4, 1))).dtype == torch.float32


# --------------------------------------------------------------------------- margin / sign / censored


def test_margin_loss_values_and_push_at_exact_zero() -> None:
    Q = leaf([0.0, 0.05, -0.05, 0.2, -1.0])
    loss = margin_loss(Q, 0.1)
    torch.testing.assert_close(loss, torch.tensor((0.01 + 0.0025 + 0.0025) / 5, dtype=f64))
    loss.backward()
    assert Q.grad[0] < 0 and Q.grad[1] < 0 and Q.grad[2] > 0  # descent moves |Q| up, also at 0
    assert (Q.grad[3:] == 0).all()
    assert _f(margin_loss(Q, 0.0)) == 0.0
    per_output = margin_loss(torch.zeros(2, 2), torch.tensor([0.1, 0.0]))
    torch.testing.assert_close(per_output, torch.tensor(0.005))


@pytest.mark.parametrize("bad", [-1e-3, NAN, INF, True, "0.1", None])
def test_tau_train_is_validated(bad) -> None:
    with pytest.raises(InvalidConfigError, match="tau_train must be a finite number >= 0"):
        margin_loss(torch.zeros(3), bad)
    with pytest.raises(InvalidConfigError, match="tau_train must be a finite number >= 0"):
        SCMTrainingLoss()(
            (torch.ones(3), torch.ones(3)),
            lift_targets(torch.ones(3)),
            tau_train=bad if bad is not None else NAN,
        )


def test_per_output_tau_shape_mismatch() -> None:
    with pytest.raises(ShapeMismatchError, match=r"tau_train has shape \(3,\).*shape \(2,\)"):
        margin_loss(torch.zeros(4, 2), torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ShapeMismatchError, match=r"tau has shape \(2, 1\)"):
        coverage(torch.zeros(4, 2), torch.zeros(2, 1))


def test_sign_consistency_orientation_and_gauge() -> None:
    Yn, Yd = lift_targets(torch.tensor([INF, INF, -INF, -INF, 2.0], dtype=f64))
    P = leaf([1.0, 1.0, 1.0, -1.0, 5.0])
    Q = leaf([0.1, -0.1, 0.1, 0.1, -9.0])  # values +10, -10, +10, -10, finite row
    per_row = [
        _f(sign_consistency_loss(P[i : i + 1], Q[i : i + 1], Yn[i : i + 1], Yd[i : i + 1]))
        for i in range(4)
    ]
    assert per_row[0] == 0.0 and per_row[3] == 0.0  # right side of the pole
    assert per_row[1] > 0 and per_row[2] > 0  # wrong side
    # depends on the projective point only: (-P, -Q) is the same value
    torch.testing.assert_close(
        sign_consistency_loss(-P, -Q, Yn, Yd), sign_consistency_loss(P, Q, Yn, Yd)
    )
    loss = sign_consistency_loss(P, Q, Yn, Yd)
    loss.backward()
    assert P.grad[4] == 0 and Q.grad[4] == 0  # finite target rows are not its business
    assert Q.grad[1] != 0  # on the wrong side next to the pole the gradient does not vanish
    assert _f(sign_consistency_loss(P, Q, Yn, Yd, mask=torch.tensor([1, 0, 0, 1, 1]).bool())) == 0.0


def test_censored_loss_is_one_sided() -> None:
    P = leaf([3.0, 1.0, 3.0, 1.0])
    Q = torch.ones(4, dtype=f64)
    Yn, Yd = torch.full((4,), 2.0, dtype=f64), torch.ones(4, dtype=f64)
    direction = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=f64)  # above, above, below, below
    per = [
        _f(
            censored_loss(
                P[i : i + 1],
                Q[i : i + 1],
                Yn[i : i + 1],
                Yd[i : i + 1],
                direction=int(direction[i]),
            )
        )
        for i in range(4)
    ]
    assert per[0] == 0.0 and per[3] == 0.0 and per[1] > 0 and per[2] > 0
    censored_loss(P, Q, Yn, Yd, direction=direction).backward()
    assert P.grad[0] == 0 and P.grad[3] == 0 and P.grad[1] < 0 and P.grad[2] > 0
    with pytest.raises(InvalidConfigError, match="direction must be"):
        censored_loss(P, Q, Yn, Yd, direction=2)


# --------------------------------------------------------------------------- coverage


def test_coverage_counts_like_strict_inference() -> None:
    Q = torch.tensor([0.0, 1e-7, 1e-4, -1.0, NAN, INF], requires_grad=True)
    cov = coverage(Q, 1e-4)
    assert not cov.requires_grad and cov.dtype == torch.float32
    # float32(1e-4) = 9.99999975e-05 is below the real threshold 1e-4: bottom, exactly as
    # strict_inference decides (thresholds round up, never to nearest); only -1.0 is accepted
    want = (
        (
            ~strict_inference(
                torch.ones(6), Q.detach(), config=InferenceConfig(tau_infer=1e-4)
            ).bottom_mask
        )
        .float()
        .mean()
    )
    torch.testing.assert_close(cov, want)
    torch.testing.assert_close(cov, torch.tensor(1 / 6))
    torch.testing.assert_close(
        coverage(Q, 0.0), torch.tensor(3 / 6)
    )  # exact zero rejected at tau 0
    torch.testing.assert_close(
        coverage(Q, 1e-4, mask=torch.tensor([1, 1, 1, 0, 1, 0]).bool()), torch.tensor(0.0)
    )  # the included rows are all bottom
    torch.testing.assert_close(
        coverage(Q, 1e-4, mask=torch.tensor([0, 0, 1, 1, 0, 0]).bool()), torch.tensor(1 / 2)
    )
    assert torch.isnan(coverage(Q, 1e-4, mask=torch.zeros(6, dtype=torch.bool)))


def test_soft_coverage_is_differentiable_and_one_sided() -> None:
    Q = leaf([1e-6, 2e-6, 1.0, 1e-5])
    loss = soft_coverage_loss(Q, 1e-4, target_coverage=0.9)
    assert _f(loss) > 0
    loss.backward()
    assert (Q.grad < 0).all()  # descent raises |Q| for the rejected entries
    assert rejection_loss is soft_coverage_loss
    high = torch.full((8,), 1.0, dtype=f64, requires_grad=True)
    loss = soft_coverage_loss(high, 1e-4, target_coverage=0.9)
    loss.backward()
    assert _f(loss) == 0.0 and (high.grad == 0).all()
    # tau = 0 and Q = 0 stay finite
    z = torch.zeros(3, requires_grad=True)
    soft_coverage_loss(z, 0.0).backward()
    assert torch.isfinite(z.grad).all()
    with pytest.raises(InvalidConfigError, match=r"target_coverage must be a number in \[0, 1\]"):
        soft_coverage_loss(Q, 1e-4, target_coverage=1.5)
    with pytest.raises(InvalidConfigError, match="temperature must be a finite number > 0"):
        soft_coverage_loss(Q, 1e-4, temperature=0.0)


# --------------------------------------------------------------------------- SCMTrainingLoss


def mixed_batch():
    """A batch where every term has rows: finite, oriented bottom, censored, missing (NaN output)."""
    values = torch.tensor([1.0, 2.0, 1e-3, INF, -INF, 0.5, 3.0, NAN], dtype=f64)
    labels = [
        "finite",
        "finite",
        "finite",
        "bottom",
        "bottom",
        "censored_above",
        "censored_below",
        "missing",
    ]
    targets = lift_semantic_targets(values, labels)
    P = leaf([0.5, 2.0, 1.0, 1.0, 1.0, 0.1, 9.0, NAN])
    Q = leaf([1.0, 1e-6, 1.0, 0.2, 0.2, 1.0, 1.0, NAN])
    V = torch.tensor(
        [[1.0], [1.0], [1e-7], [1.0], [1.0], [1.0], [1.0], [1.0]], dtype=f64, requires_grad=True
    )
    return P, Q, V, targets


TERMS = ("implicit", "margin", "sign", "rejection", "censored", "validity")


def _grad_with(term: str, weight: float, batch):
    P, Q, V, targets = batch
    base = dict.fromkeys(TERMS, 0.0)
    base["implicit"] = 1.0
    base[term] = weight if term != "implicit" else weight
    loss = SCMTrainingLoss(LossConfig(**base, target_coverage=1.0))
    gP, gQ, gV = grads(lambda: loss((P, Q, V), targets, tau_train=1e-3), P, Q, V)
    return torch.cat([gP, gQ, gV.flatten()]), loss.last_terms


@pytest.mark.parametrize("term", TERMS)
def test_each_term_acts_where_it_applies(term: str) -> None:
    batch = mixed_batch()
    g_on, terms = _grad_with(term, 1.0, batch)
    g_off, _ = _grad_with(term, 0.0 if term != "implicit" else 2.0, batch)
    assert torch.isfinite(g_on).all()
    assert terms[term] > 0
    assert not torch.allclose(g_on, g_off)


@pytest.mark.parametrize("term", ["margin", "sign", "rejection", "censored", "validity"])
def test_each_term_is_inert_where_it_does_not_apply(term: str) -> None:
    # all targets finite and well fitted, |Q| and |V| far above tau, nothing censored or oriented
    targets = lift_semantic_targets(torch.tensor([1.0, 2.0, 4.0], dtype=f64), ["finite"] * 3)
    P, Q = leaf([1.1, 2.0, 3.0]), leaf([1.0, 1.0, 1.0])
    V = torch.ones(3, 1, dtype=f64, requires_grad=True)
    out = []
    for w in (0.0, 1.0):
        cfg = dict.fromkeys(TERMS, 0.0)
        cfg["implicit"], cfg[term] = 1.0, w
        loss = SCMTrainingLoss(LossConfig(**cfg, target_coverage=0.9))
        g = grads(lambda loss=loss: loss((P, Q, V), targets, tau_train=1e-3), P, Q, V)
        out.append(torch.cat([t.flatten() for t in g]))
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)


def test_bottom_rows_are_trained_and_missing_rows_enter_no_term() -> None:
    P, Q, V, targets = mixed_batch()
    loss = SCMTrainingLoss(LossConfig(rejection=1.0))
    total = loss((P, Q, V), targets, tau_train=1e-3)
    total.backward()
    assert torch.isfinite(total)
    assert Q.grad[3] != 0 and Q.grad[4] != 0  # bottom targets pull Q towards 0 (not dropped)
    assert P.grad[7] == 0 and Q.grad[7] == 0 and V.grad[7, 0] == 0  # missing row with NaN outputs
    assert torch.isfinite(P.grad).all() and torch.isfinite(Q.grad).all()
    parts = loss.last_terms
    expected = sum(
        LossConfig(rejection=1.0).weights()[k] * v for k, v in parts.items() if k != "total"
    )
    assert parts["total"] == pytest.approx(expected, rel=1e-12)


def test_tuple_targets_match_semantic_targets_on_plain_data() -> None:
    values = torch.tensor([1.0, -2.0, INF, 0.25], dtype=f64)
    P, Q = leaf([0.9, -2.0, 1.0, 1.0]), leaf([1.0, 1.0, 0.3, 2.0])
    loss = SCMTrainingLoss(LossConfig(sign=0.0))
    a = loss((P, Q), lift_targets(values), tau_train=1e-2)
    b = loss(
        (P, Q),
        lift_semantic_targets(values, ["finite", "finite", "bottom", "finite"]),
        tau_train=1e-2,
    )
    torch.testing.assert_close(a, b)
    c = loss(
        (P, Q),
        lift_semantic_targets(values.numpy(), ["finite", "finite", "bottom", "finite"]),
        tau_train=1e-2,
    )
    torch.testing.assert_close(a, c)


def test_rows_bottom_through_validity_factors() -> None:
    targets = lift_semantic_targets(torch.tensor([INF, INF], dtype=f64), ["bottom", "bottom"])
    P, Q = leaf([1.0, 1.0]), leaf([0.5, 0.5])
    V = [torch.tensor([0.0, 1.0], dtype=f64)]  # a sequence of factor tensors; row 0 bottom by V
    loss = SCMTrainingLoss(LossConfig(sign=0.0))
    loss((P, Q, V), targets, tau_train=1e-3).backward()
    assert Q.grad[0] == 0 and Q.grad[1] != 0
    with pytest.raises(ModelOutputError, match=r"V has shape \(3, 1\)"):
        loss((P, Q, torch.ones(3, 1, dtype=f64)), targets, tau_train=1e-3)


def test_scm_training_loss_errors() -> None:
    loss = SCMTrainingLoss(LossConfig(tau_infer=1e-4, tau_train=1e-3))
    P = torch.ones(3)
    t = lift_targets(torch.ones(3))
    with pytest.raises(
        InvalidConfigError, match=r"tau_train=1e-06 must be >= LossConfig.tau_infer=0.0001"
    ):
        loss((P, P), t, tau_train=1e-6)
    with pytest.raises(ModelOutputError, match=r"outputs must be \(P, Q\) or \(P, Q, V\).*raw"):
        loss((P, P, P, P), t, tau_train=1e-3)
    with pytest.raises(UnsupportedInputError, match="targets must be SemanticTargets or a"):
        loss((P, P), torch.ones(3), tau_train=1e-3)
    with pytest.raises(
        ShapeMismatchError, match=r"targets has shape \(3,\) but P has shape \(3, 1\)"
    ):
        loss(
            (P[:, None], P[:, None]), lift_semantic_targets(torch.ones(3), "finite"), tau_train=1e-3
        )
    with pytest.raises(UnsupportedInputError, match="config must be a LossConfig"):
        SCMTrainingLoss({"implicit": 1.0})  # type: ignore[arg-type]
    assert _f(loss((P, P), t)) >= 0.0  # tau_train omitted: the config's value


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("margin", -1.0, "LossConfig.margin must be a finite number >= 0"),
        ("gamma", NAN, "LossConfig.gamma"),
        ("target_coverage", 2.0, "target_coverage must be in"),
        ("temperature", 0.0, "temperature must be finite and > 0"),
        ("tau_infer", 1.0, "tau_train=0.0001 must be >= tau_infer=1.0"),
        ("detach_scale", 1, "detach_scale must be a bool"),
        ("weighting", "angle", "weighting must be 'uniform' or 'relative'"),
        ("weight_cap", 1.5, "weight_cap must be >= 2"),
        ("weight_power", 0.0, "weight_power must be in"),
    ],
)
def test_loss_config_validation(field, value, match) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        LossConfig(**{field: value})


def test_fit_through_a_pole_with_bottom_targets() -> None:
    """End to end: a degree-(1, 1) rational trained on 1/(x + 0.1) with the pole row labelled bottom."""
    torch.manual_seed(0)
    x = torch.linspace(-1.0, 1.0, 65, dtype=f64)
    x = torch.cat([x, torch.tensor([-0.1], dtype=f64)])
    y = 1.0 / (x + 0.1)
    labels = ["finite"] * 65 + ["bottom"]
    y[-1] = NAN
    targets = lift_semantic_targets(y, labels)
    a = torch.tensor([0.5, 0.1, 1.0, 0.3], dtype=f64, requires_grad=True)  # a0, a1, b0, b1
    opt = torch.optim.Adam([a], lr=0.05)
    loss = SCMTrainingLoss()
    for _ in range(400):
        opt.zero_grad()
        P = a[0] + a[1] * x
        Q = a[2] + a[3] * x
        loss((P, Q), targets, tau_train=1e-4).backward()
        opt.step()
    pole = -(a[2] / a[3]).item()
    assert abs(pole + 0.1) < 1e-6  # measured 5.7e-10
    assert loss.last_terms["implicit"] < 1e-4


# --------------------------------------------------------------------------- relative weighting


@given(
    y=st.floats(1e-6, 1e6) | st.floats(-1e6, -1e-6),
    scale=st.floats(1e-3, 1e3),
    cap=st.floats(2.0, 1e4),
)
def test_relative_weight_is_abs_y_plus_reciprocal_capped(y, scale, cap) -> None:
    """Independent reference in exact rationals: 1/|sin cos| of phi = acot(y) is |y| + 1/|y|."""
    Yn = torch.tensor([y * scale], dtype=f64)
    Yd = torch.tensor([scale], dtype=f64)
    fy = Fraction(abs(y))
    ref = min(fy + 1 / fy, Fraction(cap))
    got = relative_weight(Yn, Yd, cap)
    assert abs(Fraction(got.item()) - ref) <= Fraction(1, 10**12) * ref
    # symmetric under y -> 1/y (zeros and poles alike) and under the sign of either component
    torch.testing.assert_close(relative_weight(Yd, Yn, cap), got, rtol=1e-12, atol=0)
    torch.testing.assert_close(relative_weight(-Yn, Yd, cap), got, rtol=0, atol=0)


def test_relative_weight_caps_bottom_zero_and_null_rows() -> None:
    Yn = torch.tensor([1.0, -1.0, 0.0, 0.0, 1.0], dtype=f64)
    Yd = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0], dtype=f64)
    assert relative_weight(Yn, Yd, 30.0).tolist() == [30.0, 30.0, 30.0, 30.0, 2.0]
    with pytest.raises(InvalidConfigError, match="cap must be >= 2"):
        relative_weight(Yn, Yd, 1.0)
    with pytest.raises(InvalidConfigError, match="cap"):
        relative_weight(Yn, Yd, NAN)


def test_relative_weighting_power_2_is_the_relative_error() -> None:
    """v = y (1 + e) on rows of very different |y|: with power 2 every row's weighted residual is
    within 2x of e**2 (relative error); uniform rows differ by > 100x, power 1 lies in between."""
    y = torch.tensor([0.05, 0.5, 1.0, 3.0, 20.0], dtype=f64)
    e = 1e-4
    P, Q = y * (1 + e), torch.ones_like(y)
    Yn, Yd = lift_targets(y)
    E = implicit_residual(P, Q, Yn, Yd, 0.0)
    for power, lo, hi in ((2.0, 1.0, 2.0 + 1e-3), (1.0, 0.04, 1.0 + 1e-3)):
        scaled = E * relative_weight(Yn, Yd, cap=1e9, power=power) / e**2
        assert lo * 0.999 < float(scaled.min()) and float(scaled.max()) < hi, (power, scaled)
    assert float(E.max() / E.min()) > 100  # the uniform residual barely sees y = 20 and y = 0.05
    with pytest.raises(InvalidConfigError, match="power must be in"):
        relative_weight(Yn, Yd, power=3.0)


def test_relative_weighting_combines_with_weight_and_mask() -> None:
    torch.manual_seed(3)
    P, Q, Yn = (torch.randn(6, dtype=f64) for _ in range(3))
    Yd = torch.ones(6, dtype=f64)
    Yn[5] = NAN  # masked out: must not poison the weighted mean
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], dtype=f64)
    mask = torch.tensor([True, True, True, True, True, False])
    got = implicit_loss(P, Q, Yn, Yd, mask=mask, weight=w, weighting="relative", weight_cap=50.0)
    rw = relative_weight(Yn[:5], Yd[:5], 50.0) * w[:5]
    ref = implicit_loss(P[:5], Q[:5], Yn[:5], Yd[:5], weight=rw)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)
    # a weighted mean: scaling every weight leaves it unchanged
    torch.testing.assert_close(
        implicit_loss(P[:5], Q[:5], Yn[:5], Yd[:5], weight=7 * rw), ref, rtol=1e-12, atol=0
    )
    with pytest.raises(InvalidConfigError, match="weighting must be one of"):
        implicit_loss(P, Q, Yn, Yd, weighting="angle")


def test_scm_training_loss_passes_the_weighting() -> None:
    y = torch.tensor([0.05, 0.5, 2.0, 40.0], dtype=f64)
    targets = lift_targets(y)
    P, Q = y * 1.01, torch.ones_like(y)
    cfg = LossConfig(margin=0.0, sign=0.0, validity=0.0, weighting="relative", weight_cap=100.0)
    got = SCMTrainingLoss(cfg)((P, Q), targets, tau_train=1e-4)
    torch.testing.assert_close(
        got, implicit_loss(P, Q, *targets, weighting="relative", weight_cap=100.0)
    )
    assert (
        got.item()
        != SCMTrainingLoss(LossConfig(margin=0.0, sign=0.0, validity=0.0))((P, Q), targets).item()
    )
