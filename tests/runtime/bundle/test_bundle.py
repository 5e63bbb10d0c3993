"""ONNX bundles: export, validation (every tamper case), loading, smoke test."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from rt_models import RationalHead

import zpml_symbolic as zs
from zpml_runtime.bundle import (
    BundleError,
    BundleSmokeTestError,
    BundleValidationError,
    export_bundle,
    load_onnx_runtime_bundle,
    run_bundle_reference_smoke_test,
    validate_bundle,
)
from zpml_runtime.bundle.format import checksum_line
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
X = torch.tensor([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 3.0], [math.nan, 1.0], [3.0, 3.0002]])


@pytest.fixture()
def evaluator() -> zs.StrictEvaluator:
    return zs.strict_evaluator(
        zs.parse(EXPR), config=InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    )


@pytest.fixture()
def bundle(tmp_path: Path, evaluator: zs.StrictEvaluator) -> Path:
    out = tmp_path / "bundle"
    export_bundle(evaluator, out, example_inputs=(X,))
    return out


def test_export_writes_files_and_sha256sum_accepts(bundle: Path) -> None:
    assert sorted(p.name for p in bundle.iterdir()) == [
        "metadata.json",
        "metadata.sha256",
        "model.onnx",
        "smoke_inputs.npy",
    ]
    run = subprocess.run(
        ["sha256sum", "-c", "metadata.sha256"], cwd=bundle, capture_output=True, text=True
    )
    assert run.returncode == 0 and "metadata.json: OK" in run.stdout
    meta = json.loads((bundle / "metadata.json").read_text())
    assert (
        meta["inference_config"]["tau_infer"] == 1e-6
        and meta["inference_config"]["tau_train"] == 1e-3
    )
    assert meta["input"]["variables"] == ["x", "y"] and meta["input"]["dtype"] == "float32"
    assert meta["output_order"][:6] == [
        "decoded",
        "bottom_mask",
        "gap_mask",
        "fault_mask",
        "semantic_bottom_mask",
        "bottom_provenance",
    ]
    assert meta["structural_validity_output_schema"]["output_names"] == meta["output_order"][6:]
    assert meta["gauge_policy"] == "canonical_denominator" and meta["source"] == "compiled_fru"
    assert meta["fru"]["validity_factors"] == ["x"]
    assert {p["kind"] for p in meta["fru"]["provenance"]} == {
        "explicit_denominator",
        "divisor_numerator",
    }
    assert "torch" in meta["package_versions"]


def test_validate_load_run_and_smoke_test(bundle: Path, evaluator: zs.StrictEvaluator) -> None:
    validated = validate_bundle(bundle)
    assert validated.smoke_inputs.shape == (6, 2)
    runtime = load_onnx_runtime_bundle(bundle, providers=["CPUExecutionProvider"])
    decoded, bottom_mask, gap_mask = runtime.run(X.numpy())
    assert bottom_mask.tolist() == [False, True, True, True, True, False]
    assert gap_mask.tolist() == [False, False, False, False, False, True]
    assert runtime.run(X).bottom_provenance.tolist() == [0, 2, 2, 2, 1, 0]
    report = run_bundle_reference_smoke_test(bundle, evaluator, (X,))
    assert report.passed and report.samples == 6
    # a reference with a different threshold disagrees
    other = zs.strict_evaluator(zs.parse(EXPR), config=InferenceConfig(tau_infer=1e-6))
    with pytest.raises(BundleSmokeTestError, match="gap_mask"):
        run_bundle_reference_smoke_test(bundle, other, (X,))


def test_existing_bundle_replaced_only_when_asked(
    bundle: Path, evaluator: zs.StrictEvaluator
) -> None:
    with pytest.raises(BundleError, match="already exists; pass overwrite=True"):
        export_bundle(evaluator, bundle, example_inputs=(X,))
    export_bundle(evaluator, bundle, example_inputs=(X[:2],), overwrite=True)
    assert validate_bundle(bundle).smoke_inputs.shape == (2, 2)
    # No temp dirs left; the export lock file `.bundle.lock` stays (deleting a lock file
    # another process may be waiting on is unsafe; documented in docs/deployment.md).
    leftovers = [p.name for p in bundle.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [".bundle.lock"]


def test_refuses_to_replace_a_non_bundle_directory(
    tmp_path: Path, evaluator: zs.StrictEvaluator
) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    # (message reworded in issue 13: it now names the files that would be lost)
    with pytest.raises(BundleError, match="not part of a bundle .notes.txt.; refusing to replace"):
        export_bundle(evaluator, tmp_path / "precious", example_inputs=(X,), overwrite=True)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def _rewrite_metadata(bundle: Path, edit) -> None:  # noqa: ANN001
    meta = json.loads((bundle / "metadata.json").read_text())
    edit(meta)
    data = json.dumps(meta, sort_keys=True, indent=2).encode()
    (bundle / "metadata.json").write_bytes(data)
    (bundle / "metadata.sha256").write_text(checksum_line(data))


def _problems(bundle: Path) -> str:
    with pytest.raises(BundleValidationError) as info:
        validate_bundle(bundle)
    return "\n".join(info.value.problems)


def test_truncated_json(bundle: Path) -> None:
    data = (bundle / "metadata.json").read_bytes()[:100]
    (bundle / "metadata.json").write_bytes(data)
    (bundle / "metadata.sha256").write_text(checksum_line(data))
    assert "not valid strict JSON" in _problems(bundle)


def test_metadata_edited_without_checksum(bundle: Path) -> None:
    text = (
        (bundle / "metadata.json")
        .read_text()
        .replace('"bundle_id": "bundle"', '"bundle_id": "other"')
    )
    (bundle / "metadata.json").write_text(text)
    assert "does not match metadata.sha256" in _problems(bundle)


@pytest.mark.parametrize(
    "name", ["model.onnx", "metadata.json", "metadata.sha256", "smoke_inputs.npy"]
)
def test_missing_file(bundle: Path, name: str) -> None:
    (bundle / name).unlink()
    assert name in _problems(bundle)


def test_flipped_byte_in_model(bundle: Path) -> None:
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / "model.onnx").write_bytes(bytes(data))
    assert "model.onnx: sha256" in _problems(bundle)


def test_flipped_byte_in_smoke_inputs(bundle: Path) -> None:
    data = bytearray((bundle / "smoke_inputs.npy").read_bytes())
    data[-1] ^= 0x40
    (bundle / "smoke_inputs.npy").write_bytes(bytes(data))
    assert "smoke inputs: sha256" in _problems(bundle)


def test_edited_threshold_in_metadata(bundle: Path) -> None:
    _rewrite_metadata(bundle, lambda m: m["inference_config"].__setitem__("tau_infer", 1e-3))
    assert "do not give the graph's thresholds" in _problems(bundle)


def test_edited_effective_threshold(bundle: Path) -> None:
    _rewrite_metadata(bundle, lambda m: m["effective_thresholds"].__setitem__("t_infer", 0.5))
    assert "thresholds baked into the graph" in _problems(bundle)


def test_edited_dtype(bundle: Path) -> None:
    _rewrite_metadata(bundle, lambda m: m["input"].__setitem__("dtype", "float64"))
    problems = _problems(bundle)
    assert "graph input dtype 'float32' differs from metadata input.dtype 'float64'" in problems


def test_edited_output_order(bundle: Path) -> None:
    _rewrite_metadata(bundle, lambda m: m["output_order"].reverse())
    assert "differ from metadata output_order" in _problems(bundle)


@pytest.mark.parametrize("bad", ["../model.onnx", "/etc/passwd", "sub/model.onnx", ".."])
def test_path_traversal(bundle: Path, bad: str) -> None:
    _rewrite_metadata(bundle, lambda m: m.__setitem__("model_file", bad))
    assert "path traversal refused" in _problems(bundle)


def test_symlinked_model_is_refused(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    os.replace(bundle / "model.onnx", outside)
    (bundle / "model.onnx").symlink_to(outside)
    assert "symbolic link" in _problems(bundle)


def test_schema_violations_are_all_reported(bundle: Path) -> None:
    def edit(m: dict) -> None:
        m["schema_version"] = 99
        del m["gauge_policy"]
        m["validity_taus"] = [-1]

    _rewrite_metadata(bundle, edit)
    problems = _problems(bundle)
    assert "schema_version" in problems and "'gauge_policy' is a required property" in problems
    assert "validity_taus/0" in problems


def test_nan_tokens_are_rejected(bundle: Path) -> None:
    text = (bundle / "metadata.json").read_text().replace('"tau_infer": 1e-06', '"tau_infer": NaN')
    (bundle / "metadata.json").write_text(text)
    (bundle / "metadata.sha256").write_text(checksum_line(text.encode()))
    assert "non-standard JSON token 'NaN'" in _problems(bundle)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleValidationError, match="is not a directory"):
        validate_bundle(tmp_path / "nope")


def test_float64_bundle_and_parameters(tmp_path: Path) -> None:
    expr = zs.parse("(a*x + 1)/(x - b)", parameters=["a", "b"])
    ev = zs.strict_evaluator(expr, init={"a": 2.0, "b": 0.5}, dtype=torch.float64)
    x = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    meta = export_bundle(ev, tmp_path / "b64", example_inputs=(x,)).metadata
    assert meta["parameters"] == {"a": 2.0, "b": 0.5} and meta["input"]["dtype"] == "float64"
    rt = load_onnx_runtime_bundle(tmp_path / "b64")
    decoded, bottom, _ = rt.run(x.numpy())
    assert bottom.tolist() == [True, False] and decoded[1] == pytest.approx(6.0)


def test_wrapper_around_compiled_module_exports_directly(tmp_path: Path) -> None:
    module = zs.to_torch(zs.parse(EXPR))
    wrapped = SCMInferenceWrapper(module, config=InferenceConfig(tau_infer=1e-6)).eval()
    meta = export_bundle(wrapped, tmp_path / "w", example_inputs=(X,)).metadata
    assert meta["source"] == "compiled_fru"
    run_bundle_reference_smoke_test(tmp_path / "w", wrapped, (X,))


def test_unsupported_model(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="supports zpml_symbolic strict evaluators"):
        export_bundle(torch.nn.Linear(2, 2), tmp_path / "x", example_inputs=(X,))
    with pytest.raises(BundleError, match=r"shape \[batch >= 1, 2\]"):
        export_bundle(
            zs.strict_evaluator(zs.parse(EXPR)), tmp_path / "y", example_inputs=(X[:, :1],)
        )
    assert not (tmp_path / "y").exists()


def test_runtime_input_checks(bundle: Path) -> None:
    rt = load_onnx_runtime_bundle(bundle)
    with pytest.raises(BundleError, match=r"shape \[batch, 2\]"):
        rt.run(np.zeros((3, 3), np.float32))
    with pytest.raises(BundleError, match="floating point"):
        rt.run(np.zeros((3, 2), np.int64))


def test_traced_wrapper_bundle_matches_eager_strict_inference(tmp_path: Path) -> None:
    torch.manual_seed(0)
    wrapped = SCMInferenceWrapper(
        RationalHead(),
        config=InferenceConfig(tau_infer=1e-3, tau_train=1e-2),
        validity_taus=[0.0, 1e-2],
    )
    wrapped.train()
    x = torch.randn(64, 2)
    x[0, 0] = 0.0
    x[1, 1] = 1.0
    x[2, 0] = math.nan
    meta = export_bundle(wrapped, tmp_path / "t", example_inputs=(x,)).metadata
    assert wrapped.training  # export restores the mode
    assert meta["source"] == "traced_model" and meta["fru"] is None
    assert meta["validity_taus"] == [0.0, 1e-2]
    assert len(meta["output_order"]) == 12
    validate_bundle(tmp_path / "t")
    report = run_bundle_reference_smoke_test(tmp_path / "t", wrapped)
    assert report.passed and report.samples == 64
    out = load_onnx_runtime_bundle(tmp_path / "t").run(x)
    assert out.bottom_provenance[:3].tolist() == [2, 2, 1]


def test_traced_bundle_threshold_tamper_is_detected(tmp_path: Path) -> None:
    wrapped = SCMInferenceWrapper(RationalHead(), config=InferenceConfig(tau_infer=1e-3)).eval()
    export_bundle(wrapped, tmp_path / "t", example_inputs=(torch.randn(4, 2),))
    _rewrite_metadata(
        tmp_path / "t", lambda m: m["inference_config"].__setitem__("tau_infer", 1e-6)
    )
    assert "do not give the graph's thresholds" in _problems(tmp_path / "t")


def test_strict_decoder_model_matches_runtime() -> None:
    import onnx
    import onnxruntime as ort

    from zpml_runtime.inference import strict_inference
    from zpml_symbolic.emit.backends.onnx import strict_decoder_model

    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-3)
    P = np.array([1, 2, 3, np.nan, 1e30, 5], np.float32)
    Q = np.array([1, 0, 1e-4, 1, 1e-30, 1e-7], np.float32)
    V = np.array([[1, 1], [1, 1], [1, 0], [2, 2], [1, 1], [np.inf, 1]], np.float32)
    for k in (0, 2):
        model = strict_decoder_model(k, config=cfg, validity_taus=0.5)
        onnx.checker.check_model(model, full_check=True)
        feeds = {"P": P, "Q": Q, **({"V": V[:, :k]} if k else {})}
        got = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
        want = strict_inference(
            P, Q, config=cfg, validity_factors=V[:, :k] if k else None, validity_taus=0.5
        ).as_dict()
        assert len(got) == len(want)
        for (name, w), g in zip(want.items(), got, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=name)
    with pytest.raises(zs.InvalidArgumentError, match="num_factors must be an int >= 0"):
        strict_decoder_model(-1)


def test_seed_onnx_bundle_snippet_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed 000 "ONNX Bundles", imports moved to zpml_runtime."""
    from zpml_runtime.inference import InferenceConfig as Config
    from zpml_runtime.inference import (
        export_bundle,
        load_onnx_runtime_bundle,
        run_bundle_reference_smoke_test,
        validate_bundle,
    )

    monkeypatch.chdir(tmp_path)
    model = zs.to_torch(zs.parse("(x**2 + 1)/(x - y) + 1/(1 + 1/x)"))
    wrapped = SCMInferenceWrapper(model, config=Config(tau_infer=1e-6, tau_train=1e-4)).eval()
    x_example = X
    x_numpy = X.numpy()
    x_smoke = X[:3]

    export_bundle(wrapped, "bundle_dir", example_inputs=(x_example,))
    validate_bundle("bundle_dir")

    runtime = load_onnx_runtime_bundle(
        "bundle_dir",
        providers=["CPUExecutionProvider"],
    )
    decoded, bottom_mask, gap_mask = runtime.run(x_numpy)

    run_bundle_reference_smoke_test("bundle_dir", wrapped, (x_smoke,))
    assert bottom_mask.tolist() == [False, True, True, True, True, False]
    assert sorted(p.name for p in (tmp_path / "bundle_dir").iterdir()) == [
        "metadata.json",
        "metadata.sha256",
        "model.onnx",
        "smoke_inputs.npy",
    ]
