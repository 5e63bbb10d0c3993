"""zpml_runtime.layers: gradient policies, the four layer kinds, errors, strict eval in the wrapper."""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper
from zpml_runtime.layers import (
    AngularProjectiveHead,
    GaugePolicy,
    GradientPolicy,
    MultivariateRationalLayer,
    RationalTemplateLayer,
    SCMRationalLayer,
    TemplateError,
    apply_gradient_policy,
    bottom_under_tau,
    monomial_exponents,
)
from zpml_runtime.layers.angular_projective import AngularProjectiveHead as SeedPath

F64 = torch.float64


# ---------------------------------------------------------------- gradient policy


def _grads(policy, P, Q, V=None, tau=0.0):
    P = P.clone().requires_grad_(True)
    Q = Q.clone().requires_grad_(True)
    outs = apply_gradient_policy(P, Q, V, policy=policy, tau=tau, clamp_value=1.0)
    torch.testing.assert_close(outs[0], P, rtol=0, atol=0, equal_nan=True)  # values unchanged
    torch.testing.assert_close(outs[1], Q, rtol=0, atol=0, equal_nan=True)
    (3.0 * outs[0] + 5.0 * outs[1]).sum().backward()
    return P.grad, Q.grad


def test_policies_on_a_batch_with_bottoms():
    P = torch.tensor([1.0, 2.0, 3.0, math.nan])
    Q = torch.tensor([0.5, 0.0, 1e-5, 1.0])  # 0 exact, 1e-5 below tau, NaN fault in P
    g = _grads("passthrough", P, Q, tau=1e-3)
    assert g[0].tolist() == [3.0] * 4 and g[1].tolist() == [5.0] * 4
    g = _grads(GradientPolicy.PROJECT, P, Q, tau=1e-3)
    assert g[0].tolist() == [3.0, 0, 0, 0] and g[1].tolist() == [5.0, 0, 0, 0]
    g = _grads(GradientPolicy.PROJECT, P, Q, tau=0.0)  # exact zeros only
    assert g[0].tolist() == [3.0, 0, 3.0, 0]
    g = _grads(GradientPolicy.CLAMP, P, Q, tau=1e-3)
    assert g[0].tolist() == [1.0, 0, 0, 0] and g[1].tolist() == [1.0, 0, 0, 0]
    g = _grads(GradientPolicy.REJECT, P, Q, tau=1e-3)
    assert g[0].tolist() == [0.0] * 4
    ok = torch.tensor([1.0, 2.0])
    g = _grads(GradientPolicy.REJECT, ok, ok)
    assert g[0].tolist() == [3.0, 3.0]  # no bottom: untouched


def test_validity_factors_mask_the_gradient():
    P, Q = torch.ones(3), torch.ones(3)
    V = torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 1e-9]], requires_grad=True)
    assert bottom_under_tau(P, Q, V, tau=1e-6).tolist() == [False, True, True]
    _, _, v = apply_gradient_policy(P, Q, V, policy="project", tau=1e-6)
    v.sum().backward()
    assert V.grad.tolist() == [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]


def test_passthrough_inserts_nothing():
    P = torch.ones(2, requires_grad=True)
    out = apply_gradient_policy(P, P * 2, policy=GradientPolicy.PASSTHROUGH)
    assert out[0] is P
    with torch.no_grad():
        assert apply_gradient_policy(P, P, policy="project")[0] is P


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.sampled_from([0.0, 1e-8, -1e-4, 0.3, -2.0, math.inf, math.nan]), min_size=1, max_size=12
    ),
    st.sampled_from([0.0, 1e-6, 1e-3]),
)
def test_project_zeroes_exactly_the_bottom_samples(qs, tau):
    Q = torch.tensor(qs, dtype=F64)
    P = torch.linspace(-1, 1, len(qs), dtype=F64)
    gP, gQ = _grads("project", P, Q, tau=tau)
    expected = [not (math.isfinite(q) and q != 0 and abs(q) >= tau) for q in qs]
    assert [g == 0 for g in gP.tolist()] == expected
    assert [g == 0 for g in gQ.tolist()] == expected


