"""UNVERIFIED is visible everywhere: ``zpml inspect``, ``explain``, ``report bundle``,
the report files; ``--allow-unverified`` and ``--require-verified`` on the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from bundle_tamper_helpers import rehash
from torch import nn

import zpml_symbolic as zs
from zpml_runtime.bundle import export_bundle
from zpml_runtime.cli import main
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper


class Head(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, 0] + 1, x[:, 0] - x[:, 1]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    cfg = InferenceConfig(tau_infer=1e-6)
    x = torch.tensor([[2.0, 1.0], [1.0, 1.0]])
    compiled = export_bundle(
        zs.strict_evaluator("(x + 1)/(x - y)", config=cfg), root / "c", (x,)
    ).path
    traced = export_bundle(SCMInferenceWrapper(Head(), config=cfg), root / "t", (x,)).path
    old = root / "old"
    shutil.copytree(compiled, old)
    rehash(old, lambda m: m["emitter"].__setitem__("version", "0.0.1"))
    return {"compiled": compiled, "traced": traced, "old": old}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_says_verified_or_unverified(
    bundles: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["inspect", str(bundles["compiled"])], capsys)
    assert code == 0 and "(valid)" in out and "UNVERIFIED" not in out
    assert "verified    yes: model.onnx is the deterministic compilation" in out
    code, out, _ = _run(["inspect", str(bundles["traced"])], capsys)
    assert code == 0 and "(valid, UNVERIFIED)" in out and "UNVERIFIED: traced model" in out
    code, _, err = _run(["inspect", "--require-verified", str(bundles["traced"])], capsys)
    assert code == 1 and "refused by require_verified" in err
    code, _, _ = _run(["inspect", "--require-verified", str(bundles["compiled"])], capsys)
    assert code == 0


def test_other_version_refused_unless_allowed(
    bundles: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["inspect", str(bundles["old"])], capsys)
    assert code == 1 and "zpml '0.0.1'" in err and "--allow-unverified" in err
    code, out, _ = _run(["inspect", "--allow-unverified", str(bundles["old"])], capsys)
    assert code == 0 and "(valid, UNVERIFIED)" in out and "0.0.1" in out
    code, out, err = _run(
        ["explain", "--allow-unverified", str(bundles["old"]), "--input", "1,1"], capsys
    )
    assert code == 0 and out.startswith("UNVERIFIED: ") and "Warning" not in err
    code, _, err = _run(["report", "bundle", str(bundles["old"])], capsys)
    assert code == 1 and not (bundles["old"] / "VALIDATION_REPORT.md").exists()


def test_report_files_say_unverified(
    bundles: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, flags in (("traced", []), ("old", ["--allow-unverified"])):
        bundle = tmp_path / name
        shutil.copytree(bundles[name], bundle)
        code, out, err = _run(["report", "bundle", *flags, str(bundle)], capsys)
        assert code == 0 and "  UNVERIFIED: " in out and "Warning" not in err
        md = (bundle / "VALIDATION_REPORT.md").read_text()
        assert "**UNVERIFIED**" in md.splitlines()[4]
        summary = json.loads((bundle / "VALIDATION_REPORT.summary.json").read_text())
        assert summary["validation"]["verified"] is False and summary["validation"]["unverified"]
        (check,) = [c for c in summary["checklist"] if c["item"] == "Run validate_bundle(...)."]
        assert check["status"] == "unverified" and "UNVERIFIED" in check["detail"]
    bundle = tmp_path / "compiled"
    shutil.copytree(bundles["compiled"], bundle)
    code, out, _ = _run(["report", "bundle", str(bundle)], capsys)
    assert code == 0 and "UNVERIFIED" not in out
    summary = json.loads((bundle / "VALIDATION_REPORT.summary.json").read_text())
    assert summary["validation"]["verified"] is True
    assert "Graph: verified" in (bundle / "VALIDATION_REPORT.md").read_text()


def test_explain_traced_prints_unverified(
    bundles: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["explain", str(bundles["traced"]), "--input", "1,1"], capsys)
    assert code == 0 and out.startswith("UNVERIFIED: traced model") and "Warning" not in err


def test_flags_are_exclusive(bundles: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        ["inspect", "--allow-unverified", "--require-verified", str(bundles["compiled"])], capsys
    )
    assert code == 2 and "not allowed with" in err
