"""``--box`` in the CLI: ``zpml compile --box``, ``zpml inspect --box``, ``zpml explain EXPR-or-DIR
--box`` print the certified domain report; a bad box exits 2 naming the field.

Printed witnesses are checked independently: an exact zero is substituted into the factor
with sympy, a sign change is re-evaluated at both points with exact rationals.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp

import zpml_symbolic as zs
from zpml_runtime.bundle import validate_bundle
from zpml_runtime.cli import main

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _point(text: str) -> dict[sp.Symbol, sp.Rational]:
    return {
        sp.Symbol(k): sp.Rational(Fraction(v)) for k, v in re.findall(r"(\w+)=(-?[\d/]+)", text)
    }


def _check_witnesses(out: str) -> int:
    """Re-check every VANISHES line's witness exactly; the number of lines checked."""
    checked = 0
    for factor, witness in re.findall(
        r"\] (.+?) \((?:denominator|validity)[^)]*\): VANISHES, (.+)", out
    ):
        f = sp.sympify(factor)
        if witness.startswith("exact zero at "):
            assert f.subs(_point(witness)) == 0, (factor, witness)
        else:
            m = re.match(
                r"sign change between (.+?) \(value < 0\) and (.+?) \(value > 0\)", witness
            )
            assert m, witness
            assert f.subs(_point(m[1])) < 0 < f.subs(_point(m[2])), (factor, witness)
        checked += 1
    return checked


@pytest.mark.parametrize(
    ("expr", "box", "defined"),
    [
        ("1/(x*y - 2)", "x=0:2,y=0:2", False),
        ("1/(x*y - 5)", "x=0:2,y=0:2", True),
        ("1/(x**2 - 2)", "x=0:2", False),  # an irrational zero
        ("1/(x**2 + y**2 + 10**-12)", "x=-1:1,y=-1:1", True),
        ("1/(1 + 1/(x*z))", "x=1:2,z=-2:-1", False),  # x*z = -1 reachable
        ("1/(1 + 1/(x*z))", "x=1:2,z=1:2", True),
    ],
)
def test_explain_expression_on_a_box(
    capsys: pytest.CaptureFixture[str], expr: str, box: str, defined: bool
) -> None:
    code, out, err = _run(capsys, "explain", expr, "--box", box)
    assert code == 0 and err == ""
    report = zs.domain_report(expr, box)
    assert report.defined_everywhere is defined
    assert f"  {report.summary()}\n" in out
    for f in report.factors:
        assert f"[{f.index}] {f.factor} (" in out and f.verdict.upper() in out.upper()
    if defined:
        assert out.splitlines()[1].startswith("  defined on the whole box")
    elif "isolating" not in out:
        assert _check_witnesses(out) >= 1


def test_compile_with_box_records_it_and_inspect_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = tmp_path / "b"
    code, out, _ = _run(capsys, "compile", EXPR, "--box", "x=1:2,y=3:4", "--bundle", str(b))
    assert code == 0 and "operating box x=1:2,y=3:4:" in out
    vb = validate_bundle(b)
    assert vb.metadata["input_box"] == {"x": "1:2", "y": "3:4"}
    assert vb.domain is not None and vb.domain.defined_everywhere
    assert f"  {vb.domain.summary()}" in out
    code, out, _ = _run(capsys, "inspect", str(b))
    assert code == 0 and "declared operating box x=1:2,y=3:4:" in out and vb.domain.summary() in out
    code, out, _ = _run(capsys, "inspect", str(b), "--box", "x=0:1,y=-2:2")
    assert code == 0 and "\nbox x=0:1,y=-2:2:\n" in out
    requested = out.split("\nbox x=0:1,y=-2:2:\n", 1)[1]
    assert "undefined somewhere on the box: 2 factor(s) vanish" in requested
    assert _check_witnesses(requested) == 2


def test_explain_bundle_with_box_and_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = tmp_path / "b"
    assert _run(capsys, "compile", EXPR, "--bundle", str(b))[0] == 0
    code, out, _ = _run(capsys, "explain", str(b), "--box", "x=0:1,y=-2:2", "--input", "0,1")
    assert code == 0 and out.startswith("box x=0:1,y=-2:2:\n") and "input 0: x=0, y=1" in out
    assert zs.domain_report(EXPR, "x=0:1,y=-2:2").summary() in out
    code, out, _ = _run(capsys, "explain", str(b), "--box", "x=2:3,y=-2:1")
    assert code == 0 and "defined on the whole box" in out and "input 0" not in out


def test_bad_boxes_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from torch import nn

    from zpml_runtime.bundle import export_bundle
    from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

    class Head(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x[:, 0] + 1, x[:, 0] - x[:, 1]

    b, t = tmp_path / "b", tmp_path / "t"
    assert _run(capsys, "compile", "1/(x - y)", "--bundle", str(b))[0] == 0
    x = torch.tensor([[2.0, 1.0], [1.0, 1.0]])
    export_bundle(SCMInferenceWrapper(Head(), config=InferenceConfig(tau_infer=0.0)), t, (x,))
    cases = [
        (
            ["explain", "1/(x*y - 5)", "--box", "x=0:2"],
            "--box (y): box gives no range for input variable(s) ['y']",
        ),
        (
            ["explain", "1/(x*y - 5)", "--box", "x=0:2,y=a:2"],
            "--box (y): box bound for 'y' is not a number",
        ),
        (["explain", "1/x", "--box", "x=1:0"], "--box (x): box interval for 'x' is empty"),
        (["explain", "1/(x - sin(y))", "--box", "x=0:1,y=0:1"], "is not a bundle directory either"),
        (["explain", str(b)], "give --input V1,V2,... (inputs of a bundle to explain) or --box"),
        (["inspect", str(b), "--box", "x=0:1"], "--box (y): input_box gives no range"),
        (["inspect", str(b), "--box", "x=0:1,y=0:1,w=2"], "--box (w): input_box names 'w'"),
        (["inspect", str(t), "--box", "x=0:1,y=0:1"], "traced model (no exact expression)"),
        (
            ["compile", "1/(x - y)", "--box", "x=0:1,z=1", "--bundle", str(tmp_path / "c")],
            "--box (z)",
        ),
        (
            ["compile", "1/(x - y)", "--box", "x=0:1,,", "--bundle", str(tmp_path / "c")],
            "--box (box)",
        ),
    ]
    for argv, fragment in cases:
        code, out, err = _run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and fragment in err, (argv, err)
        assert out == "" or out.startswith("UNVERIFIED"), (argv, out)
    assert not (tmp_path / "c").exists()
