"""Strict decode under autograd and the eager fast paths of the mask kernels.

The eager autograd path (a custom autograd function) must give exactly the gradients
of the reference expression ``where(b, nan, where(b, 0, P) / where(b, 1, Q))``
(PyTorch's own division formulas), exact zeros at bottom entries, working
double backward, and must leave ``torch.func`` and ``torch.compile`` usable.
The eager kernels skip work on large CPU batches ("no zero Q", "no bottom");
those paths must agree bit for bit with the functional kernels and numpy.
"""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
import sympy as sp
import torch

import zpml_symbolic as zs
from zpml_core import kernels as K
from zpml_runtime.inference import InferenceConfig, strict_inference

INF, NAN = math.inf, math.nan
LARGE = K.ANY_TEST_MIN_NUMEL + 17  # above the "is any entry set" threshold
CFG = InferenceConfig(tau_infer=1e-6)


def _reference(P, Q, config, factors=None):
    """The previous differentiable formula (masks from the no-grad path)."""
    with torch.no_grad():
        bottom = strict_inference(
            P.detach(), Q.detach(), config=config, validity_factors=factors
        ).bottom_mask
    safe = torch.where(bottom, 0.0, P) / torch.where(bottom, 1.0, Q)
    return torch.where(bottom, NAN, safe), bottom


