"""``emit_onnx_artifact``: the ONNX back end's typed result, and the graph's masks at
the edges of the thresholds the one resolver decides."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from zpml_core.config import InferenceConfig
from zpml_core.resolution import resolve_thresholds
from zpml_symbolic.emit.backends.onnx import (
    OnnxArtifact,
    emit_onnx_artifact,
    read_baked_thresholds,
    read_metadata,
    to_onnx,
)

ort = pytest.importorskip("onnxruntime")


def _run(model, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"x": x}), strict=True))


def _probes(t: float, dtype: str) -> np.ndarray:
    np_t = np.dtype(dtype).type
    out = [0.0, -0.0, float(np.finfo(dtype).smallest_subnormal), 1.0, 3.0]
    if t > 0:
        base = np_t(t)
        out += [float(base), float(np.nextafter(base, np_t(0))), float(np.nextafter(base, np_t(1)))]
    return np.array(out + [-v for v in out], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tau", [2.0**-10, 0.1, 1e-4, 0.0, Fraction(1, 3)], ids=repr)
def test_graph_masks_are_the_real_comparison_at_the_resolved_thresholds(dtype, tau) -> None:
    """``1/(1 + 1/x)``: Q = x + 1, one validity factor V = x with its own threshold."""
    cfg = InferenceConfig(tau_infer=tau)
    factor_tau = 0.25 if tau == 0 else 0.0  # a per-factor override differing from tau_infer
    art = emit_onnx_artifact("1/(1 + 1/x)", config=cfg, validity_taus=factor_tau, dtype=dtype)
    resolved = resolve_thresholds(cfg, factor_tau, 1)
    assert art.thresholds == (resolved,)
    assert art.effective == resolved.effective(dtype)
    # V = x near the factor threshold (Q = x + 1 is never bottom there)
    x = _probes(art.effective.t_factors[0], dtype)
    out = _run(art.model, x[:, None])
    fs = out["structural_validity_factor_0_semantic_bottom_mask"]
    real_v = [v == 0 or abs(Fraction(float(v))) < Fraction(factor_tau) for v in x]
    assert fs.tolist() == real_v
    assert any(real_v) and not all(real_v)
    # Q = x for ``1/x``: the probes are Q itself
    art_q = emit_onnx_artifact("1/x", config=cfg, dtype=dtype)
    assert art_q.effective is not None and art_q.effective.t_infer == art.effective.t_infer
    q = _probes(art_q.effective.t_infer, dtype)
    sem_q = _run(art_q.model, q[:, None])["semantic_bottom_mask"]
    real_q = [v == 0 or abs(Fraction(float(v))) < Fraction(tau) for v in q]
    assert sem_q.tolist() == real_q
    assert any(real_q) and not all(real_q)


def test_artifact_is_what_to_onnx_returns_and_what_its_metadata_says() -> None:
    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    kw = dict(config=cfg, validity_taus=[0.1], parameters=["a"], init={"a": 0.5})
    art = emit_onnx_artifact("a/(1 + 1/x) + 1/(x - 2)", **kw)
    assert isinstance(art, OnnxArtifact)
    model = to_onnx("a/(1 + 1/x) + 1/(x - 2)", **kw)
    assert art.model.SerializeToString() == model.SerializeToString()
    assert dict(art.metadata) == read_metadata(model)
    assert art.effective is not None
    assert art.effective.to_metadata() == read_baked_thresholds(model)
    assert art.output_names == tuple(o.name for o in model.graph.output)
    assert art.input_name == model.graph.input[0].name == "x"
    assert art.variables == ("x",) and art.parameters == ("a",)
    assert art.per_expression_taus == [[0.1]] == [read_metadata(model)["validity_taus"]]
    assert not art.regauged and art.strict and art.tile_rows == 65536
    with pytest.raises(AttributeError):
        art.model = model  # type: ignore[misc]
    quotient = emit_onnx_artifact("1/x", outputs="quotient")
    assert quotient.thresholds == () and quotient.effective is None and not quotient.strict


def test_regauged_artifact_records_the_gauge_and_the_emitted_thresholds() -> None:
    cfg = InferenceConfig(tau_infer=1e-6)
    art = emit_onnx_artifact("x/(1e-40*x + 1)", config=cfg, dtype="float64")
    assert art.regauged
    (r,) = art.thresholds
    assert r.gauge == art.gauges[0].pq != 0
    assert r.tau_infer == cfg.tau_infer  # canonical gauge
    assert art.effective is not None
    assert art.effective.t_infer == r.emitted().tau_infer  # float64: exact
    assert art.metadata["gauge_exponents"] == [g.to_metadata() for g in art.gauges]


def test_importing_the_onnx_back_end_loads_no_torch() -> None:
    code = (
        "import sys\n"
        "import zpml_symbolic.emit.backends.onnx.emit as e\n"
        "m = e.to_onnx('1/(x - y)')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
