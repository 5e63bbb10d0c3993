"""The program's op table and its columns.

Every registered column (back end or analysis) covers every op; every column
agrees with the exact semantics of the table (``SPECS[op].exact``), op by op,
on single-op programs over exactly representable values, in every emission
variant (operands that are inputs, dead temporaries or a 0-d coefficient, a
result that ``Q`` depends on or not); the partial derivatives (the reverse
mode's column) are proven against the exact semantics; the rounding-depth and
absolute-value columns give sound error bounds op by op; ``verify_program``
rejects each broken invariant and runs after every rewrite.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sym_strategies import BOT, SYMBOLS, expressions, ref_eval

import zpml_symbolic as zs
from zpml_symbolic.emit.analyses.certify import ErrorBounds
from zpml_symbolic.emit.analyses.underflow import torch_leaf_values
from zpml_symbolic.emit.backends.numpy_emit import run_program
from zpml_symbolic.emit.backends.torch_adjoint import AdjointRunner
from zpml_symbolic.emit.backends.torch_graph import RationalGraph, _Holder, build_graph
from zpml_symbolic.emit.lowering import program as program_mod
from zpml_symbolic.emit.lowering.interpreter import (
    COLUMNS,
    ExactInterpreter,
    Interpreter,
    missing_ops,
)
from zpml_symbolic.emit.lowering.ops import LEAVES, OPERATIONS, SPECS, Instr, OpCode, Payload
from zpml_symbolic.emit.lowering.plan import OutputNames, Plan, make_plan
from zpml_symbolic.emit.lowering.program import Program, lower, verify_program
from zpml_symbolic.errors import IRVerificationError

#: every column a back end or analysis registers (importing the modules above registers them)
EXPECTED_COLUMNS = {
    "exact",
    "numpy",
    "torch_eager",
    "torch_fx",
    "onnx",
    "rounding_depth",
    "absolute_bound",
    "fold_negations",
}


def test_every_column_covers_every_op() -> None:
    import zpml_symbolic.emit.backends.onnx.lowering  # noqa: F401 - registers the onnx column

    assert set(COLUMNS) >= EXPECTED_COLUMNS
    for name, cls in COLUMNS.items():
        assert missing_ops(cls) == [], f"column {name!r} misses {missing_ops(cls)}"


def test_the_table_has_one_consistent_row_per_op() -> None:
    assert list(SPECS) == list(OpCode)
    assert LEAVES == {OpCode.INPUT, OpCode.PARAM, OpCode.CONST}
    assert set(OPERATIONS) | LEAVES == set(OpCode)
    for op, spec in SPECS.items():
        assert spec.op is op and spec.meaning
        c = Fraction(3, 7) if spec.payload is Payload.CONST else None
        for p in spec.partials(c):
            assert 0 <= p.arg < spec.arity
            assert p.times is None or 0 <= p.times < spec.arity
        if spec.is_leaf:
            assert spec.partials(c) == ()
        else:  # every operand has a partial derivative
            assert {p.arg for p in spec.partials(c)} == set(range(spec.arity))
    # ops read as their names (reports, count_ops keys, JSON)
    assert OpCode.AXPY == "axpy" and {OpCode.ADD: 1} == {"add": 1}


def test_the_documented_table_is_the_table() -> None:
    """The table in ``ops.py``'s docstring lists every op with its arity and payload."""
    from zpml_symbolic.emit.lowering import ops

    rows = {
        line.split()[0]: line.split()[1:3]
        for line in (ops.__doc__ or "").splitlines()
        if line.split() and line.split()[0] in set(OpCode)
    }
    assert rows == {op.value: [str(s.arity), s.payload.value] for op, s in SPECS.items()}


def test_a_column_missing_an_op_cannot_be_built() -> None:
    class Partial(Interpreter[int]):
        def input(self, column: int) -> int:
            return 0

    assert OpCode.AXPY in missing_ops(Partial) and OpCode.INPUT not in missing_ops(Partial)
    with pytest.raises(TypeError, match="abstract"):
        Partial(Program((), ()))  # type: ignore[abstract]


_fractions = st.fractions(min_value=-50, max_value=50, max_denominator=20)


