"""Dynamic range of the written formula (issue 10, bug 4): ``compute_dtype`` and underflow.

* ``compute_dtype``: ``P, Q, V`` and the masks in a wider dtype, ``decoded`` cast back
  to the input dtype, a cast that overflows is a fault; the same in the torch
  strict evaluator, the numpy evaluator and the ONNX graph.
* Underflow: ``Q == 0`` although none of the factors ``Q`` is the product of is 0
  is a fault, not a semantic bottom, in every back end (torch eager and the
  functional path used under compile/tracing, numpy, ONNX tiled and flat) and in
  ``zpml_core.spec.classify(q_factors=...)``; ``explain`` names it "underflow".
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_core.config import InferenceConfig
from zpml_core.errors import ThresholdUnderflowError
from zpml_core.spec import reference_masks
from zpml_symbolic.emit.backends import strict as strict_mod
from zpml_symbolic.emit.lowering.plan import make_plan
from zpml_symbolic.emit.lowering.taps import product_leaves
from zpml_symbolic.errors import EmitError, InvalidArgumentError, ZeroProofError

PI = "3.141592653589793"
BOHR = f"4*{PI}*epsilon*(h/(2*{PI}))**2/(m*q**2)"
FEYNMAN = "G*m1*m2*(1/r2 - 1/r1)"
#: epsilon, h, m, q (SI): the Bohr radius 5.29e-11 m; Q = m*q**2 ~ 2.3e-68 underflows float32
BOHR_X = [8.8541878128e-12, 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19]
#: G, m1, m2, r1, r2 (Earth/Moon, SI): P ~ 1e46 overflows float32, the value is ~ -3.05e27
FEYNMAN_X = [6.674e-11, 5.972e24, 7.342e22, 3.844e8, 4.0044e8]
KEYS = ("decoded", "bottom_mask", "gap_mask", "fault_mask", "semantic_bottom_mask")


def _ort(model: object, x: np.ndarray) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {"x": x}), strict=True))


def _all_backends(expr: str, x: np.ndarray, **kw: object) -> dict[str, dict[str, np.ndarray]]:
    """Strict outputs of torch (eager), numpy and ONNX (tiled, flat) at ``x``."""
    cd = kw.pop("compute_dtype", None)
    torch_cd = {None: None, "float64": torch.float64, "float32": torch.float32}[cd]  # type: ignore[index]
    out: dict[str, dict[str, np.ndarray]] = {}
    with torch.no_grad():
        r = zs.strict_evaluator(expr, compute_dtype=torch_cd, **kw)(torch.from_numpy(x))
    out["torch"] = {k: getattr(r, k).numpy() for k in KEYS}
    r = zs.numpy_evaluator(expr, compute_dtype=cd, **kw)(x)
    out["numpy"] = {k: np.asarray(getattr(r, k)) for k in KEYS}
    for tile in (65536, None):
        o = _ort(zs.to_onnx(expr, compute_dtype=cd, tile_rows=tile, dtype=str(x.dtype), **kw), x)
        out[f"onnx{tile}"] = {k: o[k] for k in KEYS}
    return out


def _same(outs: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    first = next(iter(outs.values()))
    for name, o in outs.items():
        for k in KEYS:
            np.testing.assert_array_equal(o[k], first[k], err_msg=f"{name}: {k}")
        assert o["decoded"].dtype == first["decoded"].dtype, name
    return first


def _feynman_exact(x: np.ndarray) -> Fraction:
    G, m1, m2, r1, r2 = (Fraction(float(v)) for v in x)
    return G * m1 * m2 * (1 / r2 - 1 / r1)


def _bohr_exact(x: np.ndarray) -> Fraction:
    eps, h, m, q = (Fraction(float(v)) for v in x)
    pi = Fraction(PI)
    return 4 * pi * eps * (h / (2 * pi)) ** 2 / (m * q**2)


# --------------------------------------------------------------------------- the cases


def test_feynman_float32_is_a_fault_without_and_exact_with_compute_dtype() -> None:
    x = np.array([FEYNMAN_X], dtype=np.float32)
    plain = _same(_all_backends(FEYNMAN, x))
    assert plain["fault_mask"].all() and not plain["semantic_bottom_mask"].any()
    wide = _same(_all_backends(FEYNMAN, x, compute_dtype="float64"))
    assert wide["decoded"].dtype == np.float32 and not wide["bottom_mask"].any()
    exact = _feynman_exact(x[0])
    assert -3.1e27 < exact < -3.0e27
    rel = abs(Fraction(float(wide["decoded"][0])) - exact) / abs(exact)
    assert rel < 2**-23  # one float32 rounding of the float64 quotient (plus float64 error)


def test_bohr_radius_float32_underflow_is_a_fault_not_a_semantic_bottom() -> None:
    x = np.array([BOHR_X, [0.0, BOHR_X[1], 0.0, BOHR_X[3]], [1.0, 1.0, 1.0, 1.0]], np.float32)
    got = _same(_all_backends(BOHR, x))
    np.testing.assert_array_equal(got["fault_mask"], [True, False, False])
    np.testing.assert_array_equal(got["semantic_bottom_mask"], [False, True, False])  # m == 0
    wide = _same(_all_backends(BOHR, x, compute_dtype="float64"))
    np.testing.assert_array_equal(wide["bottom_mask"], [False, True, False])
    exact = _bohr_exact(x[0])
    rel = abs(Fraction(float(wide["decoded"][0])) - exact) / exact
    assert 5.29e-11 < exact < 5.30e-11 and rel < 2**-23


def test_underflow_with_a_threshold_is_still_only_a_fault() -> None:
    """|Q| = 0 < tau_infer, but Q's magnitude is unknown: no semantic verdict from Q."""
    x = np.array([BOHR_X], np.float32)
    got = _same(_all_backends(BOHR, x, config=InferenceConfig(tau_infer=1e-30, tau_train=1e-20)))
    assert got["fault_mask"].all() and not got["semantic_bottom_mask"].any()
    assert not got["gap_mask"].any()


