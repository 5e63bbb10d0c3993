"""Several expressions at once: uniform (P, Q, V) modules, strict evaluator and ONNX graphs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import zpml_symbolic as zs
from zpml_core.config import InferenceConfig

# the inverse of the Jacobian [[a, b], [c, d]] of a 2x2 map: four entries, shared det
INV_JAC = ["d/(a*d - b*c)", "-b/(a*d - b*c)", "-c/(a*d - b*c)", "a/(a*d - b*c) + 1/(1/a)"]
VARS = ["a", "b", "c", "d"]


def _points() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(64, 4))
    x[:4] = [[1, 2, 2, 4], [0, 1, 1, 0], [2, 1, 0, 3], [1, 1, 1, 1]]  # det 0, a = 0, ok, det 0
    return x


def test_module_outputs_are_uniform_and_single_stays_compatible() -> None:
    m = zs.to_torch(INV_JAC, variables=VARS, dtype=torch.float64)
    out = m(torch.from_numpy(_points()))
    assert len(out) == 4 and all(len(o) == 3 for o in out)
    assert [o[2].shape[-1] for o in out] == [0, 0, 0, 1]
    assert len(zs.to_torch("1/x")(torch.ones(2, 1))) == 2  # seed call shape: (P, Q)
    assert len(zs.to_torch("1/(1/x)")(torch.ones(2, 1))) == 3  # (P, Q, V)


def test_strict_evaluator_of_several_matches_one_per_expression() -> None:
    x = torch.from_numpy(_points())
    cfg = InferenceConfig(tau_infer=1e-9)
    multi = zs.strict_evaluator(INV_JAC, variables=VARS, config=cfg, dtype=torch.float64)
    results = multi(x)
    assert isinstance(results, tuple) and len(results) == 4
    for expr, got in zip(INV_JAC, results, strict=True):
        one = zs.strict_evaluator(expr, variables=VARS, config=cfg, dtype=torch.float64)(x)
        for key, want in one.as_dict().items():
            torch.testing.assert_close(got.as_dict()[key], want, equal_nan=True)
    assert bool(results[0].bottom_mask[0]) and not bool(results[0].bottom_mask[2])
    assert bool(results[3].semantic_bottom_mask[1])  # 1/(1/a) at a = 0
    assert multi.explain(x, results, expression=3)[0].causes
    with pytest.raises(zs.InvalidArgumentError, match="expression must be an index"):
        multi.explain(x, results, expression=4)


@pytest.mark.parametrize("tile_rows", [None, 16])
def test_onnx_of_several_matches_one_model_per_expression(tile_rows: int | None) -> None:
    x = _points()
    model = zs.to_onnx(INV_JAC, variables=VARS, dtype="float64", tile_rows=tile_rows)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, {"x": x}), strict=True))
    assert names[:6] == [
        f"e0_{n}"
        for n in (
            "decoded",
            "bottom_mask",
            "gap_mask",
            "fault_mask",
            "semantic_bottom_mask",
            "bottom_provenance",
        )
    ]
    for k, expr in enumerate(INV_JAC):
        single = zs.to_onnx(expr, variables=VARS, dtype="float64", tile_rows=tile_rows)
        s1 = ort.InferenceSession(single.SerializeToString(), providers=["CPUExecutionProvider"])
        for o, want in zip(s1.get_outputs(), s1.run(None, {"x": x}), strict=True):
            np.testing.assert_array_equal(got[f"e{k}_{o.name}"], want)
    meta = {p.key: p.value for p in model.metadata_props}
    assert "zpml.expressions" in meta and "zpml.expression" not in meta


def test_per_expression_validity_taus_and_mismatch() -> None:
    model = zs.to_onnx(INV_JAC, variables=VARS, validity_taus=[0, 0, 0, [0.5]], tile_rows=None)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[0.25, 0.0, 0.0, 1.0]], dtype=np.float32)  # |a| = 0.25 < 0.5
    (mask,) = sess.run(["e3_semantic_bottom_mask"], {"x": x})
    assert bool(mask[0])
    with pytest.raises(zs.InvalidArgumentError, match="4 expressions"):
        zs.to_onnx(INV_JAC, variables=VARS, validity_taus=[0, 0])
    with pytest.raises(zs.InvalidArgumentError, match="4 expressions"):
        zs.strict_evaluator(INV_JAC, variables=VARS, validity_taus=[0, 0])
