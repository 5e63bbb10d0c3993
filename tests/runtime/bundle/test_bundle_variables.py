"""``variables=`` (any column order, extra unused columns) exports, validates and runs.

The FRU keeps its own variable order (its generators); the bundle's columns
are ``input.variables``. Validation must rebuild the terms over the FRU's
order and place the columns by name, so a column order other than the sorted
one is never mistaken for an edit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

import zpml_symbolic as zs
from zpml_runtime.bundle import (
    export_bundle,
    load_onnx_runtime_bundle,
    run_bundle_reference_smoke_test,
    validate_bundle,
)
from zpml_runtime.bundle.report import write_bundle_report
from zpml_runtime.inference import InferenceConfig


def _exact(expr: str, columns: list[str], row: np.ndarray) -> float:
    value = sp.sympify(expr).subs(
        dict(zip(sp.symbols(columns), [sp.Rational(float(v)) for v in row], strict=True))
    )
    return float(value)


@pytest.mark.parametrize(
    ("variables", "x"),
    [
        (["y", "x"], [[1.0, 2.0], [2.0, 2.0], [3.0, -1.0]]),
        (["x", "y", "z"], [[2.0, 1.0, 5.0], [2.0, 2.0, 0.0], [-1.0, 3.0, 7.0]]),
        (["z", "y", "w", "x"], [[5.0, 1.0, 0.0, 2.0], [0.0, 2.0, 1.0, 2.0], [1.0, 3.0, 2.0, -1.0]]),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_single_output_any_column_order(
    tmp_path: Path, variables: list[str], x: list[list[float]], dtype: torch.dtype
) -> None:
    ev = zs.strict_evaluator("x/(x - y)", variables=variables, dtype=dtype)
    xt = torch.tensor(x, dtype=dtype)
    meta = export_bundle(ev, tmp_path / "b", (xt,)).metadata
    assert meta["input"]["variables"] == variables
    vb = validate_bundle(tmp_path / "b")
    assert vb.semantic is not None and vb.semantic.passed
    out = load_onnx_runtime_bundle(tmp_path / "b").run(xt.numpy())
    for row, dec, bottom in zip(xt.numpy(), out.decoded, out.bottom_mask, strict=True):
        cols = dict(zip(variables, row.tolist(), strict=True))
        if cols["x"] == cols["y"]:
            assert bottom
        else:
            assert not bottom
            assert dec == pytest.approx(_exact("x/(x - y)", variables, row), rel=1e-6)
    run_bundle_reference_smoke_test(tmp_path / "b", ev)
    report = write_bundle_report(tmp_path / "b")
    assert report.summary["reference_smoke_test"]["status"] == "passed"


def _three_link_inverse_jacobian() -> tuple[list[sp.Expr], list[str]]:
    """The 9 entries of J^-1 of a planar 3-link arm (x, y, phi), link lengths 1, 1/2, 1/4,
    in the natural column order c1, s1, c12, s12, c123, s123 (not the sorted one)."""
    c1, s1, c12, s12, c123, s123 = syms = sp.symbols("c1 s1 c12 s12 c123 s123")
    l1, l2, l3 = sp.Integer(1), sp.Rational(1, 2), sp.Rational(1, 4)
    J = sp.Matrix(
        [
            [-l1 * s1 - l2 * s12 - l3 * s123, -l2 * s12 - l3 * s123, -l3 * s123],
            [l1 * c1 + l2 * c12 + l3 * c123, l2 * c12 + l3 * c123, l3 * c123],
            [1, 1, 1],
        ]
    )
    det = sp.factor(J.det())
    adj = J.adjugate()
    entries = [adj[i, j] / det for i in range(3) for j in range(3)]
    return entries, [s.name for s in syms]


def test_three_link_inverse_jacobian_natural_column_order(tmp_path: Path) -> None:
    entries, columns = _three_link_inverse_jacobian()
    assert columns != sorted(columns)
    ev = zs.strict_evaluator(
        entries, variables=columns, config=InferenceConfig(tau_infer=1e-9), dtype=torch.float64
    )
    rng = np.random.default_rng(3)
    angles = rng.uniform(-3, 3, (6, 3))
    angles[0, 1] = 0.0  # elbow straight: singular
    cum = np.cumsum(angles, axis=1)
    x = np.stack(
        [
            np.cos(cum[:, 0]),
            np.sin(cum[:, 0]),
            np.cos(cum[:, 1]),
            np.sin(cum[:, 1]),
            np.cos(cum[:, 2]),
            np.sin(cum[:, 2]),
        ],
        axis=1,
    )
    x[0, 2:4] = x[0, 0:2]  # exactly straight in float64: det J = 0
    names = [f"j{i}{j}" for i in range(3) for j in range(3)]
    meta = export_bundle(ev, tmp_path / "arm", (torch.tensor(x),), output_names=names).metadata
    assert meta["input"]["variables"] == columns and meta["multi_output"]["k"] == 9
    vb = validate_bundle(tmp_path / "arm")
    assert vb.semantic is not None and vb.semantic.passed
    out = load_onnx_runtime_bundle(tmp_path / "arm").run(x)
    assert out.bottom_mask[0].all() and not out.bottom_mask[1:].any()
    for r in range(1, len(x)):
        subs = dict(zip(sp.symbols(columns), [sp.Rational(v) for v in x[r]], strict=True))
        want = [float(e.subs(subs)) for e in entries]
        np.testing.assert_allclose(out.decoded[r], want, rtol=1e-9, atol=1e-12)
    run_bundle_reference_smoke_test(tmp_path / "arm", ev)
