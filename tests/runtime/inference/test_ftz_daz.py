"""Exact zeros stay bottom under flush-to-zero / denormals-are-zero (issue 13, item 1).

``torch.set_flush_denormal(True)`` sets FTZ and DAZ on the calling thread
(numpy and onnxruntime running on that thread see them too). Under DAZ a
subnormal *operand* reads as 0, so a guard ``|Q| < t`` with a subnormal ``t``
(the old encoding of "exact zeros only", and any small in-range threshold)
becomes ``|Q| < 0`` and accepts ``Q == 0``. Every back end must test exact
zeros with an equality. The documented semantics under DAZ: ``Q == 0`` and
``V_i == 0`` are bottom for every threshold, and a subnormal ``Q``/``V_i``
compares equal to 0, so it is bottom too (fail-closed); normal values are
decided exactly as without DAZ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zpml_core import kernels as K
from zpml_runtime.inference import InferenceConfig, strict_inference

SUB32 = 1e-40  # subnormal in float32
SUB64 = 1e-310  # subnormal in float64
SUB = {"float32": SUB32, "float64": SUB64}
NP = {"float32": np.float32, "float64": np.float64}
TORCH = {"float32": torch.float32, "float64": torch.float64}


@pytest.fixture
def daz():
    """FTZ + DAZ on for the test (restored afterwards); skip where the CPU has no such mode."""
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU does not support flush-denormal mode")
    try:
        # the mode must really be on, or the test proves nothing
        assert bool(np.array([SUB32], np.float32)[0] == 0)
        yield
    finally:
        torch.set_flush_denormal(False)


def _taus(dtype: str) -> list[float]:
    """Exact zeros only, a threshold subnormal in the dtype, a normal one."""
    return [0.0, SUB[dtype], 1e-3]


def _q(dtype: str) -> np.ndarray:
    return np.array([0.0, -0.0, 1.0, SUB[dtype], -2.0], dtype=NP[dtype])


def _expected_bottom(q: np.ndarray) -> list[bool]:
    """Bottom under DAZ: zeros and (fail-closed) subnormals; 1.0 and -2.0 are not."""
    return [True, True, False, True, False]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["numpy", "torch-small", "torch-large", "torch-grad"])
def test_exact_zero_is_bottom_under_daz(daz, dtype: str, backend: str) -> None:
    q = _q(dtype)
    reps = K.ANY_TEST_MIN_NUMEL // len(q) + 1 if backend == "torch-large" else 1
    q = np.tile(q, reps)
    p = np.ones_like(q)
    for tau in _taus(dtype):
        cfg = InferenceConfig(tau_infer=tau, tau_train=max(tau, 1e-2))
        if backend == "numpy":
            r = strict_inference(p, q, config=cfg)
            bottom, decoded = r.bottom_mask, r.decoded
        else:
            P = torch.from_numpy(p.copy()).requires_grad_(backend == "torch-grad")
            r = strict_inference(P, torch.from_numpy(q.copy()), config=cfg)
            bottom, decoded = r.bottom_mask.numpy(), r.decoded.detach().numpy()
        want = np.tile(_expected_bottom(q[:5]), reps)
        assert bottom.tolist() == want.tolist(), (backend, tau)
        assert np.isnan(decoded[want]).all() and not r.gap_mask[want.tolist()].any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_validity_factor_zero_is_bottom_under_daz(daz, dtype: str) -> None:
    v = _q(dtype)
    ones = np.ones_like(v)
    for tau in _taus(dtype):
        for P, Q, V in (
            (ones, ones, v),
            (torch.from_numpy(ones), torch.from_numpy(ones), torch.from_numpy(v)),
        ):
            r = strict_inference(P, Q, validity_factors=[V], validity_taus=tau)
            got = np.asarray(r.factor_semantic_masks[0]).tolist()
            assert got == _expected_bottom(v), (type(P).__name__, tau)
            assert np.asarray(r.bottom_mask).tolist() == got


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_functional_kernels_under_daz(daz, dtype: str) -> None:
    """The torch.compile/trace kernels (called directly: compiling is slow)."""
    q = torch.from_numpy(_q(dtype))
    for tau in _taus(dtype):
        t = InferenceConfig(tau_infer=tau).thresholds_for(dtype)[0]
        _, fault, semantic, _ = K.torch_core_functional(torch.ones_like(q), q, t, None)
        assert semantic.tolist() == _expected_bottom(q.numpy()) and not fault.any()
        _, s_v = K.torch_factor_functional(q, t)
        assert s_v.tolist() == _expected_bottom(q.numpy())


def test_torch_compile_path_under_daz(daz) -> None:
    """``torch.compile`` (dynamo + aot_eager: the functional kernels) accepts no zero."""
    fn = torch.compile(
        lambda P, Q: strict_inference(P, Q, config=InferenceConfig(tau_infer=SUB32)).bottom_mask,
        backend="aot_eager",
        fullgraph=True,
    )
    q = torch.from_numpy(_q("float32"))
    assert fn(torch.ones_like(q), q).tolist() == _expected_bottom(q.numpy())


@pytest.mark.slow
def test_torch_compile_inductor_under_daz(daz) -> None:
    fn = torch.compile(
        lambda P, Q: strict_inference(P, Q, config=InferenceConfig(tau_infer=SUB32)).bottom_mask
    )
    q = torch.from_numpy(_q("float32"))
    assert fn(torch.ones_like(q), q).tolist() == _expected_bottom(q.numpy())


def test_numerical_hazard_mask_counts_zeros_under_daz(daz) -> None:
    from zpml_core.strict import numerical_hazard_mask

    q = _q("float32")
    for tau in (0.0, SUB32):
        assert numerical_hazard_mask(q, threshold=tau).tolist() == _expected_bottom(q)
        assert numerical_hazard_mask(torch.from_numpy(q), threshold=tau).tolist() == (
            _expected_bottom(q)
        )


def _evaluator_inputs(dtype: str) -> np.ndarray:
    # x/(x*y) + 1/(y - 1): retained factor x, Q = (y - 1) * y
    return np.array(
        [[0.0, 2.0], [1.0, 1.0], [1.0, 2.0], [-0.0, 2.0], [SUB[dtype], 2.0], [2.0, 0.0]],
        dtype=NP[dtype],
    )


EVAL_EXPECTED = [True, True, False, True, True, True]  # row 4: subnormal x under DAZ


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strict_and_numpy_evaluators_under_daz(daz, dtype: str) -> None:
    import zpml_symbolic as zs

    expr = "x/(x*y) + 1/(y - 1)"
    x = _evaluator_inputs(dtype)
    for tau in _taus(dtype):
        cfg = InferenceConfig(tau_infer=tau)
        ev = zs.strict_evaluator(expr, config=cfg, validity_taus=tau, dtype=TORCH[dtype])
        assert ev(torch.from_numpy(x)).bottom_mask.tolist() == EVAL_EXPECTED, tau
        nev = zs.numpy_evaluator(expr, config=cfg, validity_taus=tau)
        assert nev(x).bottom_mask.tolist() == EVAL_EXPECTED, tau


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tile_rows", [65536, None])
def test_onnx_graph_under_daz(daz, dtype: str, tile_rows: int | None) -> None:
    """The exported graph (Scan-tiled as in bundles, and untiled) under DAZ.

    The session asks for ``session.set_denormal_as_zero=1``; this onnxruntime
    applies it to its pool threads only and resets the calling thread's mode
    when a session is created, so DAZ is switched on for the calling thread
    again before ``run`` (``intra_op_num_threads=1``: every kernel runs there).
    """
    ort = pytest.importorskip("onnxruntime")
    from zpml_symbolic.emit.backends.onnx import to_onnx

    x = _evaluator_inputs(dtype)
    for tau in _taus(dtype):
        model = to_onnx(
            "x/(x*y) + 1/(y - 1)",
            config=InferenceConfig(tau_infer=tau),
            validity_taus=tau,
            dtype=dtype,
            tile_rows=tile_rows,
        )
        options = ort.SessionOptions()
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        torch.set_flush_denormal(True)  # session creation reset the calling thread's mode
        names = [o.name for o in model.graph.output]
        out = dict(zip(names, session.run(None, {"x": x}), strict=True))
        assert out["bottom_mask"].tolist() == EVAL_EXPECTED, tau
        assert np.isnan(out["decoded"][EVAL_EXPECTED]).all()
        factor_semantic = [n for n in names if n.endswith("_0_semantic_bottom_mask")]
        assert out[factor_semantic[0]].tolist()[:5] == [True, False, False, True, True]


# ----------------------------------------------------------------- without FTZ/DAZ: exact

_values32 = st.sampled_from([0.0, -0.0, SUB32, -SUB32, 2.0**-149, 2.0**-126, 1e-3, 1.0, math.inf])


@settings(max_examples=60, deadline=None)
@given(st.lists(_values32, min_size=1, max_size=12), st.sampled_from([0.0, SUB32, 2.0**-126]))
def test_threshold_test_is_exact_without_daz(qs: list[float], tau: float) -> None:
    """Without DAZ every back end decides ``Q == 0 or |Q| < tau`` exactly (subnormals too)."""
    from fractions import Fraction

    q = np.array(qs, dtype=np.float32)
    cfg = InferenceConfig(tau_infer=tau)
    want = [
        bool(math.isfinite(v) and (v == 0 or abs(Fraction(float(v))) < Fraction(tau)))
        for v in q.tolist()
    ]
    assert strict_inference(np.ones_like(q), q, config=cfg).semantic_bottom_mask.tolist() == want
    qt = torch.from_numpy(q)
    assert strict_inference(torch.ones_like(qt), qt, config=cfg).semantic_bottom_mask.tolist() == (
        want
    )
    t = cfg.thresholds_for("float32")[0]
    assert K.torch_core_functional(torch.ones_like(qt), qt, t, None)[2].tolist() == want
