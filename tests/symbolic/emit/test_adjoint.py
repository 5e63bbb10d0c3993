"""The generated reverse mode of compiled modules (``zpml_symbolic.emit.backends.torch_adjoint``).

Every test compares against plain autograd through the functional graph
(``module.generated_backward = False``), an independent implementation of
the same derivatives.
"""

from __future__ import annotations

import random

import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st
from sym_strategies import SYMBOLS, expressions

import zpml_symbolic as zs
from zpml_symbolic import Coefficient

X, Y, Z = SYMBOLS


def _grads(
    m: zs.RationalModule, x: torch.Tensor, weights: list[torch.Tensor], generated: bool
) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """Gradients of ``sum(w_i * output_i)`` (linear in the outputs, no division)."""
    m.generated_backward = generated
    x = x.detach().clone().requires_grad_(True)
    m.zero_grad(set_to_none=True)
    out = m(x)
    flat = [out[0], out[1]] + ([out[2]] if len(out) == 3 else [])
    loss = sum((w * o).sum() for w, o in zip(weights, flat, strict=False))
    assert isinstance(loss, torch.Tensor)
    if loss.requires_grad:  # a constant expression records nothing
        loss.backward()
    return x.grad, [p.grad for p in m.coefficients.values()]


def _close(a: torch.Tensor | None, b: torch.Tensor | None) -> None:
    if a is None or b is None:
        assert a is None or not a.any(), (a, b)
        assert b is None or not b.any(), (a, b)
        return
    scale = float(b.abs().max()) if b.numel() else 0.0
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * scale + 1e-300, equal_nan=True)


@given(expressions, st.randoms(use_true_random=False))
def test_generated_backward_matches_autograd(expr: sp.Expr, rnd: random.Random) -> None:
    """x and y are inputs, z is a learnable coefficient; float64, random points."""
    fru = zs.flatten(expr, variables=(X, Y), parameters=(Z,))
    m = zs.to_torch(fru, init={"z": rnd.uniform(0.5, 1.5)}, dtype=torch.float64)
    rng = torch.Generator().manual_seed(rnd.randrange(2**31))
    x = torch.rand(17, 2, generator=rng, dtype=torch.float64) * 3 - 1.5
    with torch.no_grad():
        ref = m(x)
    k = ref[2].shape[-1] if len(ref) == 3 else 0
    weights = [torch.randn(17, generator=rng, dtype=torch.float64) for _ in range(2)]
    if k:
        weights.append(torch.randn(17, k, generator=rng, dtype=torch.float64))
    gx1, gp1 = _grads(m, x, weights, generated=True)
    gx0, gp0 = _grads(m, x, weights, generated=False)
    _close(gx1, gx0)
    for a, b in zip(gp1, gp0, strict=True):
        _close(a, b)


@given(expressions)
def test_forward_under_autograd_is_bit_identical_to_inference(expr: sp.Expr) -> None:
    fru = zs.flatten(expr, variables=(X, Y), parameters=(Z,))
    m = zs.to_torch(fru, init={"z": 0.75}, dtype=torch.float64)
    x = torch.linspace(-2.5, 2.5, 40, dtype=torch.float64).reshape(20, 2)
    with torch.no_grad():
        fast = m(x)
    recorded = m(x.clone().requires_grad_(True))
    for a, b in zip(fast, recorded, strict=True):
        assert torch.equal(torch.nan_to_num(a, nan=7.0), torch.nan_to_num(b.detach(), nan=7.0))


def _poles(n: int) -> tuple[sp.Expr, dict[str, float]]:
    cs = [Coefficient(f"c{k}") for k in range(n)]
    expr = sp.Add(
        *[
            sp.Mul(c, sp.Pow(X - sp.Rational(k + 1, 4), -1), evaluate=False)
            for k, c in enumerate(cs)
        ],
        evaluate=False,
    )
    return expr, {f"c{k}": (-1) ** k * (1 + k / 7) for k in range(n)}


