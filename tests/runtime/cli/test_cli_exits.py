"""Issue 13 items 3 and 9 (CLI): exact thresholds, exit codes, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from zpml_runtime import cli
from zpml_runtime.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    assert err.startswith("zpml: error:") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("value", "dtype", "match"),
    [
        ("1e-400", "float64", "below the smallest positive float64"),
        ("1e-400", "float32", "below the smallest positive float32"),
        ("1e-50", "float32", "below the smallest positive float32"),
        ("1e400", "float32", "too large for float64"),
        ("1e-320", "float32", "below the smallest positive float32"),
        ("-1e-3", "float32", "must be >= 0"),
        ("nan", "float32", "is not a number"),
    ],
)
def test_bad_thresholds_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, dtype: str, match: str
) -> None:
    out_dir = tmp_path / "b"
    code, _, err = _run(
        ["compile", "1/x", f"--tau-infer={value}", "--dtype", dtype, "--onnx", str(out_dir)], capsys
    )
    assert code == 2 and match in _one_line_error(err)
    assert not out_dir.exists()


def test_thresholds_are_rounded_up_never_down() -> None:
    from fractions import Fraction

    third = cli.parse_threshold("0.3333333333333333333333", "--tau-infer")
    assert Fraction(cli.threshold_float(third, "--tau-infer", "float64")) >= third
    assert cli.threshold_float(cli.parse_threshold("1e-300", "--t"), "--t", "float64") >= 1e-300
    assert cli.threshold_float(cli.parse_threshold("0", "--t"), "--t", "float32") == 0.0


def test_validity_tau_underflow_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        ["compile", "1/(1 + 1/x)", "--validity-tau", "1e-46", "--onnx", str(tmp_path / "b")], capsys
    )
    assert code == 2 and "--validity-tau" in _one_line_error(err)


@pytest.mark.parametrize(
    ("expr", "dtype"),
    [("x/(x - 2**2000)", "float64"), ("x/(x - 2**2000)", "float32"), ("x/(x - 2**200)", "float32")],
)
def test_coefficients_overflowing_the_dtype_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expr: str, dtype: str
) -> None:
    code, _, err = _run(["compile", expr, "--dtype", dtype, "--onnx", str(tmp_path / "b")], capsys)
    assert code == 2 and f"is not finite in {dtype}" in _one_line_error(err)
    assert not (tmp_path / "b").exists()


def test_large_coefficient_that_fits_float64_compiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        ["compile", "x/(x - 2**200)", "--dtype", "float64", "--onnx", str(tmp_path / "b")], capsys
    )
    assert code == 0 and "bundle written" in out


def test_failed_reference_smoke_test_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "b"
    assert _run(["compile", "1/(x - y)", "--onnx", str(bundle)], capsys)[0] == 0
    from zpml_runtime.bundle import report

    monkeypatch.setattr(
        report, "reference_smoke_test", lambda *a: {"status": "failed", "detail": "mismatch"}
    )
    code, out, err = _run(["report", "bundle", str(bundle)], capsys)
    assert code == 1 and "reference smoke test: failed" in out
    assert "smoke test failed: mismatch" in _one_line_error(err)


def test_unexpected_exception_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zpml_runtime.bundle as bundle_pkg

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(bundle_pkg, "validate_bundle", boom)
    code, _, err = _run(["inspect", str(tmp_path)], capsys)
    assert code == 1 and "inspect failed unexpectedly (RuntimeError: boom)" in _one_line_error(err)


@pytest.mark.slow  # flattening and exporting 990 variables takes tens of seconds
def test_990_variables_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expr = "1/(" + " + ".join(f"x{i}" for i in range(990)) + ")"
    code, _, err = _run(["compile", expr, "--onnx", str(tmp_path / "b")], capsys)
    assert code == 0 or "Traceback" not in _one_line_error(err)
