"""The direct ONNX emitter (zpml_symbolic.emit.backends.onnx).

Every output of the onnxruntime session is compared with the runtime's
``strict_inference`` applied to ``P, Q, V`` from the torch module (masks
identical, decoded close) and from the numpy reference program (everything
bit for bit: same operations, same roundings); a property test checks the
exact bottom set in float64 against exact rational evaluation.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import subprocess
import sys
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.printer
import onnxruntime as ort
import pytest
import sympy as sp
import torch
from hypothesis import given, note
from hypothesis import strategies as st
from onnx import numpy_helper
from sym_strategies import SYMBOLS, expressions, random_points, singular_points

import zpml_symbolic as zs
from zpml_core.arrays import effective_threshold
from zpml_runtime.errors import InvalidConfigError, ThresholdUnderflowError
from zpml_runtime.inference import InferenceConfig, strict_inference
from zpml_symbolic.emit.backends.numpy_emit import run_program
from zpml_symbolic.emit.backends.onnx import (
    DEFAULT_OPSET,
    DEFAULT_TILE_ROWS,
    MIN_OPSET,
    ONNX_OPS,
    OUTPUT_NAMES,
    check_baked_thresholds,
    read_baked_thresholds,
    read_metadata,
    to_onnx,
)
from zpml_symbolic.emit.backends.torch_emit import to_torch
from zpml_symbolic.emit.lowering.plan import Plan, make_plan
from zpml_symbolic.emit.lowering.program import OPS
from zpml_symbolic.errors import EmitError, InvalidArgumentError

EXAMPLE = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
GOLDEN = Path(__file__).parent / "golden_onnx" / "example.textproto"

#: (expression, coefficient values): poles, constant Q (polynomials), always bottom,
#: several factors, parameters in P, Q and a factor, constant-only, rational constants
CASES: list[tuple[str, dict[str, float]]] = [
    (EXAMPLE, {}),
    ("x**2 + 3", {}),
    ("1/(x - x)", {}),
    ("1/(1/x) + 1/(1/y)", {}),
    ("1/(1/x)", {}),  # P and V0 are the same value: fault_mask and the factor's mask coincide
    ("(a0 + a1*x)/(1 + b1*x)", {"a0": 1.0, "a1": 2.0, "b1": 0.5}),
    ("x/(1/a)", {"a": 0.5}),
    ("x/(1/a)", {"a": 0.0}),
    ("1/a + x", {"a": 0.25}),
    ("1/a", {"a": 2.0}),
    ("3", {}),
    ("x/(y/z) + 1/(x*y - 3*z)", {}),
    ("(x/3 + y)/(x**3 - 2*y) + 5/(3*(z - 1/2))", {}),
    ("(x**2 - y**2)/(x - y)", {}),
]
CASE_IDS = [f"{e} {init}" if init else e for e, init in CASES]

CONFIGS = {
    "exact": (InferenceConfig(tau_infer=0.0), 0.0),
    "taus": (InferenceConfig(tau_infer=1e-6, tau_train=1e-3), 1e-4),
}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"x": x}), strict=True))


def _build(expr: str, init: dict[str, float], dtype: str, **kw: Any) -> onnx.ModelProto:
    return to_onnx(expr, parameters=list(init), init=init, dtype=dtype, **kw)


def _taus(tau: float, k: int) -> list[float]:
    """Distinct per-factor thresholds (exercises the per-factor constants)."""
    return [tau * (i + 1) for i in range(k)]


def _batch(n: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Dyadic grid (exact poles), specials per column (NaN, +-Inf, overflow, tiny), random."""
    grid = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]
    if n == 0:
        return np.zeros((5, 0), dtype=dtype)
    rows = [list(r) for r in itertools.product(grid, repeat=n)]
    huge = 3e38 if dtype == "float32" else 1e300
    tiny = 1e-30 if dtype == "float32" else 1e-300
    specials = [math.nan, math.inf, -math.inf, huge, -huge, 1e19, tiny, 1e-7, 3e-4]
    for s in specials:
        for j in range(n):
            row = list(rng.choice(grid, size=n))
            row[j] = s
            rows.append(row)
    rows += [list(r) for r in rng.standard_normal((200, n))]
    rows += [list(r) for r in 10.0 ** rng.uniform(-8, 8, (100, n)) * rng.choice([-1, 1], (100, n))]
    return np.asarray(rows, dtype=np.float64).astype(dtype)