def test_explain_names_underflow() -> None:
    ev = zs.strict_evaluator(BOHR)
    x = torch.tensor([BOHR_X, [0.0, BOHR_X[1], 0.0, BOHR_X[3]]], dtype=torch.float32)
    first, second = ev.explain(x)
    assert first.provenance == "fault"
    assert {c.reason for c in first.causes} == {"underflow"}
    assert {str(c.source.factor) for c in first.causes} == {"m", "q"}
    assert "underflowed to 0 in float32" in first.note and "compute_dtype" in first.note
    assert second.provenance == "semantic" and second.causes[0].reason == "zero"
    # in float64 nothing underflows: no bottom to explain
    assert zs.strict_evaluator(BOHR, compute_dtype=torch.float64).explain(x[:1]) == []


# --------------------------------------------------------------------------- underflow rule


def test_product_leaves_are_the_factors_of_q() -> None:
    plan = make_plan([zs.flatten(zs.parse(BOHR))])
    assert {str(n.value) for n in plan.leaves(0)} == {"m", "q"}
    assert set(plan.q_taps[0]) <= set(plan.program.taps)
    assert product_leaves(zs.flatten(zs.parse("1/(x + 1)")).denominator_ir) == ()


def _product_case() -> str:
    return "1/((x + y)*z*(y - 1/2))"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 1e-30, -3e-25, 2e-20, 1e-5, 0.5, 1.0, 1e10]),
            st.sampled_from([0.0, 1e-30, 0.5, -1e-20, 3.0]),
            st.sampled_from([0.0, 1e-30, -2e-24, 1e-12, 7.0]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["float32", "float64"]),
)
def test_underflow_matches_the_spec_in_every_backend(
    rows: list[tuple[float, float, float]], dtype: str
) -> None:
    expr = _product_case()
    x = np.array(rows, dtype=dtype)
    got = _same(_all_backends(expr, x))
    ev = zs.numpy_evaluator(expr)
    P, Q, _ = ev.evaluate(x)
    plan = ev.plan
    from zpml_symbolic.emit.backends.numpy_emit import run_values

    values = run_values(plan, x, {})
    leaves = [np.broadcast_to(values[plan.program.taps[t]], Q.shape) for t in plan.q_taps[0]]
    assert len(leaves) == 3
    ref = reference_masks(P, Q, q_factors=leaves, dtype=dtype)
    for k in KEYS:
        np.testing.assert_array_equal(got[k], ref[k].astype(got[k].dtype), err_msg=k)


