"""Multi-output bundles (issue 10 bug 8): compiled multi-expression and traced [batch, k] models."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_tamper_helpers import rehash
from torch import nn

import zpml_symbolic as zs
from zpml_runtime.bundle import (
    BundleError,
    BundleValidationError,
    export_bundle,
    load_onnx_runtime_bundle,
    run_bundle_reference_smoke_test,
    validate_bundle,
)
from zpml_runtime.bundle.report import write_bundle_report
from zpml_runtime.cli import main
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

CORE = [
    "decoded",
    "bottom_mask",
    "gap_mask",
    "fault_mask",
    "semantic_bottom_mask",
    "bottom_provenance",
]
INV_JACOBIAN = ["d/(a*d - b*c)", "-b/(a*d - b*c)", "-c/(a*d - b*c)", "a/(a*d - b*c)"]


@pytest.fixture(scope="module")
def ik_bundle(tmp_path_factory: pytest.TempPathFactory):
    """The coordinator's use case: a traced IK template model with [B, 2] outputs."""
    from zpml_runtime.robotics.models import IKTemplateModel

    wrapped = SCMInferenceWrapper(
        IKTemplateModel(), config=InferenceConfig(tau_infer=1e-8, tau_train=1e-4)
    )
    x = torch.tensor(np.random.default_rng(0).uniform(-3, 3, (8, 4)))
    x[0, 1] = 0.0  # q2 = 0: det J = 0, the template's Q vanishes exactly
    x[1, 1] = math.pi  # sin(pi) rounds to 1.2e-16: |Q| below tau_infer
    out = tmp_path_factory.mktemp("ik") / "ik_bundle"
    exported = export_bundle(wrapped, out, example_inputs=(x,))
    return wrapped, x, out, exported


def test_traced_ik_model_end_to_end(ik_bundle) -> None:
    wrapped, x, out, exported = ik_bundle
    meta = exported.metadata
    assert meta["source"] == "traced_model"
    assert meta["multi_output"]["k"] == 2 and meta["multi_output"]["output_names"] == ["e0", "e1"]
    shapes = {o["name"]: o["shape"] for o in meta["outputs"]}
    assert all(shapes[n] == ["batch", 2] for n in CORE)
    validate_bundle(out)
    smoke = run_bundle_reference_smoke_test(out, wrapped, (x,))
    assert smoke.passed and smoke.samples == 8
    runtime = load_onnx_runtime_bundle(out)
    assert runtime.num_outputs == 2
    result = runtime.run(x.numpy())
    decoded, bottom, gap = result
    assert decoded.shape == bottom.shape == gap.shape == result.bottom_provenance.shape == (8, 2)
    wrapped.eval()
    with torch.no_grad():
        want = wrapped(x)
    np.testing.assert_array_equal(bottom, want.bottom_mask.numpy())
    assert bottom[0].all() and bottom[1].all()  # the singular configurations, both outputs
    assert not bottom[2:].any()
    np.testing.assert_allclose(decoded[2:], want.decoded.numpy()[2:], rtol=1e-12)
    assert set(np.unique(result.bottom_provenance[:2])) == {2}  # semantic, not a fault
    report = write_bundle_report(out, inputs=x.numpy())
    s = report.summary
    assert s["counts"]["samples"] == 8 and s["counts"]["bottom"] == 2  # per sample
    assert [p["counts"]["bottom"] for p in s["per_output"]] == [2, 2]
    assert s["bundle"]["outputs_per_sample"] == 2
    validate_bundle(out)


def test_traced_model_with_per_sample_factor_tensor(tmp_path: Path) -> None:
    class Model(nn.Module):
        def forward(self, x: torch.Tensor):
            P = torch.stack([x[:, 0], x[:, 0] * 2 + 1], dim=-1)
            Q = x[:, 1] - 1.0  # one denominator per sample, shared by both outputs
            V = torch.stack([x[:, 0], x[:, 1] + 2.0], dim=-1)  # [B, m]: m factors of [B]
            return P, Q, V

    wrapped = SCMInferenceWrapper(Model(), config=InferenceConfig(tau_infer=0.0))
    x = torch.tensor([[1.0, 2.0], [0.0, 3.0], [2.0, 1.0], [1.0, -2.0], [math.nan, 0.0]])
    b = export_bundle(wrapped, tmp_path / "b", (x,))
    factors = b.metadata["multi_output"]["factors"]
    assert [f["shape"] for f in factors] == [["batch"], ["batch"]]
    run_bundle_reference_smoke_test(tmp_path / "b", wrapped, (x,))
    r = load_onnx_runtime_bundle(tmp_path / "b").run(x.numpy())
    assert r.structural_validity_factor_0_value.shape == (5,)
    np.testing.assert_array_equal(
        r.bottom_mask,
        [[False, False], [True, True], [True, True], [True, True], [True, True]],
    )
    np.testing.assert_array_equal(r.bottom_provenance[4], [1, 1])  # NaN input: fault