@given(_fractions, _fractions, _fractions, st.fractions(min_value=1, max_value=5))
def test_partial_derivatives_are_the_exact_derivatives(
    a: Fraction, b: Fraction, c: Fraction, h: Fraction
) -> None:
    """Every op is a polynomial of degree <= 2 in each operand, so the central difference
    ``(f(u + h) - f(u - h)) / 2h`` is its derivative exactly."""
    for op in OPERATIONS:
        spec = SPECS[op]
        operands = [a, b][: spec.arity]
        extra = [c] if spec.payload is Payload.CONST else []

        def f(vals: list[Fraction], spec=spec, extra=extra) -> Fraction:
            return spec.exact(*vals, *extra)

        for k in range(spec.arity):
            up, down = list(operands), list(operands)
            up[k] += h
            down[k] -= h
            derivative = (f(up) - f(down)) / (2 * h)
            claimed = sum(
                (
                    p.coef * (1 if p.times is None else operands[p.times])
                    for p in spec.partials(c if extra else None)
                    if p.arg == k
                ),
                Fraction(0),
            )
            assert claimed == derivative, (op, k)


# ----------------------------------------------------------------------------- single-op programs


def _single_op_plan(op: OpCode, c: Fraction, operands: str, critical: bool) -> Plan:
    """``P = op(...)`` over inputs ``a, b`` and coefficient ``p``; ``Q`` is ``P`` itself
    (``critical``: the mask's operation order) or the input ``a`` (``P``-only: fused forms).

    ``operands``: ``"inputs"`` (the columns), ``"temps"`` (``a + 1`` and ``b - 2``, dead
    after the op: in-place forms) or ``"param"`` (the coefficient, then a temporary: a
    scaled product ``addcmul`` can fuse; a unary op of the coefficient alone is 0-d).
    """
    spec = SPECS[op]
    instrs = [
        Instr(OpCode.INPUT, index=0),
        Instr(OpCode.INPUT, index=1),
        Instr(OpCode.PARAM, index=0),
    ]
    scalar = [False, False, True]
    if operands == "inputs":
        args: tuple[int, ...] = (0, 1)
    else:
        instrs += [Instr(OpCode.SHIFT, (0,), Fraction(1)), Instr(OpCode.SHIFT, (1,), Fraction(-2))]
        scalar += [False, False]
        args = (3, 4) if operands == "temps" else (2, 4)
    args = args[: spec.arity]  # a unary op of the coefficient is 0-d (broadcast outputs)
    instrs.append(Instr(op, args, c if spec.payload is Payload.CONST else None))
    scalar.append(all(scalar[k] for k in args))
    r = len(instrs) - 1
    program = Program(("a", "b"), ("p",), instrs, scalar, {"P": r, "Q": r if critical else 0})
    verify_program(program)
    return Plan((), ("a", "b"), ("p",), program, (OutputNames("P", "Q", ()),))


#: exactly representable in float32 and float64, as is every result below
_A = [-3.0, -1.0, 0.0, 0.5, 2.0, 5.0]
_B = [4.0, -2.0, 1.0, 0.0, -0.25, 3.0]
_P = 3.0
_CONSTS = [Fraction(-3, 2), Fraction(1, 4), Fraction(2)]
_CASES = [
    (op, c, operands, critical)
    for op in OPERATIONS
    for c in (_CONSTS if SPECS[op].payload is Payload.CONST else [Fraction(0)])
    for operands in ("inputs", "temps", "param")
    for critical in (True, False)
]


def _exact_p(plan: Plan, a: float, b: float) -> Fraction:
    values = ExactInterpreter(plan.program, [Fraction(a), Fraction(b)], {"p": Fraction(_P)}).run()
    return values[plan.program.outputs["P"]]


def _ids(case: tuple[object, ...]) -> str:
    op, c, operands, critical = case
    return f"{op}-{c}-{operands}-{'Q' if critical else 'P_only'}"


@pytest.mark.parametrize("case", _CASES, ids=[_ids(c) for c in _CASES])
def test_every_back_end_computes_each_op_exactly(case: tuple[OpCode, Fraction, str, bool]) -> None:
    plan = _single_op_plan(*case)
    want = [float(_exact_p(plan, a, b)) for a, b in zip(_A, _B, strict=True)]
    x64 = np.array([_A, _B]).T
    assert run_program(plan, x64, {"p": _P})["P"].tolist() == want  # numpy column
    xt = torch.from_numpy(x64)
    eager = torch_leaf_values(plan.program, xt, [torch.tensor(_P, dtype=torch.float64)])
    assert torch.as_tensor(eager[0]).expand(len(_A)).tolist() == want  # torch_eager column
    coefficients = torch.nn.ParameterDict({"p": torch.nn.Parameter(torch.tensor(_P))})
    holder = _Holder(coefficients)
    for mode in ({}, {"inplace": True}, {"autograd_reuse": True}):  # torch_fx column
        graph = RationalGraph(holder, build_graph(plan, **mode), "Single")
        with torch.no_grad():
            P, _ = graph(xt.clone())
        assert P.tolist() == want, mode
    assert _onnx_p(plan, x64) == want  # onnx column