def test_gradcheck_and_double_backward() -> None:
    expr, init = _poles(5)
    m = zs.to_torch(expr, parameters=list(init), init=init, dtype=torch.float64)
    x = torch.tensor([[0.1], [0.6], [1.9], [-0.4]], dtype=torch.float64, requires_grad=True)

    def value(x: torch.Tensor) -> torch.Tensor:
        P, Q = m(x)
        return P / Q

    assert torch.autograd.gradcheck(value, (x,))
    assert torch.autograd.gradgradcheck(value, (x,))
    # second derivative through create_graph matches plain autograd
    for generated in (True, False):
        m.generated_backward = generated
        (g,) = torch.autograd.grad(value(x).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), x)
        if generated:
            h1 = h
    torch.testing.assert_close(h1, h, rtol=1e-10, atol=0)


def test_only_what_needs_a_gradient_gets_one() -> None:
    expr, init = _poles(3)
    m = zs.to_torch(expr, parameters=list(init), init=init, dtype=torch.float64)
    x = torch.tensor([[0.1], [0.9]], dtype=torch.float64)
    P, Q = m(x)  # x needs no gradient, the coefficients do
    (P / Q).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad(set_to_none=True)
    m.generated_backward = False
    P, Q = m(x)
    (P / Q).sum().backward()
    for a, p in zip(grads, m.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)
    m.generated_backward = True
    m.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    P, Q = m(xg)
    (P / Q).sum().backward()
    assert xg.grad is not None and all(p.grad is None or True for p in m.parameters())
    assert len(m._adjoint._forward) == 2  # one graph per combination of needs


def test_special_outputs_batch_shapes_and_several_expressions() -> None:
    c = Coefficient("c")
    exprs = [
        sp.Mul(c, sp.Pow(X - 1, -1), evaluate=False),  # P = c: a 0-d coefficient-only output
        sp.Mul(Y, sp.Pow(X, -1), evaluate=False),  # Q = x: an input column
        X * Y + c,  # Q = 1: a constant output
    ]
    m = zs.to_torch(exprs, parameters=[c], init={"c": 1.5}, dtype=torch.float64)
    x = torch.rand(2, 3, 2, dtype=torch.float64) + 0.5
    for generated in (True, False):
        m.generated_backward = generated
        xg = x.clone().requires_grad_(True)
        m.zero_grad(set_to_none=True)
        outs = m(xg)
        assert outs[0][0].shape == (2, 3)
        # only the first and third expressions feed the loss (missing gradients are None)
        loss = (outs[0][0] / outs[0][1]).sum() + (outs[2][0] * outs[2][1]).sum()
        loss.backward()
        got = (xg.grad.clone(), m.coefficients.c.grad.clone())
        if generated:
            first = got
    torch.testing.assert_close(first[0], got[0])
    torch.testing.assert_close(first[1], got[1])


def test_modifying_a_saved_output_in_place_is_detected() -> None:
    # V = x + 1 is an output and an operand of P = x*(x + 1): the backward reads it
    m = zs.to_torch(zs.parse("x/(1 + 1/(x + 1))"))
    x = torch.tensor([[0.1], [0.9]], requires_grad=True)
    P, Q, V = m(x)
    V.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (P / Q).sum().backward()


def test_functorch_transforms_use_the_functional_graph() -> None:
    m = zs.to_torch(zs.parse("1/(x - 1) + x**2/(y + 3)"), dtype=torch.float64)
    x = torch.tensor([0.3, 0.2], dtype=torch.float64)

    def value(v: torch.Tensor) -> torch.Tensor:
        P, Q = m(v)
        return P / Q

    jac = torch.func.jacrev(value)(x)
    x1 = x.clone().requires_grad_(True)
    value(x1).backward()
    torch.testing.assert_close(jac, x1.grad)