def test_traced_model_with_mismatched_q_is_refused(tmp_path: Path) -> None:
    class Model(nn.Module):
        def forward(self, x: torch.Tensor):
            return x[:, :2], x  # P [B, 2], Q [B, 3]

    with pytest.raises(BundleError, match=r"Q has shape \(4, 3\).*\[batch, 2\]"):
        export_bundle(SCMInferenceWrapper(Model()), tmp_path / "b", (torch.ones(4, 3),))
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def jacobian_bundle(tmp_path_factory: pytest.TempPathFactory):
    ev = zs.strict_evaluator(
        [zs.parse(e) for e in INV_JACOBIAN],
        config=InferenceConfig(tau_infer=1e-6, tau_train=1e-3),
        dtype=torch.float64,
    )
    x = torch.tensor(
        [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 4.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    out = tmp_path_factory.mktemp("jac") / "jac"
    exported = export_bundle(ev, out, (x,), output_names=["j00", "j01", "j10", "j11"])
    return ev, x, out, exported


def test_compiled_inverse_jacobian_validates_with_semantic_check(jacobian_bundle) -> None:
    ev, x, out, exported = jacobian_bundle
    meta = exported.metadata
    assert meta["multi_output"]["output_names"] == ["j00", "j01", "j10", "j11"]
    assert [e["fru"]["expression"] for e in meta["expressions"]] == [
        str(zs.flatten(zs.parse(e)).expression) for e in INV_JACOBIAN
    ] or len(meta["expressions"]) == 4
    vb = validate_bundle(out, seed=1)
    assert vb.semantic is not None and vb.semantic.rows >= 4 * 10
    assert vb.semantic.zero_set_rows >= 4  # points on a*d - b*c = 0, per output
    r = load_onnx_runtime_bundle(out).run(x.numpy())
    assert r.decoded.shape == (4, 4)
    np.testing.assert_allclose(r.decoded[0], [-2.0, 1.0, 1.5, -0.5])
    assert r.bottom_mask[1].all() and r.bottom_mask[2].all() and not r.bottom_mask[[0, 3]].any()
    assert run_bundle_reference_smoke_test(out, ev, (x,)).passed


def test_compiled_multi_report_and_cli(jacobian_bundle, capsys: pytest.CaptureFixture[str]) -> None:
    _, x, out, _ = jacobian_bundle
    rep = write_bundle_report(out, inputs=x.numpy())
    s = rep.summary
    assert s["reference_smoke_test"]["status"] == "passed"
    assert [p["output"] for p in s["q_abs"]["per_output"]] == ["j00", "j01", "j10", "j11"]
    assert all(p["zero"] == 2 for p in s["q_abs"]["per_output"])
    assert {f["output"] for f in s["factors"]} == {"j00", "j01", "j10", "j11"}
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"outputs/sample\s+4: j00, j01, j10, j11", text)
    assert "Q [j11]" in text and "output j11:" in text
    assert main(["explain", str(out), "--input", "1,2,2,4"]) == 0
    text = capsys.readouterr().out
    assert text.count("exact: Q = 0; strict value = bottom") == 4


def test_swapped_expressions_fail_the_semantic_check(jacobian_bundle, tmp_path: Path) -> None:
    import shutil

    _, _, out, _ = jacobian_bundle
    bad = tmp_path / "swapped"
    shutil.copytree(out, bad)

    def swap(meta: dict) -> None:
        e = meta["expressions"]
        e[0]["fru"], e[3]["fru"] = e[3]["fru"], e[0]["fru"]

    rehash(bad, swap)
    with pytest.raises(BundleValidationError, match=r"output 0 \(j00\).*does not compute"):
        validate_bundle(bad, seed=3)


def test_multi_output_structure_edits_are_caught(jacobian_bundle, tmp_path: Path) -> None:
    import shutil

    _, _, out, _ = jacobian_bundle
    bad = tmp_path / "k"
    shutil.copytree(out, bad)
    rehash(bad, lambda m: m["multi_output"].update(k=3))
    with pytest.raises(BundleValidationError, match=r"needs \['batch', 3\]"):
        validate_bundle(bad)


def test_compiled_multi_with_validity_factors_and_per_expression_taus(tmp_path: Path) -> None:
    module = zs.to_torch(["1/(1 + 1/x)", "y/(x - y)", "1/(1/x + 1/y)"])
    ev = zs.strict_evaluator(module, validity_taus=[0.0, 0.0, [0.25, 0.5]])
    x = torch.tensor([[1.0, 2.0], [0.0, 1.0], [0.2, 3.0], [2.0, 0.4], [1.0, 1.0]])
    b = export_bundle(ev, tmp_path / "b", (x,))
    factors = b.metadata["multi_output"]["factors"]
    assert [f["outputs"] for f in factors] == [[0], [2], [2]]
    assert b.metadata["validity_taus"] == [0.0, 0.25, 0.5]
    assert [e["validity_taus"] for e in b.metadata["expressions"]] == [[0.0], [], [0.25, 0.5]]
    vb = validate_bundle(tmp_path / "b", seed=5)
    assert vb.semantic.rows > 0
    assert run_bundle_reference_smoke_test(tmp_path / "b", ev, (x,)).passed
    r = load_onnx_runtime_bundle(tmp_path / "b").run(x.numpy())
    # x = 0.2 < 0.25: validity factor x of output 2 is a semantic bottom there, not of output 0
    assert r.bottom_mask[2].tolist() == [False, False, True]
    assert r.bottom_mask[3].tolist() == [False, False, True]  # y = 0.4 < 0.5
    # the validity thresholds are baked per factor: editing one is caught
    rehash(tmp_path / "b", lambda m: m["expressions"][2]["validity_taus"].__setitem__(0, 0.1))
    with pytest.raises(BundleValidationError, match="do not give the graph's thresholds"):
        validate_bundle(tmp_path / "b")


def test_output_names_must_match_k(tmp_path: Path) -> None:
    ev = zs.strict_evaluator([zs.parse(e) for e in INV_JACOBIAN[:2]])
    with pytest.raises(BundleError, match="output_names must be 2 distinct"):
        export_bundle(ev, tmp_path / "b", (torch.ones(2, 4),), output_names=["a"])


def test_regauged_expression_exports_and_validates_in_float32(tmp_path: Path) -> None:
    # canonical P = 1e40*x overflows float32; the emitted gauge is 2**-133 times it
    ev = zs.strict_evaluator(zs.parse("x/(1e-40*x + 1)"))
    x = torch.tensor([[1.0], [2.0], [0.0], [-3.0]])
    b = export_bundle(ev, tmp_path / "g", (x,))
    assert b.metadata["gauge_exponents"][0]["PQ"] != 0
    vb = validate_bundle(tmp_path / "g", seed=0)
    assert vb.semantic.rows > 0
    r = load_onnx_runtime_bundle(tmp_path / "g").run(x.numpy())
    np.testing.assert_allclose(r.decoded, [1.0, 2.0, 0.0, -3.0], rtol=1e-6)
    assert run_bundle_reference_smoke_test(tmp_path / "g", ev).passed


def test_gauge_exponents_are_checked_against_the_baked_thresholds(tmp_path: Path) -> None:
    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    ev = zs.strict_evaluator(
        zs.parse("x/(1e-40*x + 1) + 1/(x - 1)"), config=cfg, dtype=torch.float64
    )
    x = torch.tensor([[2.0], [1.0], [0.5]], dtype=torch.float64)
    b = export_bundle(ev, tmp_path / "g", (x,))
    e = b.metadata["gauge_exponents"][0]["PQ"]
    assert e != 0
    assert b.metadata["effective_thresholds"]["t_infer"] == pytest.approx(math.ldexp(1e-6, -e))
    assert validate_bundle(tmp_path / "g", seed=2).semantic.rows > 0
    assert load_onnx_runtime_bundle(tmp_path / "g").run(x.numpy()).bottom_mask.tolist() == [
        False,
        True,
        False,
    ]
    rehash(tmp_path / "g", lambda m: m["gauge_exponents"][0].update(PQ=e + 1))
    with pytest.raises(BundleValidationError, match="do not give the graph's thresholds"):
        validate_bundle(tmp_path / "g", seed=2)


def test_parameter_values_are_checked_against_the_graph(tmp_path: Path) -> None:
    ev = zs.strict_evaluator("lambda*x/(x - 1)", parameters=["lambda"], init={"lambda": 0.5})
    b = export_bundle(ev, tmp_path / "p", (torch.tensor([[2.0], [1.0]]),))
    validate_bundle(tmp_path / "p")
    inits = b.metadata.get("parameter_initializers", {})
    rehash(tmp_path / "p", lambda m: m["parameters"].update({"lambda": 0.75}))
    with pytest.raises(BundleValidationError, match=r"parameter 'lambda'.*0\.5.*0\.75"):
        validate_bundle(tmp_path / "p")
    assert inits.get("lambda", "lambda") != ""


def test_single_output_metadata_keeps_its_format(tmp_path: Path) -> None:
    ev = zs.strict_evaluator("(x**2 + 1)/(x - y)")
    b = export_bundle(ev, tmp_path / "s", (torch.ones(2, 2),))
    assert "multi_output" not in b.metadata and "expressions" not in b.metadata
    assert all(o["shape"] == ["batch"] for o in b.metadata["outputs"])
    assert json.loads((tmp_path / "s" / "metadata.json").read_text())["fru"] is not None