def _onnx_p(plan: Plan, x: np.ndarray) -> list[float]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from zpml_symbolic.emit.backends.onnx.graph import Graph as _Graph
    from zpml_symbolic.emit.backends.onnx.lowering import lower_program as _lower_program

    g = _Graph("float64", {"p"})
    values = _lower_program(g, plan)
    g.expose(values[plan.program.outputs["P"]], "P_out")  # "P" names the value
    nodes, inits = g.finish()
    graph = helper.make_graph(
        nodes,
        "single_op",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["batch", 2])],
        [helper.make_tensor_value_info("P_out", TensorProto.DOUBLE, ["batch"])],
        initializer=[*inits, numpy_helper.from_array(np.array(_P), "p")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0].tolist()


@pytest.mark.parametrize("case", _CASES, ids=[_ids(c) for c in _CASES])
def test_generated_reverse_mode_differentiates_each_op_exactly(
    case: tuple[OpCode, Fraction, str, bool],
) -> None:
    """Gradients of ``sum(P)`` from the generated backward equal the exact central
    differences of the single-op program (exact: degree <= 2 in every input)."""
    plan = _single_op_plan(*case)
    coefficients = torch.nn.ParameterDict(
        {"p": torch.nn.Parameter(torch.tensor(_P, dtype=torch.float64))}
    )
    runner = AdjointRunner(plan, _Holder(coefficients))
    x = torch.tensor([_A, _B], dtype=torch.float64).T.clone().requires_grad_(True)
    outs = runner(x, [coefficients["p"]])
    k = plan.program.outputs["P"]
    if k not in outs:  # P is a constant or an input column: nothing of ours to differentiate
        return
    outs[k].sum().backward()

    def exact(a: float, b: float, p: float) -> Fraction:
        values = ExactInterpreter(
            plan.program, [Fraction(a), Fraction(b)], {"p": Fraction(p)}
        ).run()
        return values[k]

    grads = []
    for a, b in zip(_A, _B, strict=True):
        grads.append(
            (
                float((exact(a + 1, b, _P) - exact(a - 1, b, _P)) / 2),
                float((exact(a, b + 1, _P) - exact(a, b - 1, _P)) / 2),
            )
        )
    gx = x.grad if x.grad is not None else torch.zeros_like(x)
    assert gx.tolist() == [list(g) for g in grads]
    dp = sum(
        ((exact(a, b, _P + 1) - exact(a, b, _P - 1)) / 2 for a, b in zip(_A, _B, strict=True)),
        Fraction(0),
    )
    gp = coefficients["p"].grad
    assert (0.0 if gp is None else gp.item()) == float(dp)


@pytest.mark.parametrize("op", OPERATIONS)
def test_error_bound_columns_are_sound_for_each_op(op: OpCode) -> None:
    """``|fl(P) - P| <= B`` (certify's rounding depth and absolute-value columns) for one op in
    float32 on values with cancellation, huge and tiny magnitudes, with an inexact constant
    and an inexact coefficient."""
    rng = np.random.default_rng(int.from_bytes(op.encode(), "little") % 2**32)
    cols = [
        np.concatenate(
            [rng.uniform(-4, 4, 200), rng.uniform(-1, 1, 50) * 1e-30, [1 / 3, -1 / 3, 1e30, 3.0]]
        )
        for _ in range(2)
    ]
    x = np.stack(cols, -1).astype(np.float32)
    p = 1 / 3
    for c in (Fraction(1, 3), Fraction(-3, 2)):
        for operands in ("inputs", "temps", "param"):
            plan = _single_op_plan(op, c, operands, True)
            got = run_program(plan, x, {"p": p})["P"].astype(np.float64)
            bound = (
                ErrorBounds(plan).bounds(torch.from_numpy(x), {"p": p}, ["P"])["P"].double().numpy()
            )
            for row, fl, b in zip(x, got, bound, strict=True):
                if not np.isfinite(fl):
                    continue
                values = ExactInterpreter(
                    plan.program, [Fraction(float(v)) for v in row], {"p": Fraction(p)}
                ).run()
                exact = values[plan.program.outputs["P"]]
                assert abs(Fraction(float(fl)) - exact) <= Fraction(float(b)), (
                    op,
                    c,
                    operands,
                    row,
                )


# ----------------------------------------------------------------------------- exact semantics of programs