def _strict(
    plan_outputs: tuple[np.ndarray, ...], k: int, config: InferenceConfig, taus: list[float]
) -> dict[str, np.ndarray]:
    P, Q, *V = plan_outputs
    result = strict_inference(
        P, Q, config=config, validity_factors=V if k else None, validity_taus=taus
    )
    return dict(result.as_dict())


def reference_torch(
    expr: str, init: dict[str, float], x: np.ndarray, config: InferenceConfig, taus: list[float]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """strict_inference on P, Q, V from the torch module (the brief's reference), and Q."""
    tdtype = torch.float32 if x.dtype == np.float32 else torch.float64
    module = to_torch(expr, parameters=list(init), init=init or None, dtype=tdtype)
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    P, Q = out[0].detach().numpy(), out[1].detach().numpy()
    V = [out[2][..., i].detach().numpy() for i in range(out[2].shape[-1])] if len(out) == 3 else []
    return _strict((P, Q, *V), len(V), config, taus), Q


def _magnitudes(
    plan: Plan, x: np.ndarray, coefficients: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """The program run on absolute values (``a - b`` as ``|a| + |b|``), in float64.

    Two evaluations of an output that differ only in rounding (torch's fused
    ``axpy`` rounds once, the graph twice) differ by at most about
    ``2 * n * eps * M`` for ``n`` instructions.
    """
    program = plan.program
    vals: list[Any] = []
    with np.errstate(all="ignore"):
        ax = np.abs(x.astype(np.float64))
        for ins in program.instrs:
            c = abs(float(ins.const)) if ins.const is not None else 0.0
            a = [vals[i] for i in ins.args]
            if ins.op == "input":
                v = ax[:, ins.index or 0]
            elif ins.op == "param":
                v = abs(coefficients[program.parameters[ins.index or 0]])
            elif ins.op == "const":
                v = c
            elif ins.op in ("add", "sub", "shift", "axpy"):
                v = a[0] + (c * a[1] if ins.op == "axpy" else c if ins.op == "shift" else a[1])
            elif ins.op in ("mul", "square"):
                v = a[0] * a[-1]
            else:  # neg, scale
                v = a[0] * (c if ins.op == "scale" else 1.0)
            vals.append(v)
    return {name: np.broadcast_to(vals[i], x.shape[:1]) for name, i in program.outputs.items()}


def _rounding_slack(
    plan: Plan, x: np.ndarray, coefficients: Mapping[str, float], decoded: np.ndarray, Q: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-sample absolute slack for decoded and factor values between two roundings."""
    M = _magnitudes(plan, x, coefficients)
    gamma = 4 * len(plan.program.instrs) * float(np.finfo(x.dtype).eps)
    names = plan.names[0]
    with np.errstate(all="ignore"):
        slack = {"decoded": gamma * (M[names.P] + np.abs(decoded) * M[names.Q]) / np.abs(Q)}
        for i, v in enumerate(names.V):
            slack[f"structural_validity_factor_{i}_value"] = gamma * M[v]
    return slack


def reference_numpy(
    plan: Plan, init: Mapping[str, float], x: np.ndarray, config: InferenceConfig, taus: list[float]
) -> dict[str, np.ndarray]:
    """strict_inference on P, Q, V from the numpy reference program."""
    values = run_program(plan, x, init)
    names = plan.names[0]
    outs = (values[names.P], values[names.Q], *(values[v] for v in names.V))
    return _strict(outs, len(names.V), config, taus)


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool(
        np.array_equal(nan_a, nan_b)
        and np.array_equal(a[~nan_a].view(np.uint8), b[~nan_b].view(np.uint8))
    )


def assert_outputs(
    got: dict[str, np.ndarray],
    ref: dict[str, np.ndarray],
    dtype: str,
    *,
    slack: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Masks identical; floats bit for bit (``slack=None``) or within ``rtol`` plus ``slack``."""
    assert list(got) == list(ref)
    rtol = 1e-6 if dtype == "float32" else 1e-12
    for name, r in ref.items():
        g = got[name]
        assert g.shape == r.shape, name
        assert g.dtype == r.dtype, (name, g.dtype, r.dtype)
        if g.dtype.kind != "f":
            np.testing.assert_array_equal(g, r, err_msg=name)
        elif slack is None:
            assert _bits_equal(g, r), name
        else:
            finite = np.isfinite(r)
            np.testing.assert_array_equal(g[~finite], r[~finite], err_msg=name)  # NaN, +-Inf alike
            with np.errstate(all="ignore"):
                bad = ~(np.abs(g - r) <= rtol * np.abs(r) + slack.get(name, 0.0))[finite]
            assert not bad.any(), (
                name,
                np.flatnonzero(finite)[bad],
                g[finite][bad],
                r[finite][bad],
            )


# --------------------------------------------------------------------------- structure


def test_op_table_covers_every_program_op() -> None:
    assert set(ONNX_OPS) == set(OPS) - {"input", "param", "const"}


@pytest.mark.parametrize("opset", [MIN_OPSET, DEFAULT_OPSET])
@pytest.mark.parametrize(("expr", "init"), CASES, ids=CASE_IDS)
def test_check_model_full(expr: str, init: dict[str, float], opset: int) -> None:
    for dtype in ("float32", "float64"):
        config, tau = CONFIGS["taus"]
        model = _build(expr, init, dtype, config=config, validity_taus=tau, opset=opset)
        onnx.checker.check_model(model, full_check=True)
        assert model.producer_name == "zpml_symbolic"
        assert model.opset_import[0].version == opset
        graph = model.graph
        assert [i.name for i in graph.input] == ["x"]
        dims = graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
        fru = zs.flatten(zs.parse(expr, parameters=list(init)))
        names = list(OUTPUT_NAMES) + list(fru.structural_validity_output_schema().output_names)
        assert [o.name for o in graph.output] == names
        assert {o.type.tensor_type.shape.dim[0].dim_param for o in graph.output} == {"batch"}
        for init_name, value in init.items():
            tensor = next(t for t in graph.initializer if t.name == init_name)
            assert float(numpy_helper.to_array(tensor)) == float(np.asarray(value, dtype=dtype))


def test_output_types() -> None:
    model = to_onnx(EXAMPLE, dtype="float64")
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    T = onnx.TensorProto
    assert types["decoded"] == T.DOUBLE and types["structural_validity_factor_0_value"] == T.DOUBLE
    assert types["bottom_provenance"] == T.INT8
    assert all(types[n] == T.BOOL for n in OUTPUT_NAMES[1:5])
    assert model.graph.input[0].type.tensor_type.elem_type == T.DOUBLE


def test_example_is_compact() -> None:
    config = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    model = to_onnx(EXAMPLE, config=config, tile_rows=None)
    ops = [n.op_type for n in model.graph.node]
    # 11 for the columns and P, Q, V; 27 for the masks (exact zeros are an Equal OR-ed
    # with each threshold test, so denormals-as-zero cannot accept Q == 0 or V == 0);
    # 3 for underflow (Q is a product: ReduceSum + Cast of "some Q == 0", an If whose
    # branch tests the factors of Q only then)
    assert len(ops) == 41
    assert ops.count("If") == 1
    assert {"Identity", "Expand", "IsInf", "Gather"}.isdisjoint(ops)
    assert ops.count("Where") == 1  # only decoded: Where is several passes in onnxruntime
    poly = to_onnx("x**2 + 3", tile_rows=None)  # Q == 1: no zero test, no division, no |Q|
    assert {"Div", "Equal", "Abs"}.isdisjoint(n.op_type for n in poly.graph.node)


def test_tiled_graph_is_a_scan_of_the_flat_graph() -> None:
    """The default graph scans row tiles; its body is the flat graph's computation."""
    config = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    flat = to_onnx(EXAMPLE, config=config, tile_rows=None)
    tiled = to_onnx(EXAMPLE, config=config)
    (scan,) = [n for n in tiled.graph.node if n.op_type == "Scan"]
    body = next(a.g for a in scan.attribute if a.name == "body")
    assert [n.op_type for n in body.node] == [n.op_type for n in flat.graph.node]
    assert [o.name for o in tiled.graph.output] == [o.name for o in flat.graph.output]
    assert [t.name for t in tiled.graph.initializer][: len(flat.graph.initializer)] == [
        t.name for t in flat.graph.initializer
    ]
    assert read_metadata(tiled)["tile_rows"] == DEFAULT_TILE_ROWS
    assert read_metadata(flat)["tile_rows"] is None
    check_baked_thresholds(tiled)


#: every case but the first (two variables, a retained factor) is in the slow suite
TILING_CASES = [
    pytest.param(*case, id=case_id, marks=() if k == 0 else pytest.mark.slow)
    for k, (case, case_id) in enumerate(zip(CASES, CASE_IDS, strict=True))
]


@pytest.mark.parametrize(("expr", "init"), TILING_CASES)
def test_tiling_is_bit_identical(expr: str, init: dict[str, float]) -> None:
    """Any tile size (one row, ragged last tile, one tile, no tiling) gives the same bytes,
    for every batch size including 0 and 1."""
    config, tau = CONFIGS["taus"]
    for dtype in ("float32", "float64"):
        fru = zs.flatten(zs.parse(expr, parameters=list(init)))
        x = _batch(len(fru.variables), dtype, np.random.default_rng(1))
        kw: dict[str, Any] = {"init": init, "dtype": dtype, "config": config, "validity_taus": tau}
        flat = _session(to_onnx(fru, tile_rows=None, **kw))
        tiled = [_session(to_onnx(fru, tile_rows=t, **kw)) for t in (1, 7, 10_000)]
        for rows in (x, x[:0], x[:1], x[:9]):
            want = flat.run(None, {"x": rows})
            for sess in tiled:
                got = sess.run(None, {"x": rows})
                for a, b in zip(got, want, strict=True):
                    assert a.dtype == b.dtype and a.shape == b.shape == (len(rows),)
                    assert a.tobytes() == b.tobytes()


def _inputs_read(graph: onnx.GraphProto) -> set[str]:
    """Every name a node of ``graph`` or of its subgraphs reads."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                names |= _inputs_read(attr.g)
    return names


@pytest.mark.parametrize("tile_rows", [None, 5])
@pytest.mark.parametrize(("expr", "init"), CASES, ids=CASE_IDS)
def test_quotient_output(expr: str, init: dict[str, float], tile_rows: int | None) -> None:
    """``outputs="quotient"``: one output, ``P / Q`` bit for bit like the numpy program."""
    for dtype in ("float32", "float64"):
        fru = zs.flatten(zs.parse(expr, parameters=list(init)))
        model = to_onnx(fru, init=init, dtype=dtype, outputs="quotient", tile_rows=tile_rows)
        onnx.checker.check_model(model, full_check=True)
        assert [o.name for o in model.graph.output] == ["quotient"]
        meta = read_metadata(model)
        assert meta["outputs"] == "quotient" and meta["output_names"] == ["quotient"]
        assert "effective_thresholds" not in meta
        assert not [t for t in model.graph.initializer if t.name.startswith("zpml_t_")]
        assert {t.name for t in model.graph.initializer} <= _inputs_read(model.graph)
        x = _batch(len(fru.variables), dtype, np.random.default_rng(0))
        got = run_onnx(model, x)["quotient"]
        plan = make_plan([fru])
        coefficients = {n: float(np.asarray(v, dtype=dtype)) for n, v in init.items()}
        values = run_program(plan, x, coefficients)
        names = plan.names[0]
        with np.errstate(all="ignore"):
            want = np.broadcast_to(np.divide(values[names.P], values[names.Q]), (len(x),))
        assert got.dtype == want.dtype
        assert _bits_equal(got, want.astype(got.dtype))


def test_deterministic() -> None:
    config = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    first = to_onnx(EXAMPLE, config=config, validity_taus=[1e-3])
    assert (
        first.SerializeToString()
        == to_onnx(EXAMPLE, config=config, validity_taus=[1e-3]).SerializeToString()
    )


@pytest.mark.slow
def test_deterministic_across_processes() -> None:
    """Another hash seed gives the same bytes (no set/dict-order dependence); ~6 s (imports torch)."""
    config = "InferenceConfig(tau_infer=1e-6, tau_train=1e-4)"
    code = (
        "import hashlib, sys\n"
        "from zpml_runtime.inference import InferenceConfig\n"
        "from zpml_symbolic.emit.backends.onnx import to_onnx\n"
        f"m = to_onnx({EXAMPLE!r}, config={config}, validity_taus=[1e-3])\n"
        "sys.stdout.write(hashlib.sha256(m.SerializeToString()).hexdigest())\n"
    )
    here = to_onnx(
        EXAMPLE, config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4), validity_taus=[1e-3]
    )
    again = to_onnx(
        EXAMPLE, config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4), validity_taus=[1e-3]
    )
    assert here.SerializeToString() == again.SerializeToString()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == hashlib.sha256(here.SerializeToString()).hexdigest()


def _normalised_text(model: onnx.ModelProto) -> str:
    """The model as text with the package version masked (so a release does not churn the golden)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.producer_version = "<version>"
    for prop in m.metadata_props:
        if prop.key == "zpml.version":
            prop.value = "<version>"
    return onnx.printer.to_text(m) + "\n"


def test_golden_textproto() -> None:
    model = to_onnx(
        EXAMPLE, config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4), dtype="float32"
    )
    text = _normalised_text(model)
    if os.environ.get("ZPML_REGEN_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.read_text() == text, (
        "golden ONNX text changed; regenerate with ZPML_REGEN_GOLDEN=1"
    )


# --------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("config_id", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("expr", "init"), CASES, ids=CASE_IDS)
def test_matches_strict_inference(
    expr: str, init: dict[str, float], dtype: str, config_id: str
) -> None:
    config, tau = CONFIGS[config_id]
    fru = zs.flatten(zs.parse(expr, parameters=list(init)))
    k = len(fru.validity_factors)
    taus = _taus(tau, k)
    # 64-row tiles: the ~400-row batch runs as several tiles plus zero padding
    model = to_onnx(fru, init=init, dtype=dtype, config=config, validity_taus=taus, tile_rows=64)
    x = _batch(len(fru.variables), dtype, np.random.default_rng(0))
    got = run_onnx(model, x)
    assert all(v.shape == (len(x),) for v in got.values())
    plan = make_plan([fru])
    coefficients = {n: float(np.asarray(v, dtype=dtype)) for n, v in init.items()}
    # the numpy reference runs the same operations with the same roundings: bit for bit
    assert_outputs(got, reference_numpy(plan, coefficients, x, config, taus), dtype)
    # torch's axpy is one fused (FMA) rounding: floats agree up to rounding, masks exactly
    ref, Q = reference_torch(expr, init, x, config, taus)
    slack = _rounding_slack(plan, x, coefficients, ref["decoded"], Q)
    assert_outputs(got, ref, dtype, slack=slack)


def test_masks_cover_every_category() -> None:
    """The example batch really exercises faults, semantic bottoms, mixed and gaps."""
    config = InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    model = to_onnx(EXAMPLE, config=config, validity_taus=1e-4)
    x = np.array(
        [
            [2.0, 1.0],
            [1.0, 1.0],
            [0.0, 1.0],
            [np.nan, 1.0],
            [3e38, 1.0],
            [1.0, 1.0 - 1e-4],
            [np.inf, np.inf],
            [1e20, 1e-20],
        ],
        dtype=np.float32,
    )
    out = run_onnx(model, x)
    assert out["bottom_provenance"].tolist() == [0, 2, 2, 1, 1, 0, 1, 1]
    assert out["gap_mask"].tolist() == [False, False, False, False, False, True, False, False]
    assert (
        out["structural_validity_factor_0_semantic_bottom_mask"].tolist()
        == [False, False, True] + [False] * 5
    )
    assert np.isnan(out["decoded"][1:5]).all() and out["decoded"][0] == np.float32(5 + 2 / 3)


def test_rational_module_argument() -> None:
    expr = zs.parse("(a0 + a1*x)/(1 + b1*x)", parameters=["a0", "a1", "b1"])
    module = to_torch(expr, init={"a0": 1.0, "a1": 2.0, "b1": 0.5})
    with torch.no_grad():
        module.get_parameter("coefficients.b1").fill_(-0.25)
    model = to_onnx(module)
    direct = to_onnx(expr, init={"a0": 1.0, "a1": 2.0, "b1": -0.25})
    assert model.SerializeToString() == direct.SerializeToString()
    x = np.array([[4.0], [1.0]], dtype=np.float32)
    out = run_onnx(model, x)
    assert out["bottom_mask"].tolist() == [True, False]
    assert out["decoded"][1] == np.float32(3.0 / 0.75)


# --------------------------------------------------------------------------- exact bottom set

U = 2.0**-53


def _representable(v: Fraction) -> bool:
    try:
        return Fraction(float(v)) == v
    except OverflowError:
        return False


def _exact_run(
    plan: Plan, point: Mapping[str, Fraction]
) -> tuple[list[Fraction], list[bool], list[Fraction]]:
    """Exact value of each instruction, whether the float64 graph computes it exactly
    (every operand, constant, intermediate product and result representable, so by
    induction each correctly rounded IEEE operation is exact) and an a-priori bound
    ``M`` (the program run on absolute values) for the rounding error ``<= gamma * M``."""
    vals: list[Fraction] = []
    exact: list[bool] = []
    mags: list[Fraction] = []
    for ins in plan.program.instrs:
        a = [vals[i] for i in ins.args]
        m = [mags[i] for i in ins.args]
        ok = all(exact[i] for i in ins.args)
        c = ins.const
        if ins.op == "input":
            v = point[plan.variables[ins.index or 0]]
            mag = abs(v)
        elif ins.op == "const":
            assert c is not None
            v, mag = c, abs(c)
        elif ins.op in ("add", "sub"):
            v = a[0] + a[1] if ins.op == "add" else a[0] - a[1]
            mag = m[0] + m[1]
        elif ins.op in ("mul", "square"):
            v = a[0] * a[-1]
            mag = m[0] * m[-1]
        elif ins.op == "neg":
            v, mag = -a[0], m[0]
        elif ins.op == "scale":
            assert c is not None
            v, mag = c * a[0], abs(c) * m[0]
        elif ins.op == "shift":
            assert c is not None
            v, mag = a[0] + c, m[0] + abs(c)
        else:  # axpy: Mul then Add in the graph
            assert ins.op == "axpy" and c is not None
            ok = ok and _representable(c * a[1])
            v, mag = a[0] + c * a[1], m[0] + abs(c) * m[1]
        if c is not None:
            ok = ok and _representable(c)
        vals.append(v)
        exact.append(ok and _representable(v))
        mags.append(mag)
    return vals, exact, mags


def _dyadic(v: Fraction) -> bool:
    return v.denominator & (v.denominator - 1) == 0


@given(expressions, st.randoms(use_true_random=False))
def test_exact_bottom_set_float64(expr: sp.Expr, rnd: random.Random) -> None:
    """tau_infer = tau_i = 0 in float64: the graph's bottom set is the exact one.

    Filter: points with dyadic coordinates (exactly representable), and only
    where ``Q`` and every ``V_i`` are computed exactly (checked instruction by
    instruction by :func:`_exact_run`); there ``Q == 0``/``V_i == 0`` in floats iff
    exactly. ``decoded`` is within 1e-9 relative of ``P/Q``, widened by the
    a-priori rounding bound of ``P`` (rational constants such as 5/3 round).
    """
    fru = zs.flatten(expr, variables=SYMBOLS)
    plan = make_plan([fru])
    model = to_onnx(fru, dtype="float64")
    rng = random.Random(rnd.random())
    dyadic = [
        {s: Fraction(rng.randint(-16, 16), 2 ** rng.randint(0, 3)) for s in SYMBOLS}
        for _ in range(4)
    ]
    points = [
        p
        for p in singular_points(expr, rng) + random_points(rng) + dyadic
        if all(map(_dyadic, p.values()))
    ]
    names = plan.program.outputs
    rows, expected = [], []
    for p in points:
        point = {s.name: v for s, v in p.items()}
        vals, exact, mags = _exact_run(plan, point)
        if not all(exact[names[n]] for n in ("Q", *plan.names[0].V)):
            continue
        rows.append([float(point[v]) for v in plan.variables])
        expected.append((fru.evaluate(p), vals[names["P"]], vals[names["Q"]], mags[names["P"]]))
    note(f"{len(rows)} of {len(points)} points usable; P = {fru.numerator}, Q = {fru.denominator}")
    if not rows:
        return
    out = run_onnx(model, np.asarray(rows, dtype=np.float64))
    gamma = 2 * (len(plan.program.instrs) + 2) * U
    for r, (value, P, Q, mag_P) in enumerate(expected):
        bottom = value is zs.BOTTOM
        assert bool(out["bottom_mask"][r]) == bottom, (rows[r], value)
        assert bool(out["semantic_bottom_mask"][r]) == bottom and not out["fault_mask"][r]
        assert not out["gap_mask"][r]
        if not bottom:
            exact_value = Fraction(int(value.p), int(value.q))
            assert exact_value == P / Q
            err = abs(Fraction(float(out["decoded"][r])) - exact_value)
            assert err <= Fraction(1e-9) * abs(exact_value) + Fraction(gamma) * mag_P / abs(Q)
        else:
            assert math.isnan(out["decoded"][r])


NEG_CASES = [
    "-(x*y) - z",
    "-(x**2+y**2)*z + 1/(x-y)",
    "(x*y + z)/(x - y) - (x**2 + y**2)/(z**2 + 1)",
    "-(x+y)*(y+z) - (x+z)**2",
    "-(x*y)**2/(1 - x*y)",
    "-(x+y)/(-(z+x))",
    "3 - (x+y)*(z+y)",
    "-(x + y) + 2",
    "-(x+y) - (y+z)",
]


@pytest.mark.parametrize("expr", NEG_CASES)
def test_negations_are_bit_exact(expr: str) -> None:
    """Expressions with negations give the numpy program's bytes, signed zeros
    included (strict and value-only graphs), with at most one ``Neg`` per ``neg``."""
    fru = zs.flatten(zs.parse(expr))
    plan = make_plan([fru])
    negs = sum(ins.op == "neg" for ins in plan.program.instrs)
    specials = [0.0, -0.0, 1.0, -1.0, 2.0, -0.5, math.inf, -math.inf, math.nan, 3e38, 1e-45]
    x = np.array(list(itertools.product(specials, repeat=len(fru.variables))), dtype=np.float32)
    for outputs in ("quotient", "strict"):
        model = to_onnx(fru, outputs=outputs, tile_rows=None)
        assert sum(n.op_type == "Neg" for n in model.graph.node) <= negs
        got = run_onnx(model, x)
        values = run_program(plan, x, {})
        names = plan.names[0]
        with np.errstate(all="ignore"):
            P, Q = values[names.P], values[names.Q]
            if outputs == "quotient":
                want = {"quotient": np.broadcast_to(np.divide(P, Q), (len(x),))}
            else:
                V = [values[v] for v in names.V]
                want = _strict((P, Q, *V), len(V), InferenceConfig(tau_infer=0.0), [0.0] * len(V))
        for name, w in want.items():
            g = got[name]
            if g.dtype.kind == "f":
                assert _bits_equal(g, np.broadcast_to(w, g.shape).astype(g.dtype)), name
            else:
                np.testing.assert_array_equal(g, w, err_msg=name)


# --------------------------------------------------------------------------- metadata


def test_metadata_records_everything() -> None:
    config = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    model = to_onnx(EXAMPLE, config=config, validity_taus=[1e-3])
    meta = read_metadata(model)
    fru = zs.flatten(zs.parse(EXAMPLE))
    assert meta["dtype"] == "float32" and meta["version"] == zs.__version__
    assert meta["variables"] == ["x", "y"] and meta["parameters"] == []
    assert (
        meta["tau_infer"] == 1e-6 and meta["tau_train"] == 1e-4 and meta["validity_taus"] == [1e-3]
    )
    assert meta["inference_config"] == config.to_metadata()
    assert meta["schema"] == fru.structural_validity_output_schema().to_metadata()
    assert meta["output_names"] == [o.name for o in model.graph.output]
    t_infer, t_train = config.thresholds_for("float32")
    t_factor = effective_threshold(1e-3, "float32", "validity_taus[0]")
    assert meta["effective_thresholds"] == {
        "t_infer": t_infer,
        "t_train": t_train,
        "t_factors": [t_factor],
    }
    assert read_baked_thresholds(model) == meta["effective_thresholds"]
    check_baked_thresholds(model)


def test_threshold_edit_is_seen_and_live() -> None:
    model = to_onnx(EXAMPLE, config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4))
    x = np.array([[1.0, 0.5]], dtype=np.float32)  # Q = (x + 1)(x - y) = 1
    assert not run_onnx(model, x)["bottom_mask"][0]
    tensor = next(t for t in model.graph.initializer if t.name == "zpml_t_infer")
    tensor.CopyFrom(numpy_helper.from_array(np.array(10.0, dtype=np.float32), "zpml_t_infer"))
    assert read_baked_thresholds(model)["t_infer"] == 10.0
    assert read_baked_thresholds(model) != read_metadata(model)["effective_thresholds"]
    with pytest.raises(EmitError, match="differ from the metadata"):
        check_baked_thresholds(model)
    assert run_onnx(model, x)["semantic_bottom_mask"][0]  # the graph uses the edited constant


def test_huge_tau_is_infinite_in_float32() -> None:
    model = to_onnx("1/x", config=InferenceConfig(tau_infer=1e39))
    assert read_baked_thresholds(model)["t_infer"] == "inf"
    check_baked_thresholds(model)
    out = run_onnx(model, np.array([[1e38], [np.inf]], dtype=np.float32))
    assert out["bottom_provenance"].tolist() == [2, 1]


# --------------------------------------------------------------------------- errors


def test_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="dtype must be 'float32' or 'float64'"):
        to_onnx("1/x", dtype="float16")
    with pytest.raises(InvalidArgumentError, match="dtype must be"):
        to_onnx("1/x", dtype=np.float32)  # type: ignore[arg-type]
    for opset in (9, 10_000, "21", True):
        with pytest.raises(InvalidArgumentError, match="opset must be an integer between 15"):
            to_onnx("1/x", opset=opset)  # type: ignore[arg-type]
    # several expressions are one graph now (issue 10, bug 8: outputs prefixed e{k}_), not an error
    names = [o.name for o in to_onnx(["1/x", "1/y"]).graph.output]
    assert names == [o.name for o in to_onnx(to_torch(["1/x", "1/y"])).graph.output]
    assert {n.split("_", 1)[0] for n in names} == {"e0", "e1"}
    with pytest.raises(
        InvalidArgumentError, match="validity_taus has 2 entries but the expression has 1"
    ):
        to_onnx(EXAMPLE, validity_taus=[0.1, 0.2])
    with pytest.raises(InvalidArgumentError, match=r"validity_taus\[0\] must be finite and >= 0"):
        to_onnx(EXAMPLE, validity_taus=[-1.0])
    with pytest.raises(InvalidArgumentError, match="validity_taus must be finite and >= 0"):
        to_onnx(EXAMPLE, validity_taus=math.nan)
    with pytest.raises(InvalidArgumentError, match="validity_taus must be a finite real number"):
        to_onnx(EXAMPLE, validity_taus="0.1")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="tau_infer must be finite and >= 0"):
        to_onnx(EXAMPLE, config=InferenceConfig(tau_infer=-1.0))
    with pytest.raises(InvalidArgumentError, match="config must be"):
        to_onnx(EXAMPLE, config={"tau_infer": 0.0})  # type: ignore[arg-type]
    with pytest.raises(ThresholdUnderflowError, match="tau_infer"):
        to_onnx(EXAMPLE, config=InferenceConfig(tau_infer=1e-50))
    with pytest.raises(InvalidArgumentError, match="no initial value"):
        to_onnx("a/x", parameters=["a"])
    with pytest.raises(InvalidArgumentError, match="not a parameter"):
        to_onnx("a/x", parameters=["a"], init={"a": 1.0, "b": 2.0})
    with pytest.raises(InvalidArgumentError, match="do not pass"):
        to_onnx(to_torch("a/x", parameters=["a"], init={"a": 1.0}), init={"a": 2.0})
    with pytest.raises(InvalidArgumentError, match="prefix"):
        to_onnx(EXAMPLE, prefix="not an identifier")
    with pytest.raises(InvalidArgumentError, match="model_name"):
        to_onnx(EXAMPLE, model_name="")
    with pytest.raises(EmitError, match="no threshold constant"):
        read_baked_thresholds(onnx.ModelProto())
    for tile_rows in (0, -5, True, 2.5, "64", 2**62):
        with pytest.raises(InvalidArgumentError, match="tile_rows must be a positive int"):
            to_onnx(EXAMPLE, tile_rows=tile_rows)  # type: ignore[arg-type]
    for outputs in ("masks", None, ["strict"]):
        with pytest.raises(InvalidArgumentError, match="outputs must be one of"):
            to_onnx(EXAMPLE, outputs=outputs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="do not apply"):
        to_onnx(EXAMPLE, outputs="quotient", config=InferenceConfig(tau_infer=0.0))
    with pytest.raises(InvalidArgumentError, match="do not apply"):
        to_onnx(EXAMPLE, outputs="quotient", validity_taus=[0.1])


def test_custom_prefix_and_variable_order() -> None:
    model = to_onnx(EXAMPLE, prefix="svf", variables=["y", "x"], model_name="example")
    assert model.graph.name == "example"
    assert [o.name for o in model.graph.output][6:] == [
        "svf_0_value",
        "svf_0_fault_mask",
        "svf_0_semantic_bottom_mask",
    ]
    out = run_onnx(model, np.array([[1.0, 0.0], [1.0, 2.0]], dtype=np.float32))  # columns y, x
    assert out["svf_0_semantic_bottom_mask"].tolist() == [True, False]
    assert out["decoded"][1] == np.float32(5 + 2 / 3)