def _problem(n, dtype, *, bottoms=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    P = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
    Q = (torch.rand(n, generator=gen, dtype=torch.float64) + 0.25).to(dtype)
    Q[::3] *= -1
    if bottoms:
        Q[5], Q[7] = 0.0, -0.0  # semantic
        Q[9] = 1e-9  # semantic through tau_infer
        P[11], Q[13], P[15] = INF, NAN, NAN  # faults
        P[17], Q[17] = 3e38 if dtype == torch.float32 else 1e308, 1e-30  # overflow
        P[19], Q[19] = INF, 0.0  # mixed
    return P, Q


@pytest.mark.parametrize("n", [40, LARGE])
@pytest.mark.parametrize("bottoms", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_equal_the_reference_formula_bit_for_bit(n, bottoms, dtype):
    P0, Q0 = _problem(n, dtype, bottoms=bottoms)
    V0 = torch.linspace(-1.0, 1.0, n, dtype=dtype)  # one exact zero in the middle when n is odd
    weights = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=dtype)
    grads = []
    for use_reference in (False, True):
        P, Q = P0.clone().requires_grad_(), Q0.clone().requires_grad_()
        if use_reference:
            decoded, bottom = _reference(P, Q, CFG, [V0])
        else:
            result = strict_inference(P, Q, config=CFG, validity_factors=[V0])
            decoded, bottom = result.decoded, result.bottom_mask
            assert (
                decoded.grad_fn is not None and "StrictQuotient" in type(decoded.grad_fn).__name__
            )
        (torch.nan_to_num(decoded, nan=0.0) * weights).sum().backward()
        grads.append((decoded.detach(), bottom, P.grad, Q.grad))
    (d1, b1, gp1, gq1), (d2, b2, gp2, gq2) = grads
    assert torch.equal(b1, b2) and bool(b1.any()) == bottoms
    assert torch.equal(d1.isnan(), d2.isnan()) and torch.equal(d1[~b1], d2[~b2])
    assert torch.equal(gp1, gp2) and torch.equal(gq1, gq2)
    for g in (gp1, gq1):
        assert torch.isfinite(g).all()
        assert (g[b1] == 0).all() and not torch.signbit(g[b1]).any()  # exact +0


def test_gradients_are_zero_at_every_kind_of_bottom():
    P = torch.tensor([1.0, 2.0, INF, 1.0, 3e38, 1.0, 4.0], dtype=torch.float32, requires_grad=True)
    Q = torch.tensor([0.0, 1e-9, 1.0, INF, 1e-30, 2.0, 2.0], requires_grad=True)
    V = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    result = strict_inference(P, Q, config=CFG, validity_factors=[V])
    assert result.bottom_mask.tolist() == [True] * 6 + [False]
    result.decoded[~result.bottom_mask].sum().backward()
    assert P.grad.tolist() == [0.0] * 6 + [0.5]
    assert Q.grad.tolist() == [0.0] * 6 + [-1.0]


def test_gradcheck_and_gradgradcheck_at_regular_points():
    gen = torch.Generator().manual_seed(3)
    P = torch.randn(7, generator=gen, dtype=torch.float64, requires_grad=True)
    Q = (torch.rand(7, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()

    def fn(p, q):
        return strict_inference(p, q, config=CFG).decoded

    assert torch.autograd.gradcheck(fn, (P, Q))
    assert torch.autograd.gradgradcheck(fn, (P, Q))


def test_double_backward_equals_the_reference_and_is_zero_at_bottoms():
    P0, Q0 = _problem(30, torch.float64)
    out = []
    for use_reference in (False, True):
        P, Q = P0.clone().requires_grad_(), Q0.clone().requires_grad_()
        if use_reference:
            decoded, bottom = _reference(P, Q, CFG)
        else:
            decoded, bottom = strict_inference(P, Q, config=CFG)[:2]
        loss = (torch.nan_to_num(decoded, nan=0.0) ** 2).sum()
        gp, gq = torch.autograd.grad(loss, (P, Q), create_graph=True)
        hp, hq = torch.autograd.grad((gp * gq).sum(), (P, Q))
        out.append((gp.detach(), gq.detach(), hp, hq, bottom))
    for a, b in zip(out[0][:4], out[1][:4], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0.0)
    for h in out[0][2:4]:
        assert torch.isfinite(h).all() and (h[out[0][4]] == 0).all()


@pytest.mark.parametrize("which", ["P", "Q"])
def test_only_one_input_requires_grad(which):
    P0, Q0 = _problem(30, torch.float32)
    P = P0.clone().requires_grad_(which == "P")
    Q = Q0.clone().requires_grad_(which == "Q")
    torch.nan_to_num(strict_inference(P, Q, config=CFG).decoded, nan=0.0).sum().backward()
    leaf, other = (P, Q) if which == "P" else (Q, P)
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all() and other.grad is None


def test_decoded_modified_in_place_before_backward_keeps_gradients_right():
    P0, Q0 = _problem(30, torch.float64)
    ref_P, ref_Q = P0.clone().requires_grad_(), Q0.clone().requires_grad_()
    ref, _ = _reference(ref_P, ref_Q, CFG)
    ref.nan_to_num(nan=0.0).sum().backward()
    P, Q = P0.clone().requires_grad_(), Q0.clone().requires_grad_()
    decoded = strict_inference(P, Q, config=CFG).decoded
    decoded.nan_to_num_(nan=0.0)  # in place: the saved quotient is no longer valid
    decoded.sum().backward()
    assert torch.equal(P.grad, ref_P.grad) and torch.equal(Q.grad, ref_Q.grad)


def test_custom_function_is_not_a_cycle_and_masks_are_not_differentiable():
    P, Q = _problem(20, torch.float32)
    P.requires_grad_()
    result = strict_inference(P, Q, config=CFG, validity_factors=[torch.ones(20)])
    assert result.decoded.requires_grad
    for mask in (
        result.bottom_mask,
        result.gap_mask,
        result.fault_mask,
        result.semantic_bottom_mask,
        *result.factor_fault_masks,
        *result.factor_semantic_masks,
    ):
        assert mask.dtype == torch.bool and not mask.requires_grad
    # no reference cycle through the autograd node: dropping the result frees the graph at
    # once, without the garbage collector (a quotient saved on ctx, not with
    # save_for_backward, would keep it alive)
    node = weakref.ref(result.decoded.grad_fn)
    gc.disable()
    try:
        del result
        assert node() is None
    finally:
        gc.enable()


def test_torch_func_transforms_still_work():
    gen = torch.Generator().manual_seed(5)
    P = torch.randn(5, generator=gen, dtype=torch.float64)
    Q = torch.tensor([0.0, 1.0, -2.0, 4.0, 0.5], dtype=torch.float64)

    def loss(p, q):
        return torch.nan_to_num(strict_inference(p, q, config=CFG).decoded, nan=0.0).sum()

    gp, gq = torch.func.grad(loss, argnums=(0, 1))(P, Q)
    assert gp[0] == 0 and gq[0] == 0
    torch.testing.assert_close(gp[1:], 1 / Q[1:])
    torch.testing.assert_close(gq[1:], -P[1:] / Q[1:] ** 2)
    jac = torch.func.jacrev(lambda p: strict_inference(p, Q, config=CFG).decoded)(P)
    torch.testing.assert_close(jac, torch.diag(torch.where(Q == 0, 0.0, 1 / Q)))


def test_torch_compile_fullgraph_under_autograd():
    def fn(P, Q, V):
        return strict_inference(P, Q, config=CFG, validity_factors=V).decoded

    P0, Q0 = _problem(30, torch.float32)
    V = torch.ones(30, 1)
    grads = []
    for compiled in (False, True):
        P = P0.clone().requires_grad_()
        f = torch.compile(fn, fullgraph=True, backend="eager") if compiled else fn
        torch.nan_to_num(f(P, Q0, V), nan=0.0).sum().backward()
        grads.append(P.grad)
    assert torch.equal(grads[0], grads[1])


# ---------------------------------------------------------------- eager kernel fast paths


def _np_dtype(dtype):
    return {torch.float32: np.float32, torch.float64: np.float64}[dtype]


@pytest.mark.parametrize("zeros", [True, False])
@pytest.mark.parametrize("tau", [0.0, 1e-6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_core_fast_path_on_large_batches_matches_functional_and_numpy(zeros, tau, dtype):
    P, Q = _problem(LARGE, dtype, bottoms=zeros)
    if not zeros:
        P[11], Q[13] = INF, -INF  # faults but no zero Q
    t, tr = InferenceConfig(tau_infer=tau, tau_train=1e-3).thresholds_for(str(dtype)[6:])
    for train in (tr, None):
        fast = K.torch_core_fast(P, Q, t, train)
        func = K.torch_core_functional(P, Q, t, train)
        ref = K.numpy_core(P.numpy(), Q.numpy(), t, train)
        for a, b, c in zip(fast[1:], func[1:], ref[1:], strict=True):
            if a is None:
                assert b is None and c is None
            else:
                assert torch.equal(a, b) and np.array_equal(a.numpy(), c)
        ok = ~(fast[1] | fast[2])
        assert torch.equal(fast[0][ok], func[0][ok])
        assert np.array_equal(fast[0][ok].numpy(), ref[0][ok.numpy()])


@pytest.mark.parametrize("tau", [0.0, 1e-6, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_factor_fast_kernel_matches_functional_and_numpy(tau, dtype):
    base = torch.tensor(
        [[0.0, 1.0], [-0.0, 2.0], [INF, 1.0], [-INF, 1.0], [NAN, 1.0], [1e-30, 1.0], [0.25, 1.0]],
        dtype=dtype,
    )
    V = base[:, 0]  # non-contiguous, like an input column
    original = V.clone()
    t = float(tau)  # 0.0: exact zeros only (an equality test)
    scratch = torch.full((7,), 123.0, dtype=dtype)
    for s in (None, scratch, torch.empty(3, dtype=dtype)):  # reused, absent, wrong shape
        fast = K.torch_factor_fast(V, t, s)
        func = K.torch_factor_functional(V, t)
        ref = K.numpy_factor(V.numpy(), t)
        for a, b, c in zip(fast, func, ref, strict=True):
            assert a.dtype == torch.bool and torch.equal(a, b) and np.array_equal(a.numpy(), c)
    assert np.array_equal(V.numpy(), original.numpy(), equal_nan=True)  # V is never written


def test_all_finite_proves_only_what_holds():
    big = torch.full((LARGE,), 3e38, dtype=torch.float32)  # finite, but the sum overflows
    assert not K.all_finite(big)  # "not proven", never a wrong "yes"
    x = torch.linspace(-2.0, 2.0, LARGE, dtype=torch.float64)
    assert K.all_finite(x) and K.all_finite(x.to(torch.float32))
    assert not K.all_finite(x[:100])  # small: not worth testing, answers "not proven"
    assert not K.all_finite(x.to(torch.float16))
    for bad in (INF, -INF, NAN):
        y = x.clone()
        y[LARGE // 3] = bad
        assert not K.all_finite(y)
    y = x.clone()
    y[0], y[-1] = INF, -INF  # the sum is NaN, not a cancelling finite number
    assert not K.all_finite(y)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.dtype.itemsize])


@pytest.mark.parametrize("count", [1, 50, LARGE // 10])  # sparse (numpy) and dense paths
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64, torch.bfloat16])
def test_fill_nan_matches_masked_fill_bit_for_bit(count, dtype):
    gen = torch.Generator().manual_seed(count)
    d = torch.randn(LARGE, generator=gen).to(dtype)
    mask = torch.zeros(LARGE, dtype=torch.bool)
    mask[torch.randperm(LARGE, generator=gen)[:count]] = True
    for target, m in ((d.clone(), mask), (d.clone()[::2], mask[::2])):  # contiguous, strided
        expected = target.clone().masked_fill_(m, NAN)
        K.fill_nan(target, m)
        assert torch.equal(_bits(target), _bits(expected))  # same NaN bit pattern


@pytest.mark.parametrize("case", ["finite", "inf", "nan", "overflowing_sum", "zeros"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_factor_and_core_fast_paths_on_large_batches_match_numpy(case, dtype):
    """The whole-tensor shortcuts (finite sum, bool-then-negate zero test) on large
    inputs agree with the functional kernels and numpy, whatever the sum does."""
    gen = torch.Generator().manual_seed(3)
    V = (torch.rand(LARGE, generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    huge = 3e38 if dtype == torch.float32 else 1.7e308
    pos = int(torch.randint(0, LARGE, (1,), generator=gen))
    if case == "inf":
        V[pos] = -INF
    elif case == "nan":
        V[pos] = NAN
    elif case == "overflowing_sum":
        V[::2] = huge  # every entry finite, the sum is not
    elif case == "zeros":
        V[pos], V[pos // 2] = 0.0, -0.0
    t = 0.0  # exact zeros only
    fast = K.torch_factor_fast(V, t)
    func = K.torch_factor_functional(V, t)
    ref = K.numpy_factor(V.numpy(), t)
    for a, b, c in zip(fast, func, ref, strict=True):
        assert torch.equal(a, b) and np.array_equal(a.numpy(), c)
    P = torch.ones_like(V)
    for core_in in ((P, V), (V, torch.ones_like(V)), (V * 0.5, V)):
        fast_c = K.torch_core_fast(*core_in, t, None)
        ref_c = K.numpy_core(core_in[0].numpy(), core_in[1].numpy(), t, None)
        assert torch.equal(fast_c[1], torch.from_numpy(ref_c[1]))  # fault
        assert torch.equal(fast_c[2], torch.from_numpy(ref_c[2]))  # semantic


@pytest.mark.parametrize("n", [12, LARGE])
def test_strict_inference_with_factors_matches_numpy(n):
    P, Q = _problem(max(n, 20), torch.float32)
    n = P.numel()
    V = torch.stack(
        [torch.linspace(-1, 1, n), torch.where(torch.arange(n) % 7 == 0, NAN, 1.0)], dim=-1
    )
    V[3, 0] = -0.0
    for taus in (0.0, (1e-3, 0.0)):
        rt = strict_inference(P, Q, config=CFG, validity_factors=V, validity_taus=taus)
        rn = strict_inference(
            P.numpy(), Q.numpy(), config=CFG, validity_factors=V.numpy(), validity_taus=taus
        )
        for (key, a), b in zip(rt.as_dict().items(), rn.as_dict().values(), strict=True):
            assert np.array_equal(a.numpy(), b, equal_nan=a.is_floating_point()), key


# ---------------------------------------------------------------- strict evaluator


def _learnable_evaluator():
    x, y, a = sp.symbols("x y a")
    return zs.strict_evaluator(a * x / (y - 1) + 1 / x, parameters=[a], init={a: 1.5})


def test_strict_evaluator_fast_path_equals_sanitised_path():
    ev = _learnable_evaluator()
    x = torch.tensor([[1.0, 2.0], [0.0, 3.0], [2.0, 1.0], [0.5, -1.0]], requires_grad=True)
    result = ev(x)
    assert result.fault_mask.tolist() == [False] * 4
    assert result.bottom_mask.tolist() == [False, True, True, False]
    torch.nan_to_num(result.decoded, nan=0.0).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[1:3] == 0).all()
    with torch.no_grad():
        plain = ev(x)
    assert torch.equal(plain.decoded.isnan(), result.decoded.isnan())
    assert torch.equal(plain.decoded.nan_to_num(), result.decoded.detach().nan_to_num())


def test_strict_evaluator_non_finite_inputs_keep_parameter_gradients_finite():
    ev = _learnable_evaluator()
    x = torch.tensor([[1.0, 2.0], [NAN, 3.0], [INF, 2.0], [0.5, -1.0]], requires_grad=True)
    result = ev(x)
    assert result.fault_mask.tolist() == [False, True, True, False]
    torch.nan_to_num(result.decoded, nan=0.0).sum().backward()
    (a,) = ev.model.parameters()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    assert torch.isfinite(x.grad).all() and (x.grad[1:3] == 0).all()