@given(expressions, st.lists(st.fractions(-4, 4, max_denominator=6), min_size=3, max_size=3))
def test_lowered_programs_have_the_exact_value_of_the_tree(expr, point: list[Fraction]) -> None:
    """``P/Q`` of the program, evaluated exactly op by op (the ``exact`` column), is the value
    of the tree as written (an independent evaluator); at the tree's bottoms ``Q`` or a
    validity factor is exactly 0."""
    fru = zs.flatten(expr, variables=SYMBOLS)
    plan = make_plan([fru])
    env = dict(zip(SYMBOLS, point, strict=True))
    values = ExactInterpreter(plan.program, [env[s] for s in SYMBOLS]).run()
    names, out = plan.names[0], plan.program.outputs
    P, Q = values[out[names.P]], values[out[names.Q]]
    zero_factor = any(values[out[v]] == 0 for v in names.V)
    ref = ref_eval(expr, env)
    if ref is BOT:
        assert Q == 0 or zero_factor
    else:
        assert Q != 0 and not zero_factor and P / Q == ref


# ----------------------------------------------------------------------------- verify_program


def _ok() -> Program:
    return lower(
        [("P", zs.flatten(zs.parse("3*x - y/2 + x*y")).numerator_ir)], variables=("x", "y")
    )


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: p.instrs.__setitem__(2, Instr("mul", p.instrs[2].args)), "is not an OpCode"),
        (lambda p: p.instrs.append(Instr(OpCode.ADD, (0,))), "1 operands, add takes 2"),
        (lambda p: p.instrs.append(Instr(OpCode.NEG, (len(p.instrs),))), "not an earlier"),
        (lambda p: p.instrs.append(Instr(OpCode.SCALE, (0,))), "needs an exact constant"),
        (lambda p: p.instrs.append(Instr(OpCode.SCALE, (0,), 0.5)), "needs an exact constant"),  # type: ignore[arg-type]
        (lambda p: p.instrs.append(Instr(OpCode.NEG, (0,), Fraction(1))), "takes no constant"),
        (lambda p: p.instrs.append(Instr(OpCode.INPUT, index=2)), r"index in \[0, 2\)"),
        (lambda p: p.instrs.append(Instr(OpCode.PARAM, index=0)), r"index in \[0, 0\)"),
        (lambda p: p.instrs.append(Instr(OpCode.INPUT)), r"index in \[0, 2\)"),
        (lambda p: p.scalar.__setitem__(0, True), "scalar flag True should be False"),
        (lambda p: p.outputs.__setitem__("Q", 99), "output 'Q' refers to instruction 99"),
        (lambda p: p.taps.__setitem__("t", -1), "tap 't' refers to instruction -1"),
    ],
)
def test_verify_program_rejects_each_broken_invariant(corrupt, message: str) -> None:
    program = _ok()
    verify_program(program)
    corrupt(program)
    if len(program.scalar) < len(program.instrs):
        program.scalar.append(False)
    with pytest.raises(IRVerificationError, match=message):
        verify_program(program)


def test_every_rewrite_is_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rewrite that breaks an invariant is caught where it happens."""
    bad_neg = lambda self, a: (self.emit(OpCode.NEG, (a[0], a[0])), False)  # noqa: E731

    monkeypatch.setattr(program_mod._FoldNegations, "neg", bad_neg, raising=True)
    fru = zs.flatten(zs.parse("1 - x*y"))
    with pytest.raises(IRVerificationError, match="2 operands, neg takes 1"):
        make_plan([fru])


def test_failures_name_the_instruction() -> None:
    program = _ok()

    class Failing(ExactInterpreter):
        def mul(self, a: Fraction, b: Fraction) -> Fraction:
            raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError) as info:
        Failing(program, [Fraction(1), Fraction(2)]).run()
    k = next(i for i, ins in enumerate(program.instrs) if ins.op is OpCode.MUL)
    assert f"while executing instruction {k} (mul)" in "\n".join(info.value.__notes__)


def test_count_ops_names_ops_as_plain_strings() -> None:
    counts = _ok().count_ops()
    assert all(type(k) is str for k in counts) and counts["input"] == 2
    assert list(itertools.chain(counts)) == list(dict.fromkeys(str(i.op) for i in _ok().instrs))


def test_emit_folders_import_downwards() -> None:
    """``lowering/`` imports nothing from ``analyses/`` or ``backends/``; ``analyses/``
    nothing from ``backends/`` (every import, lazy ones included)."""
    import ast
    from pathlib import Path

    emit = Path(zs.__file__).parent / "emit"
    allowed = {"lowering": ("lowering",), "analyses": ("lowering", "analyses")}
    for folder, ok in allowed.items():
        for path in (emit / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                for name in names:
                    parts = name.split(".")
                    if parts[:2] == ["zpml_symbolic", "emit"] and len(parts) > 2:
                        assert parts[2] in ok, f"{path.name} imports {name}"
