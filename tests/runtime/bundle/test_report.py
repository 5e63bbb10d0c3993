"""The bundle validation report: files, strict JSON numbers, SVG, exact |Q|, fallbacks."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from rt_models import RationalHead

import zpml_symbolic as zs
from zpml_runtime.bundle import (
    BundleError,
    BundleValidationError,
    export_bundle,
    load_onnx_runtime_bundle,
    validate_bundle,
)
from zpml_runtime.bundle.format import REPORT_FILES, checksum_line, dumps_metadata, loads_metadata
from zpml_runtime.bundle.report import (
    eval_terms_exact,
    eval_terms_float,
    read_metadata_fru,
    recommend_fallback,
    write_bundle_report,
)
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
X = np.array(
    [
        [2.0, 1.0],
        [0.0, 1.0],  # validity factor x = 0
        [1.0, 1.0],  # x - y = 0
        [-1.0, 3.0],  # x + 1 = 0
        [math.nan, 1.0],  # fault
        [3.0, 3.0002],  # gap: |Q| = 4 * 2e-4 in [1e-6, 1e-3)
        [0.5, -0.5],
        [1.5, 0.25],
    ],
    dtype=np.float32,
)
KEYS = {
    "schema",
    "generated_at",
    "bundle",
    "validation",
    "inputs",
    "counts",
    "rates",
    "q_abs",
    "factors",
    "reference_smoke_test",
    "recommended_fallback",
    "checklist",
    "files",
}


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _export(out: Path, expr: str = EXPR, x: np.ndarray = X, **kw) -> Path:
    ev = zs.strict_evaluator(
        zs.parse(expr, parameters=kw.pop("parameters", ())),
        config=InferenceConfig(tau_infer=1e-6, tau_train=1e-3),
        **kw,
    )
    export_bundle(ev, out, (torch.from_numpy(x),))
    return out


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    bundle = _export(tmp_path_factory.mktemp("report") / "bundle")
    report = write_bundle_report(bundle)
    return bundle, report.summary


def test_files_written_and_bundle_still_valid(reported: tuple[Path, dict]) -> None:
    bundle, _ = reported
    for name in REPORT_FILES:
        assert (bundle / name).is_file() and (bundle / name).stat().st_size > 0
    validate_bundle(bundle)
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]  # no temp files left


def test_json_is_strict_with_documented_keys(reported: tuple[Path, dict]) -> None:
    bundle, summary = reported
    data = _strict_json(bundle / "VALIDATION_REPORT.summary.json")
    assert set(data) == KEYS and data["schema"] == "zpml.validation_report/v1"
    assert data["counts"] == summary["counts"]
    assert data["bundle"]["denominator"] == "x**2 - x*y + x - y"
    assert data["files"] == {
        "markdown": "VALIDATION_REPORT.md",
        "json": "VALIDATION_REPORT.summary.json",
        "svg": "VALIDATION_REPORT.summary.svg",
    }
    assert len(data["checklist"]) == 7
    assert {c["status"] for c in data["checklist"]} <= {"checked", "manual", "skipped", "failed"}


def test_rates_equal_the_runtime_masks(reported: tuple[Path, dict]) -> None:
    bundle, s = reported
    out = load_onnx_runtime_bundle(bundle).run(X).as_dict()
    n = len(X)
    assert s["counts"]["samples"] == n
    assert s["rates"]["bottom_rate"] == pytest.approx(out["bottom_mask"].mean())
    assert s["rates"]["gap_rate"] == pytest.approx(out["gap_mask"].mean())
    assert s["rates"]["fault_rate"] == pytest.approx(out["fault_mask"].mean())
    assert s["rates"]["acceptance_rate"] == pytest.approx(1 - out["bottom_mask"].mean())
    # The hand-picked rows: 3 semantic bottoms, 1 fault, 1 gap.
    assert s["counts"] == {
        "samples": 8,
        "bottom": 4,
        "gap": 1,
        "fault": 1,
        "semantic_bottom": 3,
        "mixed": 0,
        "accepted": 4,
        "accepted_outside_gap": 3,
    }


def test_q_abs_from_exact_terms(reported: tuple[Path, dict]) -> None:
    _, s = reported
    x64 = X.astype(np.float64)
    q = np.abs((x64[:, 0] + 1) * (x64[:, 0] - x64[:, 1]))
    finite = q[np.isfinite(q)]
    qa = s["q_abs"]
    assert qa["available"] and qa["finite"] == 7 and qa["nonfinite"] == 1
    assert qa["zero"] == 2 and qa["min"] == 0.0 and qa["max"] == pytest.approx(finite.max())
    assert qa["quantiles"]["p50"] == pytest.approx(np.quantile(finite, 0.5))
    assert qa["in_gap"] == 1 and qa["below_tau_infer"] == 2


def test_per_factor_counts_and_sources(reported: tuple[Path, dict]) -> None:
    _, s = reported
    by_factor = {f["factor"]: f for f in s["factors"]}
    assert set(by_factor) == {"x - y", "x", "x + 1"}
    x = by_factor["x"]
    assert x["retained"] and x["output_index"] == 0
    assert (x["semantic_bottom"], x["fault"], x["bottom"]) == (1, 1, 2)
    assert {o["source"] for o in x["sources"]} == {"1/x", "1/(1 + 1/x)"}
    assert by_factor["x - y"]["enforced_by"] == "Q" and by_factor["x - y"]["bottom"] is None
    assert by_factor["x - y"]["float64_zero"] == 1 and by_factor["x + 1"]["float64_zero"] == 1


def test_smoke_test_fallback_and_markdown(reported: tuple[Path, dict]) -> None:
    bundle, s = reported
    ref = s["reference_smoke_test"]
    assert ref["status"] == "passed" and all(ref["exact_terms_match"].values())
    rec = s["recommended_fallback"]
    assert rec["policy"] == "route_to_analytic_solver" and rec["route_gap"]
    assert any("fault" in r for r in rec["reasons"])
    md = (bundle / "VALIDATION_REPORT.md").read_text()
    for heading in (
        "## Outcomes",
        "## |Q| distribution",
        "## Denominator factors",
        "## Deployment checklist",
    ):
        assert heading in md
    assert "`1/x` at `root.args[1].args[0].args[1]`" in md and "- [x] Run validate_bundle" in md


def test_svg_is_a_real_chart(reported: tuple[Path, dict]) -> None:
    bundle, _ = reported
    root = ET.parse(bundle / "VALIDATION_REPORT.summary.svg").getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 100  # axes, bars, text: not an empty placeholder


def test_inputs_file_and_errors(reported: tuple[Path, dict], tmp_path: Path) -> None:
    bundle, _ = reported
    good = tmp_path / "inputs.npy"
    np.save(good, np.array([[2.0, 1.0], [4.0, 1.0]]))  # float64 ints: cast to float32
    s = write_bundle_report(bundle, inputs=good).summary
    assert s["inputs"]["samples"] == 2 and s["rates"]["bottom_rate"] == 0.0
    assert s["recommended_fallback"]["policy"] == "reject_on_bottom"
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "wide.npy", np.zeros((3, 5)))
    np.savez(tmp_path / "arch.npz", a=np.zeros((1, 2)))
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    for name, match in (
        ("obj.npy", "Python objects"),
        ("wide.npy", r"expected \[n >= 1, 2\]"),
        ("arch.npz", "npz .zip. archive"),
        ("text.npy", "real numbers"),
        ("missing.npy", "cannot read"),
    ):
        with pytest.raises(BundleError, match=match):
            write_bundle_report(bundle, inputs=tmp_path / name)
    validate_bundle(bundle)


def test_invalid_bundle_writes_nothing(tmp_path: Path) -> None:
    bundle = _export(tmp_path / "b")
    (bundle / "smoke_inputs.npy").write_bytes(b"broken")
    with pytest.raises(BundleValidationError, match="smoke inputs"):
        write_bundle_report(bundle)
    assert not any((bundle / name).exists() for name in REPORT_FILES)


def _rewrite_metadata(bundle: Path, edit) -> None:  # noqa: ANN001
    meta = loads_metadata((bundle / "metadata.json").read_bytes())
    edit(meta)
    data = dumps_metadata(meta)
    (bundle / "metadata.json").write_bytes(data)
    (bundle / "metadata.sha256").write_text(checksum_line(data))


def test_edited_exact_terms_fail_the_reference_check(tmp_path: Path) -> None:
    bundle = _export(tmp_path / "b")

    def edit(meta: dict) -> None:
        meta["fru"]["denominator_terms"][0][1] = "2"

    _rewrite_metadata(bundle, edit)
    # The hashes were recomputed, but validation re-flattens the expression and
    # recomputes the outputs from the exact terms (issue 13 item 2): refused before any report.
    with pytest.raises(BundleValidationError, match="denominator_terms"):
        validate_bundle(bundle)
    with pytest.raises(BundleValidationError, match="does not compute the expression"):
        write_bundle_report(bundle)
    assert not (bundle / "VALIDATION_REPORT.md").exists()


def test_traced_bundle_reports_q_as_na(tmp_path: Path) -> None:
    torch.manual_seed(0)
    wrapped = SCMInferenceWrapper(
        RationalHead(),
        config=InferenceConfig(tau_infer=1e-3, tau_train=1e-2),
        validity_taus=[0.0, 1e-2],
    ).eval()
    x = torch.randn(16, 2)
    x[0, 0], x[1, 1], x[2, 0] = 0.0, 1.0, math.nan
    export_bundle(wrapped, tmp_path / "t", (x,))
    s = write_bundle_report(tmp_path / "t").summary
    assert s["bundle"]["source"] == "traced_model" and s["bundle"]["denominator"] is None
    assert s["q_abs"]["available"] is False and "traced" in s["q_abs"]["reason"]
    assert s["reference_smoke_test"]["status"] == "skipped"
    # per-factor counts from the mask outputs: V0 = x0 (tau 0), V1 = x1 - 1 (tau 1e-2)
    near = int((torch.abs(x[:, 1] - 1) < 1e-2).sum())
    assert [(f["output_index"], f["semantic_bottom"], f["fault"]) for f in s["factors"]] == [
        (0, 1, 1),
        (1, near, 0),
    ]
    assert near >= 1
    md = (tmp_path / "t" / "VALIDATION_REPORT.md").read_text()
    assert "n/a (traced bundle" in md and "`validity output 1`" in md
    ET.parse(tmp_path / "t" / "VALIDATION_REPORT.summary.svg")
    validate_bundle(tmp_path / "t")


def test_parameters_and_float64(tmp_path: Path) -> None:
    x = np.array([[1.0, 2.0], [0.5, 1.0], [3.0, 0.0]])
    bundle = _export(
        tmp_path / "p",
        "a*x/(x - b) + 1/y",
        x,
        parameters=["a", "b"],
        init={"a": 2.0, "b": 0.5},
        dtype=torch.float64,
    )
    s = write_bundle_report(bundle).summary
    q = np.abs(x[:, 1] * (x[:, 0] - 0.5))  # Q = y*(x - b) with b from metadata["parameters"]
    assert s["q_abs"]["min"] == 0.0 and s["q_abs"]["max"] == pytest.approx(q.max())
    assert s["counts"]["bottom"] == 2 and s["reference_smoke_test"]["status"] == "passed"
    assert s["bundle"]["parameters"] == {"a": 2.0, "b": 0.5}


def test_exact_helpers_and_malformed_terms() -> None:
    meta = {
        "source": "compiled_fru",
        "input": {"variables": ["x"]},
        "parameters": {"c": 0.5},
        "fru": {
            "generators": ["x", "c"],
            "numerator_terms": [[[1, 0], "1"]],
            "denominator_terms": [[[2, 0], "1/3"], [[0, 1], "-1"]],
            "provenance": [],
        },
    }
    fru = read_metadata_fru(meta)
    assert fru is not None
    gens = fru.generator_values([Fraction(3, 2)])
    assert eval_terms_exact(fru.denominator_terms, [Fraction(g) for g in gens]) == Fraction(1, 4)
    col = np.array([1.5, 0.0])
    assert eval_terms_float(fru.denominator_terms, fru.generator_values([col]), 2).tolist() == [
        0.25,
        -0.5,
    ]
    for bad in ([[[1], "1"]], [[[1, 0], "__import__('os')"]], [[[1, 0], 3]], [[[-1, 0], "1"]], "x"):
        meta["fru"]["denominator_terms"] = bad
        with pytest.raises(BundleError, match="denominator_terms"):
            read_metadata_fru(meta)
    assert read_metadata_fru({"source": "traced_model", "fru": None}) is None


@pytest.mark.parametrize(
    ("bottom", "gap", "fault", "policy"),
    [
        (0.0, 0.0, 0, "reject_on_bottom"),
        (0.01, 0.005, 0, "reject_on_bottom"),
        (0.01, 0.2, 0, "reject_on_gap"),
        (0.3, 0.0, 0, "route_to_analytic_solver"),
        (0.3, 0.2, 2, "route_to_analytic_solver"),
    ],
)
def test_recommend_fallback(bottom: float, gap: float, fault: int, policy: str) -> None:
    rec = recommend_fallback({"bottom_rate": bottom, "gap_rate": gap}, {"fault": fault})
    assert rec["policy"] == policy and rec["reasons"]
    assert rec["route_gap"] == (policy == "route_to_analytic_solver" and gap > 0.01)
    assert any("fault" in r for r in rec["reasons"]) == bool(fault)
