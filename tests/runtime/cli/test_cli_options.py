"""``zpml`` command-line items of issue 10 bug 7: duplicate --param, tiny thresholds,
budget flags, unicode hints, --signing-key-file."""

from __future__ import annotations

from pathlib import Path

import pytest

from zpml_runtime.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_duplicate_param_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code, _, err = _run(
        ["compile", "a*x/(x - 1)", "--param", "a", "--param", "a", "--onnx", str(tmp_path / "b")],
        capsys,
    )
    assert code == 2
    assert err.count("\n") == 1 and "--param a is given twice" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("dtype", "code"), [("float32", 2), ("float64", 0)])
def test_tau_infer_1e_50_exit_code_per_dtype(tmp_path: Path, capsys, dtype: str, code: int) -> None:
    got, _, err = _run(
        [
            "compile",
            "1/(x - 1)",
            "--tau-infer",
            "1e-50",
            "--dtype",
            dtype,
            "--onnx",
            str(tmp_path / "b"),
        ],
        capsys,
    )
    assert got == code
    if code == 2:  # below float32's smallest subnormal: refused, never rounded to 0
        assert "--tau-infer" in err and "below the smallest positive float32" in err
    else:
        assert (tmp_path / "b" / "metadata.json").exists()


def test_budget_refusal_names_the_flag_that_raises_it(tmp_path: Path, capsys) -> None:
    expr = "1/(" + "*".join(f"(x{k}+x{k + 1}+1)" for k in range(6)) + ")"
    code, _, err = _run(
        ["compile", expr, "--max-terms", "8", "--onnx", str(tmp_path / "b")], capsys
    )
    assert code == 2 and "--max-terms" in err and "max_terms" in err
    code, out, _ = _run(
        [
            "compile",
            expr,
            "--max-terms",
            "100000",
            "--dtype",
            "float64",
            "--onnx",
            str(tmp_path / "b"),
        ],
        capsys,
    )
    assert code == 0 and "bundle written" in out


def test_bad_budget_value_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code, _, err = _run(
        ["compile", "1/x", "--max-degree", "0", "--onnx", str(tmp_path / "b")], capsys
    )
    assert code == 2 and "max_degree" in err


@pytest.mark.parametrize(
    ("expr", "hint"),
    [
        ("λ*x/(1 + x)", "'λ' -> 'lam'"),
        ("1/(ω₀ - x)", "'ω' -> 'omega', '₀' -> '0'"),
        ("1/(x − 1)", "'−' -> '-'"),
    ],
)
def test_unicode_in_expressions_gets_an_ascii_hint(
    tmp_path: Path, capsys, expr: str, hint: str
) -> None:
    code, _, err = _run(["compile", expr, "--onnx", str(tmp_path / "b")], capsys)
    assert code == 2
    assert hint in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_signing_key_file_for_compile_inspect_explain_report(tmp_path: Path, capsys) -> None:
    key, other = tmp_path / "key", tmp_path / "other"
    key.write_bytes(b"correct horse battery staple")
    other.write_bytes(b"another key")
    b = str(tmp_path / "b")
    code, out, _ = _run(
        ["compile", "1/(x - 1)", "--signing-key-file", str(key), "--onnx", b], capsys
    )
    assert code == 0 and (tmp_path / "b" / "metadata.sig").exists()
    code, out, _ = _run(["inspect", b, "--signing-key-file", str(key)], capsys)
    assert code == 0 and "metadata.sig matches the key" in out
    for args in (["inspect", b], ["explain", b, "--input", "1"], ["report", "bundle", b]):
        code, _, err = _run([*args, "--signing-key-file", str(other)], capsys)
        assert code == 1 and "metadata.sig does not match" in err, args
    code, out, _ = _run(["report", "bundle", b, "--signing-key-file", str(key)], capsys)
    assert code == 0 and "reference smoke test: passed" in out
    code, out, _ = _run(["explain", b, "--input", "1", "--signing-key-file", str(key)], capsys)
    assert code == 0 and "strict value = bottom" in out


def test_unsigned_bundle_with_a_key_and_bad_key_files(tmp_path: Path, capsys) -> None:
    b = str(tmp_path / "b")
    assert _run(["compile", "1/(x - 1)", "--onnx", b], capsys)[0] == 0
    key = tmp_path / "key"
    key.write_bytes(b"k")
    code, _, err = _run(["inspect", b, "--signing-key-file", str(key)], capsys)
    assert code == 1 and "unsigned" in err
    (tmp_path / "empty").write_bytes(b"")
    code, _, err = _run(["inspect", b, "--signing-key-file", str(tmp_path / "empty")], capsys)
    assert code == 2 and "is empty" in err
    code, _, err = _run(["inspect", b, "--signing-key-file", str(tmp_path / "missing")], capsys)
    assert code == 1 and "cannot read --signing-key-file" in err


def test_const_replaces_a_named_constant_exactly(tmp_path: Path, capsys) -> None:
    import json

    b = tmp_path / "b"
    code, out, err = _run(
        ["compile", "1/(x - pi)", "--const", "pi=3.14159", "--dtype", "float64", "--onnx", str(b)],
        capsys,
    )
    assert code == 0 and "variables x\n" in out and "Q = 100000*x - 314159" in out
    assert "warning" not in err
    meta = json.loads((b / "metadata.json").read_text())
    assert meta["input"]["variables"] == ["x"]
    code, out, _ = _run(["explain", str(b), "--input", "3.14159"], capsys)
    assert code == 0 and "exact: Q = 0; strict value = bottom" in out


def test_const_errors_and_the_input_named_pi_note(tmp_path: Path, capsys) -> None:
    code, _, err = _run(
        [
            "compile",
            "1/(x - pi)",
            "--const",
            "pi=3",
            "--const",
            "pi=4",
            "--onnx",
            str(tmp_path / "a"),
        ],
        capsys,
    )
    assert code == 2 and "--const pi is given twice" in err
    code, _, err = _run(
        ["compile", "1/(x - pi)", "--const", "pi=abc", "--onnx", str(tmp_path / "a")], capsys
    )
    assert code == 2 and "is not a decimal number" in err
    code, _, err = _run(["compile", "1/(x - pi)", "--onnx", str(tmp_path / "b")], capsys)
    assert code == 0 and err.strip().startswith("zpml: warning:") and "--const pi=" in err
