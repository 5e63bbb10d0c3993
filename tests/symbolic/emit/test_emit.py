"""Torch and numpy back-ends, the strict evaluator and explain."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st
from sym_strategies import SYMBOLS, expressions, singular_points

import zpml_symbolic as zs
from zpml_core.errors import ShapeMismatchError
from zpml_runtime.inference import InferenceConfig
from zpml_symbolic.emit.backends.numpy_emit import NUMPY_OPS
from zpml_symbolic.emit.backends.torch_emit import TORCH_OPS
from zpml_symbolic.emit.lowering.program import OPS, lower

LEAF = {"input", "param", "const"}
EXAMPLE = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"


def test_every_program_op_has_a_torch_and_numpy_implementation() -> None:
    assert set(TORCH_OPS) | LEAF == set(OPS)
    assert set(NUMPY_OPS) | LEAF == set(OPS)


def test_generated_code_is_straight_line_without_pow() -> None:
    m = zs.to_torch(zs.parse("(x**7 + 3*x**2 - 1)/(x**5 + 2) + y/(x - y)"))
    code = m.code
    assert "**" not in code and "pow" not in code
    assert "for " not in code and "while " not in code
    # x**7 by square-and-multiply: 3 squarings/multiplications at most for x**2, x**4, and products
    assert code.count("x[(Ellipsis, 0)]") == 1


def test_common_subexpressions_are_computed_once() -> None:
    m = zs.to_torch(zs.parse("(x*y + 1)/(x - y) + (x*y + 1)**2/(x - y)**3"))
    assert m.code.count("getitem * getitem_1") + m.code.count("getitem_1 * getitem") <= 1
    counts = m.plan.program.count_ops()
    keys = {(i.op, i.args, i.const, i.index) for i in m.plan.program.instrs}
    assert len(keys) == len(m.plan.program.instrs)  # no duplicate instruction
    assert counts.get("input") == 2


def test_several_expressions_share_one_module() -> None:
    e1, e2 = zs.parse("1/(x - y) + x"), zs.parse("(x - y)**2 + 1/(x - y)")
    m = zs.to_torch([e1, e2])
    (p1, q1, v1), (p2, q2, v2) = m(torch.tensor([[3.0, 1.0]], dtype=torch.float64))
    assert float(p1 / q1) == pytest.approx(3.5) and float(p2 / q2) == pytest.approx(4.5)
    assert v1.shape == v2.shape == (1, 0)  # uniform (P, Q, V) for several expressions
    subs = [i for i in m.plan.program.instrs if i.op == "sub"]
    assert len(subs) == 1  # x - y computed once for both


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_batch_shape(dtype: torch.dtype) -> None:
    m = zs.to_torch(zs.parse(EXAMPLE))
    x = torch.rand(2, 3, 2, dtype=dtype) + 2
    P, Q, V = m(x)
    assert P.dtype == Q.dtype == V.dtype == dtype
    assert P.shape == Q.shape == (2, 3) and V.shape == (2, 3, 1)
    ref = zs.numpy_evaluator(zs.parse(EXAMPLE))
    Pn, Qn, Vn = ref.evaluate(x.numpy())
    np.testing.assert_allclose(P.numpy(), Pn, rtol=1e-6)
    np.testing.assert_allclose(Q.numpy(), Qn, rtol=1e-6)


def test_constant_outputs_are_broadcast() -> None:
    m = zs.to_torch(zs.parse("x**2 + 3"))  # Q == 1
    P, Q = m(torch.zeros(5, 1))
    assert Q.shape == (5,) and torch.all(Q == 1)
    m2 = zs.to_torch(zs.parse("1/(x - x)"))  # always bottom: V == 0
    P, Q, V = m2(torch.zeros(4, 1))
    assert V.shape == (4, 1) and torch.all(V == 0)


def test_learnable_coefficients() -> None:
    expr = zs.parse("(a0 + a1*x)/(1 + b1*x)", parameters=["a0", "a1", "b1"])
    m = zs.to_torch(expr, init={"a0": 1.0, "a1": 2.0, "b1": 0.5})
    assert {n for n, _ in m.named_parameters()} == {
        "coefficients.a0",
        "coefficients.a1",
        "coefficients.b1",
    }
    x = torch.tensor([[1.0], [2.0]])
    P, Q = m(x)
    (P / Q).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad) for p in m.parameters())
    with torch.no_grad():
        m.coefficients.b1.fill_(0.25)
    fru = zs.flatten(m.to_sympy())
    assert fru.evaluate({"x": 2}) == sp.Rational(5, 1) / sp.Rational(3, 2)
    with pytest.raises(zs.InvalidArgumentError, match=r"no initial value for parameters \['b1'\]"):
        zs.to_torch(expr, init={"a0": 1.0, "a1": 2.0})
    with pytest.raises(zs.InvalidArgumentError, match="not a parameter"):
        zs.to_torch(expr, init={"a0": 1.0, "a1": 2.0, "b1": 0.0, "zz": 1.0})


def test_learnable_literals_become_parameters() -> None:
    x = sp.Symbol("x")
    m = zs.to_torch(sp.Float(0.5) * x / (1 + sp.Float(0.25) * x), learnable_literals=True)
    assert m.coefficient_values() == {"c0": 0.5, "c1": 0.25}
    P, Q = m(torch.tensor([[2.0]]))
    assert float((P / Q).detach()) == pytest.approx(1 / 1.5)


@pytest.mark.slow  # torch.compile dominates this module's time
def test_torch_compile_fullgraph_and_torchscript_match_eager() -> None:
    m = zs.to_torch(zs.parse(EXAMPLE))
    x = torch.tensor([[0.0, 1.0], [2.0, 1.0], [1.5, -0.5]])
    eager = m(x)
    compiled = torch.compile(m, fullgraph=True)(x)
    scripted = torch.jit.script(m)(x)
    for a, b, c in zip(eager, compiled, scripted, strict=True):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)


def test_strict_evaluator_outputs_and_explain() -> None:
    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-2)
    ev = zs.strict_evaluator(zs.parse(EXAMPLE), config=cfg)
    x = torch.tensor(
        [[0.0, 1.0], [2.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [math.nan, 1.0], [2.0, 2.001]]
    )
    r = ev(x)
    d = r.as_dict()
    assert list(d)[:6] == [
        "decoded",
        "bottom_mask",
        "gap_mask",
        "fault_mask",
        "semantic_bottom_mask",
        "bottom_provenance",
    ]
    assert list(d)[6:] == list(ev.schema.output_names)
    assert r.bottom_mask.tolist() == [True, False, True, True, True, False]
    assert r.bottom_provenance.tolist() == [2, 0, 2, 2, 1, 0]
    assert r.gap_mask.tolist() == [False, False, False, False, False, True]
    assert d["structural_validity_factor_0_semantic_bottom_mask"].tolist() == [True] + [False] * 5
    expl = {e.index[0]: e for e in ev.explain(x, r)}
    assert set(expl) == {0, 2, 3, 4}
    assert [c.source.source for c in expl[0].causes] == ["1/x"]
    assert [c.source.source for c in expl[2].causes] == ["(x**2 + 1)/(x - y)"]
    assert [c.source.kind for c in expl[3].causes] == ["divisor_numerator"]
    assert expl[4].provenance == "fault"
    assert "from '1/x'" in str(expl[0])


def test_strict_evaluator_masks_come_from_validity_factors_not_q_alone() -> None:
    """E2 at x = 0: Q is nonzero, but 1/(1 + 1/(x*z)) is bottom (peers return -1.5)."""
    e2 = zs.parse("(x*y + z)/(x - y) + 1/(1 + 1/(x*z)) - (x**2 + y**2)/(z**2 + 1)")
    ev = zs.strict_evaluator(e2)
    r = ev(torch.tensor([[0.0, 1.0, 1.0]]))
    assert bool(r.bottom_mask[0]) and bool(r.semantic_bottom_mask[0])
    P, Q, V = ev.model(torch.tensor([[0.0, 1.0, 1.0]]))
    assert float(Q[0]) != 0.0 and float(V[0].abs().min()) == 0.0


def test_gradients_are_finite_and_zero_at_bottoms() -> None:
    expr = zs.parse("(a*x + 1)/(x - b) + 1/(1 + 1/x)", parameters=["a", "b"])
    ev = zs.strict_evaluator(expr, init={"a": 1.0, "b": 2.0})
    x = torch.tensor([[0.0], [2.0], [1.0], [math.nan], [math.inf]], requires_grad=True)
    r = ev(x)
    torch.where(r.bottom_mask, 0.0, r.decoded).sum().backward()
    for p in ev.parameters():
        assert torch.isfinite(p.grad).all()
    assert torch.isfinite(x.grad).all()
    assert x.grad[0].item() == 0.0 and x.grad[1].item() == 0.0
    assert r.fault_mask.tolist() == [False, False, False, True, True]


def _dyadic_points(rng: random.Random, n: int) -> list[dict]:
    return [
        {s: Fraction(rng.randint(-40, 40), 2 ** rng.randint(0, 3)) for s in SYMBOLS}
        for _ in range(n)
    ]


def _is_dyadic(v: Fraction) -> bool:
    return (
        v.denominator & (v.denominator - 1) == 0
        and v.denominator <= 1024
        and abs(v.numerator) < 2**20
    )


@given(expressions, st.randoms(use_true_random=False))
def test_differential_exact_numpy_torch(expr: sp.Expr, rnd: random.Random) -> None:
    """tau = 0, float64: masks equal the exact bottom set; values agree to 1e-9."""
    rng = random.Random(rnd.random())
    fru = zs.flatten(expr, variables=SYMBOLS)
    points = _dyadic_points(rng, 6) + [
        p for p in singular_points(expr, rng) if all(_is_dyadic(v) for v in p.values())
    ]
    xs = np.array([[float(p[s]) for s in SYMBOLS] for p in points], dtype=np.float64)
    np_res = zs.numpy_evaluator(fru)(xs)
    t_res = zs.strict_evaluator(fru, dtype=torch.float64)(torch.from_numpy(xs))
    for k, p in enumerate(points):
        exact = fru.evaluate(p)
        assert bool(np_res.bottom_mask[k]) == (exact is zs.BOTTOM), (p, exact)
        assert bool(t_res.bottom_mask[k]) == (exact is zs.BOTTOM), (p, exact)
        if exact is zs.BOTTOM:
            assert math.isnan(np_res.decoded[k]) and math.isnan(float(t_res.decoded[k]))
            continue
        want = float(exact)
        for got in (float(np_res.decoded[k]), float(t_res.decoded[k])):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-300)
    np.testing.assert_array_equal(np_res.bottom_mask, t_res.bottom_mask.numpy())
    np.testing.assert_array_equal(np_res.fault_mask, t_res.fault_mask.numpy())


def test_lowering_rejects_division_and_unknown_names() -> None:
    from zpml_symbolic.ir import node as ir

    with pytest.raises(zs.EmitError, match="division-free"):
        lower([("P", ir.inv(ir.var("x")))], variables=["x"])
    with pytest.raises(zs.EmitError, match="'y' is not an input"):
        lower([("P", ir.var("y"))], variables=["x"])
    with pytest.raises(zs.InvalidArgumentError, match="dtype must be"):
        zs.to_torch(zs.parse("x"), dtype=torch.float16)
    with pytest.raises(ShapeMismatchError, match=r"shape \[\.\.\., 1\]"):
        zs.numpy_evaluator(zs.parse("1/x"))(np.zeros((3, 2)))


@given(expressions)
def test_inplace_inference_graph_is_bit_identical_and_leaves_inputs_alone(expr: sp.Expr) -> None:
    m = zs.to_torch(expr, variables=SYMBOLS)
    x = torch.linspace(-3, 3, 60, dtype=torch.float64).reshape(20, 3)
    x_copy = x.clone()
    with torch.no_grad():
        fast = m(x)
    slow = m._functional(x)
    assert torch.equal(x, x_copy)
    for a, b in zip(fast, slow, strict=True):
        assert torch.equal(torch.nan_to_num(a, nan=7.0), torch.nan_to_num(b, nan=7.0))


def test_inference_code_reuses_buffers_and_grad_mode_uses_functional_graph() -> None:
    m = zs.to_torch(zs.parse("1/(x - 1) + 2/(x - 2) + 3/(x - 3)"))
    assert "mul_(" in m.inference_code and "mul_(" not in m.code
    x = torch.tensor([[0.5]], requires_grad=True)
    P, Q = m(x)
    (P / Q).sum().backward()  # would fail if an in-place graph had run under autograd
    assert x.grad is not None and torch.isfinite(x.grad).all()


@given(expressions)
def test_mask_inputs_are_bit_identical_across_torch_and_numpy(expr: sp.Expr) -> None:
    """Q and every V_i use the same operation sequence in every back-end (P may use FMA in torch)."""
    fru = zs.flatten(expr, variables=SYMBOLS)
    x = np.linspace(-2.7, 3.1, 90, dtype=np.float32).reshape(30, 3)
    P, Q, V = zs.numpy_evaluator(fru).evaluate(x)
    out = zs.to_torch(fru)(torch.from_numpy(x))
    np.testing.assert_array_equal(out[1].numpy(), Q)
    if len(out) == 3:
        np.testing.assert_array_equal(out[2].numpy(), V)
    # P may use a fused multiply-add in torch: equal up to rounding of its terms
    finite = np.isfinite(P)
    scale = float(np.max(np.abs(P[finite]), initial=0.0))
    np.testing.assert_allclose(out[0].numpy(), P, rtol=1e-5, atol=1e-5 * scale + 1e-30)


def test_input_columns_are_copied_once_into_contiguous_rows() -> None:
    """E2-like programs read each input column many times: the inference graph copies the
    used columns once, and a V made of input columns is a view of that copy."""
    from zpml_symbolic.emit.backends.torch_emit import column_layout

    m = zs.to_torch(zs.parse("(x*y + z)/(x - y) + 1/(1 + 1/(x*z)) - (x**2 + y**2)/(z**2 + 1)"))
    layout = column_layout(m.plan)
    names = m.plan.names[0]
    factor_cols = [m.plan.program.instrs[m.plan.program.outputs[v]].index for v in names.V]
    assert layout is not None and list(layout[: len(factor_cols)]) == factor_cols
    assert "torch.stack([" in m.inference_code and "movedim" in m.inference_code
    base = torch.linspace(-2, 2, 2 * 5 * 3).reshape(2, 5, 3)
    for x in (base, base.transpose(0, 1).contiguous().transpose(0, 1), base.double()):
        with torch.no_grad():
            fast = m(x)
        slow = m._functional(x)
        assert fast[2].shape == (2, 5, len(factor_cols))
        for a, b in zip(fast, slow, strict=True):
            assert torch.equal(a, b)
    # one variable, or columns read about once each: no copy
    assert column_layout(zs.to_torch(zs.parse("x**2/(x - 1)")).plan) is None
    assert column_layout(zs.to_torch(zs.parse("x + y")).plan) is None
