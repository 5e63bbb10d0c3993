"""The ``zpml`` command loads torch, sympy and onnx only where a subcommand needs them:
``--help``, every subcommand's ``--help`` and early usage errors stay light."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "sympy", "onnx", "onnxruntime", "flint", "zpml_symbolic")
PROBE = (
    "import sys, contextlib, io\n"
    "from zpml_runtime.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
    "    code = main(sys.argv[1:])\n"
    "print(code, sorted(m for m in {heavy!r} if m in sys.modules))\n"
)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["compile", "--help"], 0),
        (["run", "--help"], 0),
        (["explain", "--help"], 0),
        (["run", "B", "--inputs", "x.txt", "--out", "p.npz"], 2),  # wrong suffix: refused at once
        (["run", "B", "--inputs", "x.npy", "--out", "p.json"], 2),
        (["compile", "1/x", "--tau-infer=-1e-3", "--bundle", "b"], 2),  # threshold converter
    ],
)
def test_light_paths_do_not_import_heavy_modules(argv: list[str], code: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout.strip() == f"{code} []", proc.stdout + proc.stderr


def test_python_m_zpml_runtime_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "zpml_runtime.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    for command in ("compile", "inspect", "explain", "run", "report", "calibrate"):
        assert f"\n    {command}" in proc.stdout, command