def test_policy_parse_errors():
    assert GradientPolicy.parse("PROJECT") is GradientPolicy.PROJECT
    with pytest.raises(InvalidConfigError, match="unknown gradient_policy 'freeze'"):
        GradientPolicy.parse("freeze")
    with pytest.raises(InvalidConfigError, match="tau_train must be a finite number >= 0"):
        SCMRationalLayer(1, 1, tau_train=-1.0)
    with pytest.raises(InvalidConfigError, match="clamp_value must be a finite number > 0"):
        SCMRationalLayer(1, 1, clamp_value=0)


def test_layer_honours_project_under_its_tau_train():
    layer = SCMRationalLayer(
        1,
        1,
        numerator_init=[1.0, 0.0],
        denominator_init=[0.1, 1.0],
        gradient_policy="project",
        tau_train=0.05,
        dtype=F64,
    )
    x = torch.tensor([-0.1, -0.12, 0.5], dtype=F64)  # Q = 0, -0.02 (< tau), 0.6
    P, Q = layer(x)
    (P / Q.clamp(min=1e-300).abs()).sum().backward()  # would be inf/huge at the pole
    g = layer.denominator.grad
    assert torch.isfinite(g).all()
    layer.zero_grad()
    P, Q = layer(x[2:])
    (P / Q.abs()).sum().backward()
    assert torch.equal(layer.denominator.grad, g)  # only the non-bottom sample contributed


# ---------------------------------------------------------------- angular head


def test_angular_head_unit_circle_and_seed_path():
    assert SeedPath is AngularProjectiveHead
    torch.manual_seed(0)
    head = AngularProjectiveHead(input_dim=5, output_dim=3, theta_scale=2.0)
    h = torch.randn(7, 5)
    P, Q = head(h)
    assert P.shape == Q.shape == (7, 3)
    assert torch.allclose(P**2 + Q**2, torch.ones(7, 3))
    theta = 2.0 * head.linear(h)
    assert torch.allclose(Q, torch.sin(theta)) and torch.allclose(P, torch.cos(theta))
    assert head.gauge is GaugePolicy.ANGULAR_UNIT_CIRCLE and head.can_reach_bottom


def test_angular_head_errors():
    with pytest.raises(InvalidConfigError, match="input_dim must be an integer >= 1"):
        AngularProjectiveHead(0)
    with pytest.raises(InvalidConfigError, match="theta_scale must be a finite nonzero"):
        AngularProjectiveHead(3, theta_scale=math.inf)
    with pytest.raises(
        ShapeMismatchError, match=r"expects input of shape \[\.\.\., 4\], got \[2, 3\]"
    ):
        AngularProjectiveHead(4)(torch.zeros(2, 3))
    with pytest.raises(
        UnsupportedInputError,
        match="expects a floating input of dtype torch.float32, got torch.int64",
    ):
        AngularProjectiveHead(3)(torch.zeros(2, 3, dtype=torch.long))


# ---------------------------------------------------------------- univariate rational


def _eval_exact(poly: sp.Poly, xs):
    return [float(poly.eval(sp.Rational(v))) for v in xs]


@pytest.mark.parametrize("basis", ["monomial", "chebyshev"])
def test_rational_layer_matches_its_exact_polynomials(basis):
    torch.manual_seed(1)
    layer = SCMRationalLayer(
        3,
        4,
        basis=basis,
        domain=(-2.0, 3.0),
        dtype=F64,
        numerator_init=torch.randn(4),
        denominator_init=torch.randn(5),
    )
    x = torch.linspace(-2, 3, 9, dtype=F64)
    P, Q = layer(x.reshape(3, 3))
    assert P.shape == (3, 3)
    Pe, Qe = layer.exact_polynomials()
    assert torch.allclose(
        P.reshape(-1), torch.tensor(_eval_exact(Pe, x.tolist()), dtype=F64), atol=1e-12
    )
    assert torch.allclose(
        Q.reshape(-1), torch.tensor(_eval_exact(Qe, x.tolist()), dtype=F64), atol=1e-12
    )


