"""``zpml compile``'s outputs: ``--bundle DIR`` (former name ``--onnx DIR``) writes a bundle
directory, ``--onnx-file FILE.onnx`` the bare model (the bundle's ``model.onnx``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from zpml_runtime.bundle import load_onnx_runtime_bundle, validate_bundle
from zpml_runtime.cli import main

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bundle_and_its_former_name_write_the_same_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "compile", EXPR, "--bundle", str(tmp_path / "a"))
    assert code == 0 and f"bundle written to {tmp_path / 'a'}" in out
    code, _, _ = _run(capsys, "compile", EXPR, "--onnx", str(tmp_path / "b"))
    assert code == 0
    assert validate_bundle(tmp_path / "a").verified and validate_bundle(tmp_path / "b").verified
    assert (tmp_path / "a" / "model.onnx").read_bytes() == (
        tmp_path / "b" / "model.onnx"
    ).read_bytes()
    code, text, _ = _run(capsys, "compile", "--help")
    assert code == 0 and "--bundle DIR, --onnx DIR" in text and "--onnx-file FILE.onnx" in text


def test_onnx_file_is_the_bundles_model_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    model = work / "par.onnx"
    code, out, _ = _run(capsys, "compile", EXPR, "--onnx-file", str(model))
    assert code == 0 and f"onnx file written to {model}" in out and "bundle written" not in out
    assert model.is_file()
    assert [p.name for p in work.iterdir()] == ["par.onnx"]  # no directory, no temporary left
    code, _, _ = _run(
        capsys,
        "compile",
        EXPR,
        "--bundle",
        str(tmp_path / "b"),
        "--onnx-file",
        str(tmp_path / "m.onnx"),
    )
    assert code == 0
    assert (
        model.read_bytes()
        == (tmp_path / "b" / "model.onnx").read_bytes()
        == (tmp_path / "m.onnx").read_bytes()
    )
    x = np.array([[0.0, 1.0], [1.0, 1.0], [-1.0, 3.0], [0.5, 2.0], [np.nan, 1.0]], dtype=np.float32)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True)
    )
    want = load_onnx_runtime_bundle(tmp_path / "b").run(x).as_dict()
    assert list(got) == list(want)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value)


def test_output_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "old.onnx").write_bytes(b"keep")
    (tmp_path / "dir.onnx").mkdir()
    cases = [
        ([], 2, "--bundle DIR (or its former name --onnx DIR), or --onnx-file FILE.onnx"),
        (["--bundle", ""], 2, "--bundle is an empty path"),
        (["--onnx", ""], 2, "--onnx is an empty path"),
        (
            ["--onnx-file", str(tmp_path / "m.txt")],
            2,
            "must end in .onnx (for a bundle directory use --bundle)",
        ),
        (["--onnx-file", str(tmp_path / "dir.onnx")], 2, "is a directory"),
        (["--onnx-file", str(tmp_path / "no" / "m.onnx")], 2, "does not exist"),
        (["--onnx-file", str(tmp_path / "old.onnx")], 1, "already exists; pass --overwrite"),
    ]
    for extra, want, fragment in cases:
        code, out, err = _run(capsys, "compile", "1/x", *extra)
        assert code == want and fragment in err and err.count("\n") == 1, (extra, err)
        assert out == ""
    assert (tmp_path / "old.onnx").read_bytes() == b"keep"
    code, _, _ = _run(
        capsys, "compile", "1/x", "--onnx-file", str(tmp_path / "old.onnx"), "--overwrite"
    )
    assert code == 0 and (tmp_path / "old.onnx").read_bytes().startswith(
        b"\x08"
    )  # an ONNX protobuf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx", "old.onnx"]
