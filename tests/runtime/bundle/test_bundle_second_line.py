"""The second line of defence on its own: wide, unpredictable sampling.

Reproduction (test_bundle_reproduction.py) refuses every tampered graph. Here
the sampling check runs *without* it, on the tampered graphs of the review:
it must catch tampers 1-4 on every seed tried, because its points now cover
the tau band, full-precision and huge coordinates and several batch sizes. It
must never refuse a correct graph (hypothesis over seeds and expressions), and
its points must really be where the docstring says.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bundle_tamper_helpers import ignore_tau_band, override_masks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_runtime.bundle import export_bundle, validate_bundle
from zpml_runtime.bundle.differential import program_references
from zpml_runtime.bundle.exact import read_metadata_fru, sparse_terms
from zpml_runtime.bundle.reproduce import compiled_views
from zpml_runtime.bundle.sampling import value
from zpml_runtime.bundle.semantic import check_semantics, generate_points
from zpml_runtime.bundle.verify import new_seed
from zpml_runtime.inference import InferenceConfig

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
CONFIG = InferenceConfig(tau_infer=1e-6)
TAMPERS = ["tau_band", "off_grid", "magnitude", "batch_of_1", "batch_below_8"]


def _bundle(path: Path, expr: str, dtype: str, config: InferenceConfig, **kw: object) -> Path:
    ev = zs.strict_evaluator(expr, config=config, dtype=getattr(torch, dtype), **kw)
    n = len(ev.model.variables)
    export_bundle(ev, path, (torch.ones(2, n, dtype=getattr(torch, dtype)),))
    return path


def _parts(bundle: Path) -> tuple[dict, object, object]:
    meta = json.loads((bundle / "metadata.json").read_text())
    _, frus, problems = compiled_views(meta)
    assert not problems
    return meta, read_metadata_fru(meta), program_references(meta, frus)[0]


def _runner(model: onnx.ModelProto):  # noqa: ANN202
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda x: dict(zip(names, session.run(None, {"x": x}), strict=True))


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("honest")
    return {dt: _bundle(root / dt, EXPR, dt, CONFIG) for dt in ("float32", "float64")}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", TAMPERS)
def test_sampling_alone_catches_tampers_1_to_4_on_every_seed(
    honest: dict[str, Path], kind: str, dtype: str
) -> None:
    meta, fru, reference = _parts(honest[dtype])
    model = onnx.load(honest[dtype] / "model.onnx")
    if kind == "tau_band":
        ignore_tau_band(model)
    else:
        override_masks(model, kind)
    run = _runner(model)
    for seed in range(8):
        report = check_semantics(meta, fru, run, seed, reference=reference)
        assert not report.passed, (kind, dtype, seed)
        assert "does not compute the expression" in report.problems[-1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_points_cover_the_tau_band_and_every_scale(honest: dict[str, Path], dtype: str) -> None:
    meta, fru, _ = _parts(honest[dtype])
    q = sparse_terms(fru.denominator_terms)
    t_infer = Fraction(meta["effective_thresholds"]["t_infer"])
    for seed in range(4):
        points = generate_points(fru, dtype, seed, metadata=meta)
        finite = [p for p in points if all(isinstance(v, Fraction) for v in p.values)]
        band = [p for p in finite if "inside the tau band of Q" in p.origin]
        assert band, seed
        for p in band:  # exactly inside: 0 < |Q| < t_infer (Q's generators are x, y)
            assert 0 < abs(value(q, list(p.values))) < t_infer
        above = [p for p in finite if "just above the tau band of Q" in p.origin]
        assert above and all(t_infer <= abs(value(q, list(p.values))) < 4 * t_infer for p in above)
        zero = [p for p in finite if p.origin.startswith("on the zero set")]
        on_q = [p for p in zero if "factor x (" not in p.origin]  # Q, x - y, x + 1 divide Q
        assert on_q and all(value(q, list(p.values)) == 0 for p in on_q)
        assert all(p.values[0] == 0 for p in zero if "factor x (" in p.origin)
        # not a grid: full-precision coordinates (many significant bits), on the zero set too
        mantissa = {"float32": 24, "float64": 53}[dtype]
        assert max(_significant_bits(v) for p in finite for v in p.values) > mantissa // 2
        assert any(max(_significant_bits(v) for v in p.values) > 12 for p in zero)
        assert any(max(abs(v) for v in p.values) > 4 for p in zero)  # beyond the old grid
        magnitudes = [abs(float(v)) for p in finite for v in p.values if v]
        assert max(magnitudes) > 1e15 and min(magnitudes) < 1e-15
        assert any(p.origin == "at an all-NaN input" for p in points)


def _significant_bits(v: Fraction) -> int:
    n = abs(v.numerator)
    return (n // (n & -n)).bit_length() if n else 0


def test_seed_is_unpredictable() -> None:
    seeds = {new_seed(None) for _ in range(4)}
    assert len(seeds) == 4 and max(seeds) > 2**64


def test_batches_include_1_2_7_and_a_tile_boundary(honest: dict[str, Path]) -> None:
    meta, fru, reference = _parts(honest["float32"])
    sizes = []

    def run(x: np.ndarray) -> dict:
        sizes.append(len(x))
        return reference(x)  # the program itself: must pass

    report = check_semantics(meta, fru, run, 5, reference=reference)
    assert report.passed, report.problems
    assert sizes[0] == report.rows + report.skipped  # every point in the first batch
    assert sizes[1:5] == [1, 1, 2, 7] and sizes[-1] > 65536
    assert report.differential_rows == sum(sizes)


CASES = [
    ("(x**2 + 1)/(x - y) + 1/(1 + 1/x)", "float32", 1e-6, 1e-3, 0.0, {}),
    ("(x**2 + 1)/(x - y) + 1/(1 + 1/x)", "float64", 1e-3, 1e-2, 1e-4, {}),
    ("a*x/(x - b) + 1/y", "float32", 0.0, None, 0.5, {"a": 2.0, "b": 0.5}),
    ("1/(x**2 - 4) + y/(x*y - 3)", "float64", 1e-9, None, 0.0, {}),
    ("(x**3 - 2*x*y + 0.1)/(x**2*y - 0.3*y**3 + 1e-3)", "float32", 1e-5, 1e-2, 0.0, {}),
    ("1/(x*y*z - 1) + z/(x + y + z)", "float64", 1e-12, 1e-6, 1e-8, {}),
]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = []
    for k, (expr, dtype, ti, tt, vt, init) in enumerate(CASES):
        path = _bundle(
            tmp_path_factory.mktemp("case") / f"c{k}",
            zs.parse(expr, parameters=list(init)),
            dtype,
            InferenceConfig(tau_infer=ti, tau_train=tt),
            validity_taus=vt,
            parameters=list(init),
            init=init or None,
        )
        meta, fru, reference = _parts(path)
        out.append((meta, fru, reference, _runner(onnx.load(path / "model.onnx"))))
    return out


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=st.integers(0, len(CASES) - 1), seed=st.integers(0, 2**128 - 1))
def test_correct_graphs_always_pass_both_comparisons(cases: list, case: int, seed: int) -> None:
    meta, fru, reference, run = cases[case]
    report = check_semantics(meta, fru, run, seed, reference=reference)
    assert report.passed, report.problems
    assert report.rows > 0 and report.differential_rows > 0


def test_multi_output_bundle_passes_on_many_seeds(tmp_path: Path) -> None:
    exprs = ["d/(a*d - b*c)", "-b/(a*d - b*c)", "-c/(a*d - b*c)", "a/(a*d - b*c)"]
    ev = zs.strict_evaluator(
        [zs.parse(e) for e in exprs], config=InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    )
    export_bundle(ev, tmp_path / "m", (torch.ones(2, 4),))
    for seed in range(6):
        vb = validate_bundle(tmp_path / "m", seed=seed)
        assert vb.verified and vb.semantic.passed and vb.semantic.band_rows > 0