def test_rational_layer_default_init_is_identity_and_q_can_vanish():
    for basis in ("monomial", "chebyshev"):
        layer = SCMRationalLayer(2, 2, basis=basis, domain=(0.0, 4.0))
        x = torch.tensor([0.0, 1.5, 4.0])
        P, Q = layer(x)
        assert torch.allclose(P, x) and torch.equal(Q, torch.ones(3))
    # no floor: an exact zero of Q is an exact zero (and decodes to bottom)
    layer = SCMRationalLayer(0, 1, denominator_init=[-0.5, 1.0])
    P, Q = layer(torch.tensor([0.5, 1.0]))
    assert Q.tolist() == [0.0, 0.5] and SCMRationalLayer.can_reach_bottom


def test_rational_layer_to_sympy_round_trips_exactly_and_rounds_for_display():
    layer = SCMRationalLayer(1, 1, numerator_init=[1.0, 0.0], denominator_init=[0.1, 1.0])
    exact = layer.to_sympy()
    x = sp.Symbol("x")
    Q = sp.Poly(sp.denom(sp.together(exact)), x)
    b0 = Q.coeff_monomial(1) / Q.coeff_monomial(x)
    assert float(b0) == layer.denominator[0].item()  # exact round trip of the float32 value
    assert b0 != sp.Rational(1, 10)
    assert str(layer.to_sympy(digits=3)) == "1.0/(1.0*x + 0.1)"
    with pytest.raises(InvalidConfigError, match="digits must be None"):
        layer.to_sympy(digits=0)