def test_functional_path_matches_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch-free path used under torch.compile/tracing gives the same masks."""
    x = torch.tensor(
        [
            [1e-30, 1e-30, 1e-30],
            [0.0, 1.0, 1.0],
            [1.0, 1.0, 0.5],
            [1e-20, 1e-20, 1e-30],
            [1.0, 2.0, 3.0],
        ]
    )
    ev = zs.strict_evaluator(_product_case())
    with torch.no_grad():
        eager = ev(x)
        monkeypatch.setattr(strict_mod, "_tracing", lambda: True)
        functional = ev(x)
    for k in KEYS:
        torch.testing.assert_close(getattr(functional, k), getattr(eager, k), equal_nan=True)
    assert eager.fault_mask.tolist() == [True, False, False, True, False]


def test_real_zero_of_a_factor_stays_semantic_even_when_others_are_tiny() -> None:
    x = np.array([[1e-30, 1e-30, 0.0]], np.float32)  # z == 0 exactly: a real division by zero
    got = _same(_all_backends(_product_case(), x))
    assert got["semantic_bottom_mask"].all() and not got["fault_mask"].any()


# --------------------------------------------------------------------------- compute_dtype


def test_compute_dtype_cast_overflow_is_a_fault() -> None:
    x = np.array([[1e20, 1e20], [1.0, 2.0]], np.float32)  # x*y/(1 + 0*x) = 1e40: not float32
    got = _same(_all_backends("x*y/(1 + x*0)", x, compute_dtype="float64"))
    np.testing.assert_array_equal(got["fault_mask"], [True, False])
    assert np.isnan(got["decoded"][0]) and got["decoded"][1] == 2.0


def test_compute_dtype_decides_thresholds_in_the_wide_dtype() -> None:
    cfg = InferenceConfig(tau_infer=1e-50)  # below the float32 range
    x = np.array([[1e-30], [1e-20]], np.float32)  # Q = x**2: 1e-60 < tau, 1e-40 > tau
    with pytest.raises(ThresholdUnderflowError):
        zs.numpy_evaluator("1/x**2", config=cfg)(x)
    got = _same(_all_backends("1/x**2", x, config=cfg, compute_dtype="float64"))
    np.testing.assert_array_equal(got["semantic_bottom_mask"], [True, False])
    np.testing.assert_array_equal(got["fault_mask"], [False, True])  # 1e40 overflows float32
    assert np.isnan(got["decoded"]).all()


def test_constants_are_checked_in_the_compute_dtype() -> None:
    with pytest.raises(EmitError, match="cannot be represented in float32"):
        zs.numpy_evaluator("x/(1e-50 + x)")(np.ones((1, 1), np.float32))
    r = zs.numpy_evaluator("x/(1e-50 + x)", compute_dtype="float64")(np.ones((1, 1), np.float32))
    assert r.decoded[0] == 1.0
    m = zs.to_onnx("x/(1e-50 + x)", compute_dtype="float64")
    assert _ort(m, np.ones((2, 1), np.float32))["decoded"].tolist() == [1.0, 1.0]


def test_compute_dtype_none_or_narrower_changes_nothing() -> None:
    x = torch.tensor([[0.3, -1.7, 2.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    expr = "(x*y + z)/(x - y) + 1/(1 + 1/(x*z))"
    with torch.no_grad():
        a = zs.strict_evaluator(expr)(x)
        b = zs.strict_evaluator(expr, compute_dtype=torch.float32)(x)  # never narrows
    for k in KEYS:
        torch.testing.assert_close(getattr(a, k), getattr(b, k), equal_nan=True, rtol=0, atol=0)
    module = zs.to_torch(FEYNMAN, compute_dtype=torch.float64)
    P, Q = module(torch.tensor([FEYNMAN_X]))
    assert P.dtype == torch.float64 and torch.isfinite(P).all()
    assert module.evaluation_dtype(torch.float32) == torch.float64


def test_compute_dtype_gradients_are_finite() -> None:
    x = torch.tensor([FEYNMAN_X, [1e20, 1e20, 1e20, 1.0, 2.0]], requires_grad=True)
    r = zs.strict_evaluator(FEYNMAN, compute_dtype=torch.float64)(x)
    assert r.fault_mask.tolist() == [False, True]  # the second row overflows float32
    r.decoded[~r.bottom_mask].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and (x.grad[1] == 0).all()


def test_compute_dtype_errors() -> None:
    for bad in (torch.float16, "float64", torch.int64):
        with pytest.raises(InvalidArgumentError, match="compute_dtype must be"):
            zs.to_torch("1/x", compute_dtype=bad)
    with pytest.raises(InvalidArgumentError, match="compute_dtype must be"):
        zs.numpy_evaluator("1/x", compute_dtype="int32")
    with pytest.raises(InvalidArgumentError, match="compute_dtype must be"):
        zs.to_onnx("1/x", compute_dtype="float16")
    module = zs.to_torch("1/x")
    with pytest.raises(InvalidArgumentError, match="to_torch\\(..., compute_dtype=...\\)"):
        zs.strict_evaluator(module, compute_dtype=torch.float64)
    with pytest.raises(EmitError, match="compute_dtype"):
        torch.jit.script(zs.to_torch("1/x", compute_dtype=torch.float64))
    assert issubclass(InvalidArgumentError, ZeroProofError) and issubclass(
        InvalidArgumentError, ValueError
    )


def test_onnx_records_compute_dtype_and_value_dtypes() -> None:
    from zpml_symbolic.emit.backends.onnx import read_metadata

    m = zs.to_onnx("1/(y + 1) + 1/(1 + 1/x)", compute_dtype="float64")
    meta = read_metadata(m)
    assert meta["dtype"] == "float32" and meta["compute_dtype"] == "float64"
    types = {o.name: o.type.tensor_type.elem_type for o in m.graph.output}
    assert types["decoded"] == 1 and types["structural_validity_factor_0_value"] == 11
    assert "compute_dtype" not in read_metadata(zs.to_onnx("1/x"))
