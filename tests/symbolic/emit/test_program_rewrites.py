"""Exact rewrites of the lowered program (``zpml_symbolic.emit.lowering.program``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import sympy as sp
from hypothesis import given
from sym_strategies import SYMBOLS, expressions

import zpml_symbolic as zs
from zpml_symbolic.emit.backends.numpy_emit import run_program
from zpml_symbolic.emit.lowering.plan import Plan, make_plan
from zpml_symbolic.emit.lowering.program import Program, eliminate_dead_code, fold_negations, lower


def _unfolded(plan: Plan) -> Program:
    outputs = []
    for f, names in zip(plan.frus, plan.names, strict=True):
        outputs += [(names.P, f.numerator_ir), (names.Q, f.denominator_ir)]
        outputs += list(zip(names.V, f.validity_factor_irs, strict=True))
    return lower(outputs, variables=plan.variables, parameters=plan.parameters, fold=False)


@given(expressions)
def test_fold_negations_is_bit_exact_and_never_adds_work(expr: sp.Expr) -> None:
    fru = zs.flatten(expr, variables=SYMBOLS)
    plan = make_plan([fru])
    before = _unfolded(plan)
    after = eliminate_dead_code(fold_negations(before))
    assert after.instrs == plan.program.instrs  # lowering folds by default
    count = lambda p: sum(i.op not in ("input", "param", "const") for i in p.instrs)  # noqa: E731
    assert count(after) <= count(before)
    assert after.count_ops().get("neg", 0) <= before.count_ops().get("neg", 0)
    grid = np.array(np.meshgrid(*[[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]] * 3)).reshape(3, -1).T
    x = np.concatenate([grid, np.linspace(-3.0, 3.0, 61).reshape(-1, 1) * [1.0, -0.7, 0.3]])
    for dtype in (np.float32, np.float64):
        xs = x.astype(dtype)
        old = run_program(dataclasses.replace(plan, program=before), xs, {})
        new = run_program(plan, xs, {})
        for name in old:
            np.testing.assert_array_equal(new[name], old[name])
            real = ~np.isnan(old[name])  # signed zeros too
            np.testing.assert_array_equal(np.signbit(new[name][real]), np.signbit(old[name][real]))


def test_negations_are_absorbed_into_differences() -> None:
    fru = zs.flatten(zs.parse("(x*y + z)/(x - y) - (x**2 + y**2)/(z**2 + 1)"))
    ops = make_plan([fru]).program.count_ops()
    assert "neg" not in ops


def test_signed_zeros_survive_folding() -> None:
    # 1 - x lowers to neg then shift; at x = 1 the result must stay +0, not -(x - 1) = -0
    plan = make_plan([zs.flatten(zs.parse("(1 - x)*y"))])
    out = run_program(plan, np.array([[1.0, 2.0], [1.0, 3.0]]), {})
    assert (out["P"] == 0).all() and not np.signbit(out["P"]).any()