def test_rational_layer_errors():
    with pytest.raises(
        InvalidConfigError, match="numerator_degree must be an integer >= 0, got -1"
    ):
        SCMRationalLayer(-1, 2)
    with pytest.raises(
        InvalidConfigError, match="denominator_degree must be an integer >= 0, got 1.5"
    ):
        SCMRationalLayer(1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(
        InvalidConfigError,
        match="unknown basis 'legendre'; expected one of 'monomial', 'chebyshev'",
    ):
        SCMRationalLayer(1, 1, basis="legendre")
    with pytest.raises(InvalidConfigError, match="domain must satisfy lo < hi"):
        SCMRationalLayer(1, 1, basis="chebyshev", domain=(1.0, 1.0))
    with pytest.raises(ShapeMismatchError, match="denominator_init needs 3 coefficients"):
        SCMRationalLayer(1, 2, denominator_init=[1.0])
    with pytest.raises(
        UnsupportedInputError, match="expects input dtype torch.float32 .* got torch.float64"
    ):
        SCMRationalLayer(1, 1)(torch.zeros(3, dtype=F64))
    with pytest.raises(UnsupportedInputError, match="expects a torch.Tensor input, got list"):
        SCMRationalLayer(1, 1)([1.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="gauge 'angular_unit_circle' is not supported"):
        SCMRationalLayer(1, 1, gauge="angular_unit_circle")


def test_unit_l2_gauge_normalises_the_tuple():
    layer = SCMRationalLayer(
        1, 1, numerator_init=[3.0, 0.0], denominator_init=[4.0, 0.0], gauge="unit_l2_projective"
    )
    P, Q = layer(torch.zeros(2))
    assert torch.allclose(P, torch.full((2,), 0.6)) and torch.allclose(Q, torch.full((2,), 0.8))


# ---------------------------------------------------------------- multivariate


@pytest.mark.parametrize(
    ("n", "m", "shared"), [(2, 2, True), (1, 2, False), (2, 0, True), (3, 2, False), (3, 3, True)]
)
def test_multivariate_matches_the_monomial_reference(n, m, shared):
    torch.manual_seed(2)
    layer = MultivariateRationalLayer(3, 2, n, m, shared_denominator=shared, dtype=F64)
    with torch.no_grad():
        layer.weight.normal_()
    h = torch.randn(6, 3, dtype=F64)
    P, Q = layer(h)
    assert P.shape == Q.shape == (6, 2)
    coeffs = layer.monomial_coefficients()
    ref = layer.monomials(h) @ coeffs
    assert torch.allclose(P, ref[:, :2], atol=1e-10)
    assert torch.allclose(Q, ref[:, 2:].expand(6, 2) if shared else ref[:, 2:], atol=1e-10)
    # the degree masks hold: coefficients of too-high monomials are exactly zero
    exps = monomial_exponents(3, max(n, m))
    degs = torch.tensor([sum(1 for i in e if i) for e in exps])
    assert (coeffs[degs > n, :2] == 0).all() and (coeffs[degs > m, 2:] == 0).all()
    # a hand-written check of one monomial: P_0 = x0*x1 when only that coefficient is 1
    if n >= 2:
        with torch.no_grad():
            layer.weight.zero_()
            idx = exps.index((1, 2) + (0,) * (len(exps[0]) - 2)) if len(exps[0]) == 2 else None
            if idx is None:
                return
            layer.weight[0, 1, 2] = 1.0
        assert torch.allclose(layer(h)[0][:, 0], h[:, 0] * h[:, 1])


def test_multivariate_init_and_gradients():
    torch.manual_seed(3)
    layer = MultivariateRationalLayer(4, 2, 2, 2)
    h = torch.randn(5, 4, requires_grad=True)
    P, Q = layer(h)
    assert torch.equal(Q, torch.ones(5, 2))  # Q = 1 at init
    lin = layer.weight[:2, 0, 1:]
    assert torch.allclose(P, h @ lin.T)
    (P.sum() + Q.sum()).backward()
    assert h.grad is not None and torch.isfinite(layer.weight.grad).all()
    # weight[j, a, b] multiplies aug_a * aug_b (aug = [1, h]) for a <= b only: the entries below
    # the diagonal are not coefficients, get no gradient (never move) and change nothing
    below = torch.tril(torch.ones(5, 5, dtype=torch.bool), diagonal=-1).expand_as(layer.weight)
    assert (layer.weight.grad[below] == 0).all() and (layer.weight.grad[~below] != 0).any()
    coefficients = layer.monomial_coefficients().detach().clone()
    with torch.no_grad():
        layer.weight[below] = 7.0
        P2, Q2 = layer(h)
    assert torch.equal(P2, P.detach()) and torch.equal(Q2, Q.detach())
    assert torch.equal(layer.monomial_coefficients().detach(), coefficients)


def test_multivariate_errors():
    with pytest.raises(InvalidConfigError, match="in_features must be an integer >= 1"):
        MultivariateRationalLayer(0, 1, 2, 2)
    with pytest.raises(InvalidConfigError, match="numerator_degree must be an integer >= 0"):
        MultivariateRationalLayer(2, 1, -2, 2)
    with pytest.raises(InvalidConfigError, match="exceed the limit"):
        MultivariateRationalLayer(200, 1, 4, 4)
    with pytest.raises(
        ShapeMismatchError,
        match=r"MultivariateRationalLayer expects input of shape \[\.\.\., 3\], got \[4, 2\]",
    ):
        MultivariateRationalLayer(3, 1, 2, 2)(torch.zeros(4, 2))


# ---------------------------------------------------------------- template


TEMPLATE = "(a0 + a1*x)/(b0 + b1*x)"
PARAMS = ["a0", "a1", "b0", "b1"]


def test_template_matches_the_compiled_module_and_has_parameters():
    init = {"a0": 1.0, "a1": 2.0, "b0": 0.5, "b1": -1.0}
    layer = RationalTemplateLayer(TEMPLATE, PARAMS, init=init, dtype=F64)
    ref = zs.to_torch(zs.parse(TEMPLATE, parameters=PARAMS), init=init, dtype=F64)
    x = torch.tensor([[0.0], [0.5], [2.0]], dtype=F64)
    P, Q = layer(x)
    Pr, Qr = ref(x)
    assert torch.equal(P, Pr) and torch.equal(Q, Qr)
    assert Q.tolist()[1] == 0.0  # b0 + b1*x vanishes at 0.5
    assert (
        sorted(n for n, _ in layer.named_parameters())
        == sorted(f"module.coefficients.{n}" for n in PARAMS)
        or len(list(layer.parameters())) == 4
    )
    P.sum().backward()


def test_template_validity_factors_are_returned_and_masked():
    # 1/(1 + 1/x): Q = x + 1, the inner division by x is a retained validity factor
    layer = RationalTemplateLayer("a/(1 + 1/x)", ["a"], init={"a": 2.0}, dtype=F64)
    assert layer.has_validity_factors
    x = torch.tensor([[0.0], [1.0], [-1.0]], dtype=F64)
    P, Q, V = layer(x)
    assert V.shape == (3, 1) and V[0, 0] == 0
    (P / Q.abs().clamp(min=1e-300)).sum().backward()  # default PROJECT: bottoms give no gradient
    g = layer.module.coefficient_values()  # unchanged values, finite gradient
    assert g["a"] == 2.0
    grad = next(layer.parameters()).grad
    assert torch.isfinite(grad) and grad.item() == pytest.approx(1.0 / 2.0)  # only x = 1 counts


def test_template_to_sympy_exact_round_trip_and_display():
    layer = RationalTemplateLayer(
        TEMPLATE, PARAMS, init={"a0": 1.0, "a1": 0.0, "b0": 0.1, "b1": 1.0}
    )
    exact = layer.to_sympy()
    b0 = [a for a in sp.preorder_traversal(exact) if isinstance(a, sp.Rational) and a.q > 1]
    assert any(float(r) == layer.coefficient_values()["b0"] for r in b0)
    again = zs.to_torch(zs.flatten(exact))
    x = torch.linspace(-1, 1, 11).unsqueeze(-1)
    with torch.no_grad():
        P1, Q1 = layer(x)
        P2, Q2 = again(x)
    assert torch.equal(P1 / Q1, P2 / Q2)
    shown = str(layer.to_sympy(digits=3))
    assert "0.1" in shown and "a0" not in shown and "13421773" in str(exact)


def test_template_errors():
    with pytest.raises(TemplateError, match="sin"):
        RationalTemplateLayer("sin(x)*a", ["a"])
    x, a = sp.symbols("x a")
    with pytest.raises(TemplateError, match="not rational|sqrt|Pow"):
        RationalTemplateLayer(sp.sqrt(x) * a, ["a"])
    with pytest.raises(
        TemplateError, match=r"symbols \['c'\] of the template are neither declared"
    ):
        RationalTemplateLayer("(a + c*x)/x", ["a"], variables=["x"])
    with pytest.raises(TemplateError, match=r"declared parameters \['b'\] do not occur"):
        RationalTemplateLayer("a/x", ["a", "b"])
    with pytest.raises(TemplateError, match="init gives a value for 'z'"):
        RationalTemplateLayer("a/x", ["a"], init={"z": 1.0})
    with pytest.raises(TemplateError, match="no input variable"):
        RationalTemplateLayer("a/(a + 1)", ["a"])
    with pytest.raises(ShapeMismatchError, match=r"expects input of shape \[\.\.\., 1\]"):
        RationalTemplateLayer("a/x", ["a"])(torch.zeros(3, 2))
    assert issubclass(TemplateError, ValueError) and issubclass(TemplateError, InvalidConfigError)


# ---------------------------------------------------------------- strict eval in the wrapper


def _layers():
    torch.manual_seed(4)
    yield (
        SCMRationalLayer(1, 1, numerator_init=[1.0, 0.0], denominator_init=[0.0, 1.0]),
        torch.tensor([0.0, 2.0]),
    )
    yield RationalTemplateLayer("a/x", ["a"]), torch.tensor([[0.0], [2.0]])
    yield RationalTemplateLayer("a/(1 + 1/x)", ["a"]), torch.tensor([[0.0], [2.0]])
    mv = MultivariateRationalLayer(2, 1, 1, 1)
    with torch.no_grad():
        mv.weight.zero_()
        mv.weight[0, 0, 0] = 1.0  # P = 1
        mv.weight[1, 0, 1] = 1.0  # Q = h0
    yield mv, torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    ang = AngularProjectiveHead(1, 1)
    with torch.no_grad():
        ang.linear.weight.fill_(1.0)
        ang.linear.bias.zero_()
    yield ang, torch.tensor([[0.0], [1.0]])


def test_every_layer_decodes_strictly_in_the_wrapper():
    for layer, x in _layers():
        wrapped = SCMInferenceWrapper(layer, config=InferenceConfig(tau_infer=1e-6))
        raw = wrapped(x)  # train mode: the raw tuple
        assert isinstance(raw, tuple) and len(raw) in (2, 3)
        wrapped.eval()
        decoded, bottom, gap = wrapped(x)
        assert bottom.reshape(-1).tolist() == [True, False], type(layer).__name__
        assert torch.isnan(decoded.reshape(-1)[0]) and torch.isfinite(decoded.reshape(-1)[1])
