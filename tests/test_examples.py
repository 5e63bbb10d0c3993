"""Every script in ``examples/`` runs as a user would run it (a subprocess, in a temp dir) and
prints what it claims; a long example runs in its fast mode (fewer epochs).

A new example needs an entry in ``CHECKS`` (the test of the directory listing fails otherwise).
Expected values are computed here independently (exact fractions), not copied from a run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, args: list[str], tmp_path: Path) -> str:
    env = dict(os.environ, TMPDIR=str(tmp_path), MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _printed_array(out: str, name: str) -> list[str]:
    """The numpy array printed after ``name:`` (possibly wrapped over several lines)."""
    m = re.search(rf"^\s*{re.escape(name)}: \[(.*?)\]", out, flags=re.M | re.S)
    assert m is not None, f"{name} not printed"
    return m.group(1).split()


def _demo_value(x: Fraction, y: Fraction) -> Fraction | None:
    """(x**2 + 1)/(x - y) + 1/(1 + 1/x) exactly, None where a division by zero occurs."""
    if x == y or x == 0 or 1 + 1 / x == 0:
        return None
    return (x**2 + 1) / (x - y) + 1 / (1 + 1 / x)


def check_demo(tmp_path: Path) -> None:
    out = _run("demo.py", [], tmp_path)
    # the exact evaluation of section 2
    assert f"defined at x=2, y=1: value {_demo_value(Fraction(2), Fraction(1))}" in out
    for point, factor in (("x=0, y=1", "x"), ("x=1, y=1", "x - y"), ("x=-1, y=3", "x + 1")):
        assert re.search(
            rf"bottom at {point}:\n  denominator factor {re.escape(factor)} is zero", out
        )
    # the strict evaluator on the demo's float32 batch, against exact values at those inputs
    rows = [
        (2.0, 1.0),
        (0.0, 1.0),
        (1.0, 1.0),
        (-1.0, 3.0),
        (3.0, 3.0002),
        (float("nan"), 1.0),
        (0.5, -2.0),
    ]
    x32 = np.array(rows, dtype=np.float32)
    tau_infer, tau_train = 1e-6, 1e-3
    bottom, gap, decoded = [], [], []
    for x, y in x32.tolist():
        if x != x:  # a NaN input is a fault: bottom
            value, q = None, Fraction(0)
        else:
            value = _demo_value(Fraction(x), Fraction(y))
            q = (Fraction(x) + 1) * (Fraction(x) - Fraction(y))  # the reduced denominator Q
        bottom.append(value is None or abs(q) < tau_infer)
        gap.append(not bottom[-1] and abs(q) < tau_train)
        decoded.append(None if bottom[-1] else value)
    assert _printed_array(out, "bottom_mask") == [str(b) for b in bottom]
    assert _printed_array(out, "gap_mask") == [str(g) for g in gap]
    printed = [float(v) for v in _printed_array(out, "decoded")]
    for got, want in zip(printed, decoded, strict=True):
        if want is None:
            assert got != got
        else:
            assert abs(Fraction(got) - want) <= abs(want) * Fraction(1, 10**5)
    assert "onnxruntime agrees with torch on every output: True" in out
    # section 4: the bundle is written where TMPDIR points, validated and reloaded
    written = re.search(r"^bundle written to (\S+):", out, flags=re.M)
    assert written is not None, out
    bundle = Path(written.group(1))
    assert bundle.is_relative_to(tmp_path)
    assert {"model.onnx", "metadata.json"} <= {p.name for p in bundle.iterdir()}
    assert "validate_bundle: OK" in out
    reloaded = f"reloaded in onnxruntime: bottom_mask=[{' '.join(map(str, bottom))}], gap_mask=[{' '.join(map(str, gap))}]"
    assert reloaded in " ".join(out.split())
    assert re.search(r"smoke test vs the torch reference on 7 stored inputs: passed=True", out)
    assert (bundle / "VALIDATION_REPORT.md").exists()


def check_train_pole_fit(tmp_path: Path) -> None:
    svg = tmp_path / "loss.svg"
    # fast mode: 80 epochs instead of 200 (the layer's pole is within 1e-3 well before that)
    out = _run("train_pole_fit.py", ["--epochs", "80", "--out", str(svg)], tmp_path)
    m = re.search(
        r"\(([-\d.]+) \+ ([-\d.]+) x\) / \(([-\d.]+) \+ ([-\d.]+) x\), pole at ([-\d.]+)", out
    )
    assert m is not None, out
    a0, a1, b0, b1, pole = map(float, m.groups())
    # the target is 1/(x + 0.1): the fitted (a0 + a1 x)/(b0 + b1 x) must be that function
    assert abs(pole + 0.1) < 1e-3
    assert abs(-b0 / b1 - pole) < 1e-5
    assert abs(a1) < 1e-2 * abs(a0)
    assert abs(a0 / b1 - 1.0) < 1e-2
    final = re.search(r"MLP \+ angular head: final loss ([-\d.e+]+)", out)
    assert final is not None, out
    loss = float(final.group(1))
    assert 0.0 <= loss < 1e-3
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert f"wrote {svg}" in out


CHECKS: dict[str, Callable[[Path], None]] = {
    "demo.py": check_demo,
    "train_pole_fit.py": check_train_pole_fit,
}


def test_every_example_has_a_check() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CHECKS)


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_example_runs_and_prints_its_results(script: str, tmp_path: Path) -> None:
    CHECKS[script](tmp_path)
