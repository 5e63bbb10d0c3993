"""The ``zpml`` command line: every subcommand, every user error, the entry points, the docs."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zpml_runtime.bundle import validate_bundle
from zpml_runtime.bundle.format import REPORT_FILES
from zpml_runtime.cli import main, report_main

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
DOC = Path(__file__).resolve().parents[3] / "docs" / "deployment.md"
BIN = Path(sys.executable).parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "bundle"
    assert (
        main(["compile", EXPR, "--tau-infer", "1e-6", "--tau-train", "1e-3", "--onnx", str(out)])
        == 0
    )
    return out


def test_compile_summary_and_default_smoke_inputs(
    bundle: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    vb = validate_bundle(bundle)
    smoke = vb.smoke_inputs
    rows = {tuple(r) for r in smoke.tolist()}
    # zeros row and one point on each linear factor's zero set (others at 1)
    assert {(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (-1.0, 1.0)} <= rows and len(smoke) == 20
    code, out, err = run(capsys, "compile", EXPR, "--onnx", str(tmp_path / "again"))
    assert code == 0 and err == ""
    assert "Q = x**2 - x*y + x - y" in out and "[0] x  from '1/x'" in out
    again = validate_bundle(tmp_path / "again")
    assert again.metadata["smoke_inputs"]["sha256"] == vb.metadata["smoke_inputs"]["sha256"]


def test_compile_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    smoke = tmp_path / "smoke.npy"
    np.save(smoke, np.array([[1.0, 2.0], [0.5, 1.0]]))
    out_dir = tmp_path / "p"
    argv = ["compile", "a*x/(x - b) + 1/y", "--param", "a", "--param", "b", "--init", "a=2"]
    argv += ["--init", "b=0.5", "--dtype", "float64", "--variables", "y,x", "--validity-tau", "0"]
    argv += ["--smoke-inputs", str(smoke), "--onnx", str(out_dir)]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "parameters a=2, b=0.5" in out
    meta = validate_bundle(out_dir).metadata
    assert meta["input"]["variables"] == ["y", "x"] and meta["input"]["dtype"] == "float64"
    assert meta["parameters"] == {"a": 2.0, "b": 0.5} and meta["smoke_inputs"]["shape"] == [2, 2]
    code, _, _ = run(capsys, *argv, "--overwrite")
    assert code == 0


def test_inspect(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", str(bundle))
    assert code == 0 and err == ""
    assert re.search(r"^bundle_id\s+bundle$", out, re.M)
    assert re.search(r"^Q\s+x\*\*2 - x\*y \+ x - y$", out, re.M)
    # Thresholds are read exactly and rounded up to float64 (issue 13 item 3: never fail
    # open by rounding down), so the decimal 1e-6 is stored as the next float64 above it.
    assert "tau_infer=1.0000000000000002e-06 tau_train=0.001" in out
    assert re.search(r"^1\s+x\s+explicit_denominator\s+validity output 0\s+1/x @ root", out, re.M)
    assert re.search(
        r"^2\s+x \+ 1\s+divisor_numerator\s+Q\s+1/\(1 \+ 1/x\) @ root.args\[1\]$", out, re.M
    )


def test_explain(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explain", str(bundle), "--input", "0,1", "--input", "1, 1", "--input", "-1,3"]
    code, out, err = run(capsys, *argv, "--input", "nan,1", "--input", "1e-7,0", "--input", "0.1,2")
    assert code == 0 and err == ""
    blocks = re.split(r"^input \d+: ", out, flags=re.M)[1:]
    assert len(blocks) == 6
    zero_x, zero_xy, zero_x1, fault, threshold, finite = blocks
    assert (
        "bottom=True" in zero_x
        and "#1 x = 0  [explicit_denominator, in validity output 0]  <- bottom" in zero_x
    )
    assert "1/(1 + 1/x)  at root.args[1]  (divisor_denominator, factor x)" in zero_x
    assert "#0 x - y = 0" in zero_xy and "(x**2 + 1)/(x - y)  at root.args[0].args[1]" in zero_xy
    assert "#2 x + 1 = 0" in zero_x1 and "strict value = bottom" in zero_x1
    assert "fault=True" in fault and "x non-finite" in fault
    assert "bottom by threshold" in threshold and "bottomed denominators: none" in threshold
    assert "bottom=False" in finite and "not exact in float32" in finite
    assert "P/Q = -921/2090" in finite
    code, out, err = run(capsys, "explain", str(bundle), "--input", "1e300,1")
    assert code == 0 and err == "" and "the runtime saw inf" in out and "fault=True" in out
    assert "~1e+300 (exact: a rational with 301-digit terms)" in out


def test_report_bundle(bundle: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.array([[2.0, 1.0], [0.0, 1.0]], dtype=np.float32))
    code, out, err = run(capsys, "report", "bundle", str(bundle), "--inputs", str(inputs))
    assert code == 0 and err == "" and "recommended fallback: route_to_analytic_solver" in out
    summary = json.loads((bundle / "VALIDATION_REPORT.summary.json").read_text())
    assert summary["counts"]["samples"] == 2 and summary["rates"]["bottom_rate"] == 0.5
    assert report_main(["bundle", str(bundle)]) == 0
    assert "bottom rate" in capsys.readouterr().out
    assert all((bundle / name).exists() for name in REPORT_FILES)
    validate_bundle(bundle)


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_calibrate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = ["Q,ok"] + [f"{q},{'true' if q > 1e-5 else 'FALSE'}" for q in np.logspace(-9, 0, 50)]
    csv_file = _csv(tmp_path / "h.csv", "\n".join(rows) + "\n")
    argv = ["calibrate", "--csv", str(csv_file), "--q-column", "Q", "--in-range-column", "ok"]
    code, out, err = run(capsys, *argv, "--taus", "0,1e-6,1e-5,1e-4", "--out", str(tmp_path / "c"))
    assert code == 0 and err == "" and "recommended tau_infer = 1e-05" in out
    sweep = json.loads((tmp_path / "c" / "tau_infer_sweep.json").read_text())
    assert sweep["n_total"] == 50 and sweep["recommendation"]["tau_infer"] == 1e-05
    code, _, err = run(
        capsys,
        *argv,
        "--taus",
        "1e-3",
        "--max-false-bottom-rate",
        "0",
        "--out",
        str(tmp_path / "d"),
    )
    assert code == 1 and err.startswith("zpml: error: no swept tau_infer")
    assert (tmp_path / "d" / "tau_infer_sweep.json").exists()


def _error_cases(bundle: Path, tmp: Path) -> list[tuple[list[str], int, str]]:
    _csv(tmp / "cols.csv", "a,b\n1,0\n")
    _csv(tmp / "cell.csv", "q_abs,in_range\n1e-3,1\nabc,0\n")
    _csv(tmp / "flag.csv", "q_abs,in_range\n1e-3,maybe\n")
    _csv(tmp / "neg.csv", "q_abs,in_range\n-1,1\n")
    _csv(tmp / "empty.csv", "q_abs,in_range\n")
    (tmp / "pickle.npy").write_bytes(
        b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
        + b" " * 50
        + b"\n"
    )
    np.save(tmp / "text.npy", np.array([["a"]]))
    np.save(tmp / "wide.npy", np.zeros((2, 3)))
    b, o = str(bundle), str(tmp / "out")
    return [
        ([], 2, "required: COMMAND"),
        (["frobnicate"], 2, "invalid choice"),
        (["compile", "x +* 2", "--onnx", o], 2, "missing operand"),
        (["compile", "sin(x)", "--onnx", o], 2, "function calls are not supported"),
        (["compile", "__import__('os').system('true')", "--onnx", o], 2, "not supported"),
        (["compile", "x/y"], 2, "--onnx"),
        (["compile", "a*x", "--init", "a=2", "--onnx", o], 2, "not declared with --param"),
        (["compile", "a*x", "--param", "a", "--init", "a=zz", "--onnx", o], 2, "not a number"),
        (["compile", "x", "--variables", "y", "--onnx", o], 2, "does not list"),
        (["compile", "x", "--tau-infer", "-1", "--onnx", o], 2, "tau_infer"),
        (["compile", "x", "--tau-infer", "abc", "--onnx", o], 2, "is not a number"),
        (["compile", "x", "--onnx", b], 1, "--overwrite"),
        (["compile", "x", "--smoke-inputs", str(tmp / "none.npy"), "--onnx", o], 1, "No such file"),
        (
            ["compile", "x", "--smoke-inputs", str(tmp / "pickle.npy"), "--onnx", o],
            1,
            "is a damaged .npy file",
        ),
        (["compile", "x", "--smoke-inputs", str(tmp / "text.npy"), "--onnx", o], 1, "real numbers"),
        (
            ["compile", "x", "--smoke-inputs", str(tmp / "wide.npy"), "--onnx", o],
            1,
            "shape [batch >= 1, 1]",
        ),
        (["inspect", str(tmp / "nope")], 1, "is not a directory"),
        (["inspect", str(tmp)], 1, "missing file 'metadata.json'"),
        (["explain", b], 2, "--input"),
        (["explain", b, "--input", "1"], 2, "has 1 value(s)"),
        (["explain", b, "--input", "a,1"], 2, "'a' for x is not a number"),
        (["explain", b, "--input", "1/3,1"], 2, "is not a number"),
        (["explain", b, "--input", "1e400,1"], 2, "overflows"),
        (["report", "bundle", str(tmp / "nope")], 1, "is not a directory"),
        (["report", "bundle", b, "--inputs", str(tmp / "none.npy")], 1, "cannot read"),
        (["report", "nothing"], 2, "invalid choice"),
        (["calibrate", "--csv", str(tmp / "none.csv"), "--out", o], 1, "No such file"),
        (["calibrate", "--csv", str(tmp / "cols.csv"), "--out", o], 1, "no column(s)"),
        (["calibrate", "--csv", str(tmp / "cell.csv"), "--out", o], 1, "row 3"),
        (["calibrate", "--csv", str(tmp / "flag.csv"), "--out", o], 1, "not a boolean"),
        (["calibrate", "--csv", str(tmp / "neg.csv"), "--out", o], 1, "|Q| >= 0"),
        (["calibrate", "--csv", str(tmp / "empty.csv"), "--out", o], 1, "no data rows"),
        (["calibrate", "--csv", "x.csv", "--taus", "a,b", "--out", o], 2, "comma-separated"),
        (["calibrate", "--csv", "x.csv", "--max-false-bottom-rate", "2", "--out", o], 2, "[0, 1]"),
    ]


def test_user_errors_are_one_line(
    bundle: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for argv, want_code, fragment in _error_cases(bundle, tmp_path):
        code, out, err = run(capsys, *argv)
        lines = err.splitlines()
        assert code == want_code, (argv, code, err)
        assert len(lines) == 1 and lines[0].startswith("zpml: error: "), (argv, err)
        assert fragment in lines[0], (argv, err)
        assert "Traceback" not in err and out == ""
    assert not (tmp_path / "out").exists()


def test_invalid_bundle_lists_problems_on_one_line(
    bundle: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (bad / "model.onnx").write_bytes(bytes(data))
    for argv in (
        ["inspect", str(bad)],
        ["explain", str(bad), "--input", "1,2"],
        ["report", "bundle", str(bad)],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1 and len(err.splitlines()) == 1 and "sha256" in err and "is invalid" in err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "compile" in out and "calibrate" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("zpml ")


def test_installed_entry_points(bundle: Path) -> None:
    zpml = BIN / "zpml"
    assert zpml.exists(), "run `pip install -e .` to install the zpml console script"
    proc = subprocess.run(
        [str(zpml), "inspect", str(bundle)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "provenance (denominator factors):" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "zpml_runtime.report", "bundle", str(bundle / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("zpml: error: ")
    assert "Traceback" not in proc.stderr


def test_deployment_doc_examples_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = DOC.read_text()
    python_blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    shell_lines = [
        line
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
        for line in block.splitlines()
        if line.strip()
    ]
    assert len(python_blocks) >= 7 and len(shell_lines) >= 7
    script = tmp_path / "deployment_doc.py"
    script.write_text("\n".join(python_blocks))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")  # in-process: warnings are errors here too
    assert (tmp_path / "bundle_dir" / "VALIDATION_REPORT.summary.json").exists()
    for line in shell_lines:
        argv = shlex.split(line)
        if argv[:3] == ["python", "-m", "zpml_runtime.report"]:
            code = report_main(argv[3:])
        else:
            assert argv[0] == "zpml", line
            code = main(argv[1:])
        assert code == 0, (line, capsys.readouterr().err)
    out = capsys.readouterr().out
    assert "recommended tau_infer = 1e-05" in out and "bottomed denominators:" in out
    validate_bundle(tmp_path / "cli_bundle")


def test_traced_bundle_inspect_and_explain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import torch

    from zpml_runtime.bundle import export_bundle
    from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

    class Head(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x[:, 0] + 1, x[:, 1]  # P / Q with Q = y

    wrapped = SCMInferenceWrapper(Head(), config=InferenceConfig(tau_infer=0.0)).eval()
    export_bundle(wrapped, tmp_path / "t", (torch.tensor([[1.0, 2.0]]),))
    code, out, _ = run(capsys, "inspect", str(tmp_path / "t"))
    assert code == 0 and "traced_model" in out and "P/Q         n/a (traced model" in out
    code, out, _ = run(capsys, "explain", str(tmp_path / "t"), "--input", "1,0", "--input", "1,2")
    assert code == 0 and out.count("exact factors: n/a (traced model") == 2
    assert "decoded=nan bottom=True" in out and "decoded=1.0 bottom=False" in out
