"""``zpml run BUNDLE --inputs X --out PREDS``: strict batch inference from the command line.

The reference for every output is the Python API on the same bundle
(``load_onnx_runtime_bundle(...).run(x)``); ``--explain``'s factor is checked
by evaluating the named factor exactly with sympy at the row the runtime saw.
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

import zpml_symbolic as zs
from zpml_runtime.bundle import export_bundle, load_onnx_runtime_bundle
from zpml_runtime.cli import main
from zpml_runtime.inference import InferenceConfig

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "b"
    assert main(["compile", EXPR, "--tau-infer", "1e-3", "--onnx", str(out)]) == 0
    return out


def _inputs() -> np.ndarray:
    """Zero sets of every factor, a threshold band, non-finite values, ordinary rows;
    23 rows (an odd count: chunk sizes 1, 3, 7 leave a remainder)."""
    rows = [
        [0.0, 1.0],  # x = 0: the validity factor x
        [1.0, 1.0],  # x = y: Q's factor x - y
        [-1.0, 3.0],  # x = -1: Q's factor x + 1
        [1.0, 1.0 + 2.0**-12],  # |x - y| < tau_infer, no exact zero
        [np.nan, 1.0],
        [np.inf, 1.0],
        [1e30, -1e30],
        [-0.0, 2.0],
        [2.0**-149, 0.0],  # the smallest float32 subnormal: x != 0
    ]
    rows += np.random.default_rng(7).uniform(-3, 3, size=(14, 2)).tolist()
    return np.array(rows, dtype=np.float64)


def _reference(bundle: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    return dict(load_onnx_runtime_bundle(bundle).run(x).as_dict())


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    )


@pytest.mark.parametrize("chunk", ["1", "3", "7", "65536"])
def test_npy_to_npz_matches_the_api_in_any_chunking(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], chunk: str
) -> None:
    x = _inputs()
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "p.npz"
    code, stdout, err = _run(
        capsys,
        "run",
        str(bundle),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--out",
        str(out),
        "--chunk-rows",
        chunk,
    )
    assert code == 0 and err == "", err
    want = _reference(bundle, x)
    with np.load(out, allow_pickle=False) as got:
        assert list(got.keys()) == list(want)
        for name, value in want.items():
            assert _same(got[name], value), name
    bottom_rows = int(want["bottom_mask"].sum())
    assert "ran 23 row(s)" in stdout and f"{bottom_rows} with bottom" in stdout


def test_csv_header_in_any_order_and_csv_output_reads_back_exactly(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = _inputs()
    with open(tmp_path / "x.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["y", "x"])  # the bundle's order is x, y
        w.writerows([[repr(float(r[1])), repr(float(r[0]))] for r in x])
    code, _, _ = _run(
        capsys,
        "run",
        str(bundle),
        "--inputs",
        str(tmp_path / "x.csv"),
        "--out",
        str(tmp_path / "p.csv"),
    )
    assert code == 0
    want = _reference(bundle, x)
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header == list(want) and len(body) == 23
    for j, name in enumerate(header):
        column = [r[j] for r in body]
        value = want[name]
        if value.dtype == np.bool_:
            assert column == ["1" if v else "0" for v in value]
        else:
            got = np.array([float(c) for c in column]).astype(value.dtype)
            assert _same(got, value), name


def test_explain_names_the_factor_that_is_exactly_zero(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = _inputs()
    np.save(tmp_path / "x.npy", x)
    code, _, _ = _run(
        capsys,
        "run",
        str(bundle),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "p.npz"),
        "--explain",
        "--chunk-rows",
        "4",
    )
    assert code == 0
    runtime = load_onnx_runtime_bundle(bundle)
    provenance = runtime.metadata["fru"]["provenance"]
    want = runtime.run(x)
    seen = x.astype(np.float32)  # what the float32 bundle evaluated
    xs, ys = sp.symbols("x y")
    with np.load(tmp_path / "p.npz", allow_pickle=False) as got:
        factor, reason = got["bottom_factor"], got["bottom_reason"]
    assert factor.dtype == np.int64 and reason.dtype.kind == "U"
    named = {provenance[int(i)]["factor"] for i in factor if i >= 0}
    assert named == {"x", "x - y", "x + 1"}  # each zero set above, by its own factor
    for k in range(len(x)):
        if not want.bottom_mask[k]:
            assert factor[k] == -1 and reason[k] == ""
            continue
        if factor[k] >= 0:  # independently: the named factor is exactly 0 at the row
            f = sp.sympify(provenance[int(factor[k])]["factor"])
            point = {
                xs: sp.Rational(Fraction(float(seen[k, 0]))),
                ys: sp.Rational(Fraction(float(seen[k, 1]))),
            }
            assert f.subs(point) == 0, (k, f)
            assert reason[k].startswith(f"factor #{factor[k]} ")
        elif want.fault_mask[k]:
            assert reason[k].startswith("fault")
        else:
            assert reason[k].startswith("|Q| < tau_infer")
    assert reason[3].startswith("|Q| < tau_infer")  # the threshold band row: no exact zero
    assert reason[4].startswith("fault") and reason[5].startswith("fault")


def test_multi_output_bundle_columns_and_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exprs = ["d/(a*d - b*c)", "-b/(a*d - b*c)", "1/a"]
    ev = zs.strict_evaluator(
        [zs.parse(e) for e in exprs], config=InferenceConfig(tau_infer=0.0), dtype=torch.float64
    )
    x = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 4.0], [0.0, 1.0, 1.0, 1.0]])
    b = export_bundle(ev, tmp_path / "m", (torch.from_numpy(x),), output_names=["p", "q", "r"]).path
    np.save(tmp_path / "x.npy", x)
    code, _, _ = _run(
        capsys,
        "run",
        str(b),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "p.csv"),
        "--explain",
    )
    assert code == 0
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    want = load_onnx_runtime_bundle(b).run(x)
    assert [r["decoded[p]"] for r in rows] == [repr(float(v)) for v in want.decoded[:, 0]]
    assert [r["bottom_mask[r]"] for r in rows] == ["0", "0", "1"]
    assert (
        rows[1]["bottom_reason[p]"].startswith("factor #")
        and "a*d - b*c" in rows[1]["bottom_reason[p]"]
    )
    assert rows[2]["bottom_reason[r]"].startswith("factor #") and rows[2]["bottom_reason[p]"] == ""


def test_progress_bar_on_request_only(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", _inputs())
    argv = [
        "run",
        str(bundle),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "p.npz"),
    ]
    code, _, err = _run(capsys, *argv, "--chunk-rows", "5", "--progress")
    assert code == 0 and "row" in err and "23" in err
    code, _, err = _run(capsys, *argv, "--chunk-rows", "5", "--no-progress", "--overwrite")
    assert code == 0 and err == ""


def test_verification_flags_as_for_inspect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch import nn

    from zpml_runtime.inference import SCMInferenceWrapper

    class Head(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x[:, 0] + 1, x[:, 0] - x[:, 1]

    t = torch.tensor([[2.0, 1.0], [1.0, 1.0]])
    traced = export_bundle(
        SCMInferenceWrapper(Head(), config=InferenceConfig(tau_infer=0.0)), tmp_path / "t", (t,)
    ).path
    np.save(tmp_path / "x.npy", t.numpy())
    argv = [
        "run",
        str(traced),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "p.npz"),
    ]
    code, out, _ = _run(capsys, *argv)
    assert code == 0 and out.startswith("UNVERIFIED: traced model")
    code, _, err = _run(capsys, *argv, "--require-verified", "--overwrite")
    assert code == 1 and "refused by require_verified" in err


class _Marker:
    """Unpickling this would create a file (it must never happen)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _bad_files(tmp: Path) -> list[tuple[str, str, str]]:
    """(file, --out, message fragment) for inputs that must exit 2 with one line."""
    np.save(tmp / "wide.npy", np.zeros((3, 3)))
    np.save(tmp / "flat.npy", np.zeros(3))
    np.save(tmp / "none.npy", np.zeros((0, 2)))
    np.save(tmp / "text.npy", np.array([["a", "b"]]))
    obj = np.empty(1, dtype=object)
    obj[0] = _Marker(tmp / "unpickled")
    with open(tmp / "obj.npy", "wb") as fh:
        np.save(fh, obj, allow_pickle=True)
    np.savez(tmp / "arch.npz", x=np.zeros((2, 2)))
    (tmp / "x.txt").write_text("1,2\n")
    (tmp / "cols.csv").write_text("1,2,3\n4,5,6\n")
    (tmp / "cell.csv").write_text("x,y\n1,2\n3,abc\n")
    (tmp / "ragged.csv").write_text("1,2\n3\n")
    (tmp / "header.csv").write_text("x,z\n1,2\n")
    (tmp / "empty.csv").write_text("")
    (tmp / "latin.csv").write_bytes(b"x,y\n1,\xe9\n")
    p = str(tmp / "p.npz")
    return [
        ("missing.npy", p, "No such file"),
        ("x.txt", p, "expected a .npy or .csv file"),
        ("arch.npz", p, "expected a .npy or .csv file"),
        ("wide.npy", p, "has 3 column(s); the bundle takes 2 (x, y)"),
        ("flat.npy", p, "must be a 2-D array"),
        ("none.npy", p, "has no rows"),
        ("text.npy", p, "must hold real numbers"),
        ("obj.npy", p, "holds Python objects (dtype object), which are never loaded"),
        ("cols.csv", p, "has 3 column(s); the bundle takes 2"),
        ("cell.csv", p, "row 3, column 2 (y): 'abc' is not a number"),
        ("ragged.csv", p, "row 2 has 1 field(s); expected 2"),
        ("header.csv", p, "missing ['y'], unknown ['z']"),
        ("empty.csv", p, "is empty"),
        ("latin.csv", p, "is not UTF-8 text"),
        ("cols.csv", str(tmp / "p.json"), "expected a .npz or .csv file name"),
        ("cols.csv", str(tmp / "nodir" / "p.csv"), "does not exist"),
    ]


def test_bad_files_are_one_line_exit_2(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, out, fragment in _bad_files(tmp_path):
        code, stdout, err = _run(
            capsys, "run", str(bundle), "--inputs", str(tmp_path / name), "--out", out
        )
        assert code == 2, (name, code, err)
        assert (
            err.startswith("zpml: error: ") and err.count("\n") == 1 and "Traceback" not in err
        ), err
        assert fragment in err, (name, err)
        assert stdout == "" and not (tmp_path / "p.npz").exists()
    assert not (tmp_path / "unpickled").exists()
    loaded = np.load(tmp_path / "obj.npy", allow_pickle=True)  # the file really is a working pickle
    loaded[0].close()
    assert (tmp_path / "unpickled").exists()


def test_existing_output_needs_overwrite(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", _inputs()[:2])
    (tmp_path / "p.csv").write_text("keep me\n")
    argv = [
        "run",
        str(bundle),
        "--inputs",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "p.csv"),
    ]
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "pass --overwrite" in err
    assert (tmp_path / "p.csv").read_text() == "keep me\n"
    code, _, _ = _run(capsys, *argv, "--overwrite")
    assert code == 0 and (tmp_path / "p.csv").read_text().startswith("decoded,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "x.npy"]  # no temporary left
