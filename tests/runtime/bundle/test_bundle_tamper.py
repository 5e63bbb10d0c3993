"""Issue 13 item 2: a graph that does not compute the metadata expression is refused.

Every tamper below recomputes the unkeyed hashes, as an attacker (or a buggy
tool) can, so only the semantic recomputation can notice it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_tamper_helpers import edit_model, rehash, scan_body
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

import zpml_symbolic as zs
from zpml_runtime.bundle import (
    BundleValidationError,
    export_bundle,
    load_onnx_runtime_bundle,
    validate_bundle,
)
from zpml_runtime.bundle.exact import read_metadata_fru
from zpml_runtime.bundle.semantic import check_semantics
from zpml_runtime.bundle.validate import make_session, open_validated
from zpml_runtime.cli import main as cli_main
from zpml_runtime.inference import InferenceConfig

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
SEMANTIC = "does not compute the expression"


def _export(path: Path, expr: str = EXPR, variables=None, **kw) -> Path:  # noqa: ANN001
    fru = zs.flatten(zs.parse(expr), variables=variables)
    ev = zs.strict_evaluator(fru, config=InferenceConfig(tau_infer=0.0))
    x = torch.tensor([[2.0, 1.0], [0.5, -0.5]])
    export_bundle(ev, path, (x,), **kw)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("src") / "b")


@pytest.fixture()
def bundle(source: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(source, out)
    return out


def _refused_everywhere(bundle: Path, capsys: pytest.CaptureFixture[str], match: str) -> None:
    with pytest.raises(BundleValidationError, match=match):
        validate_bundle(bundle)
    with pytest.raises(BundleValidationError, match=match):
        load_onnx_runtime_bundle(bundle)
    capsys.readouterr()
    assert cli_main(["inspect", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zpml: error:") and match in err and "Traceback" not in err
    assert cli_main(["report", "bundle", str(bundle)]) == 1
    assert not (bundle / "VALIDATION_REPORT.md").exists()


def _disable_zero_tests(model) -> None:  # noqa: ANN001
    """Re-point the bottom tests (|Q| < t, |Q| == 0, per factor) at constants: never bottom."""
    body = scan_body(model)
    changed = 0
    for node in list(body.node):
        changed += node.op_type in ("Less", "Equal") and node.input[1] in ("c_0", "zpml_t_infer")
        if node.op_type == "Less" and node.input[1].startswith("zpml_t_"):
            # keep the threshold "used" so only the semantic check can notice
            body.node.append(helper.make_node("Identity", [node.input[1]], [node.input[1] + "_x"]))
            node.input[1] = "c_0"  # |Q| < 0: never
        elif node.op_type == "Equal" and node.input[1] == "c_0":
            node.input[1] = "c_inf"  # |Q| == inf: never for a finite Q
    assert changed, "the graph layout changed: update this tamper"


def test_untampered_bundle_validates_with_zero_set_rows(bundle: Path) -> None:
    vb = validate_bundle(bundle, seed=1)
    assert vb.semantic is not None and vb.semantic.passed
    # x - y, x and x + 1 each have rational zeros: the validator found points on them.
    assert vb.semantic.zero_set_rows >= 3 and vb.semantic.rows >= 10


def test_less_nodes_repointed_at_a_constant(bundle: Path, capsys) -> None:  # noqa: ANN001
    edit_model(bundle, _disable_zero_tests)
    _refused_everywhere(bundle, capsys, SEMANTIC)
    with pytest.raises(
        BundleValidationError, match="bottom_mask is False, the exact semantics give True"
    ):
        validate_bundle(bundle, seed=3)


def test_swapped_bottom_and_gap_outputs(bundle: Path, capsys) -> None:  # noqa: ANN001
    def edit(model) -> None:  # noqa: ANN001
        swap = {"bottom_mask": "gap_mask", "gap_mask": "bottom_mask"}
        for node in model.graph.node:
            for i, name in enumerate(node.output):
                node.output[i] = swap.get(name, name)

    edit_model(bundle, edit)
    _refused_everywhere(bundle, capsys, SEMANTIC)


def test_graph_for_another_expression(bundle: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    other = _export(tmp_path / "other", "(x**2 + 2)/(x - y) + 1/(1 + 1/x)")
    shutil.copy(other / "model.onnx", bundle / "model.onnx")
    rehash(bundle)
    _refused_everywhere(bundle, capsys, "decoded is")


def test_reversed_variables_with_consistent_metadata(bundle: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    # A bundle whose metadata was made for columns (y, x), with the (x, y) graph in it.
    reversed_meta = _export(tmp_path / "yx", variables=["y", "x"])
    shutil.copy(bundle / "model.onnx", reversed_meta / "model.onnx")
    rehash(reversed_meta)
    _refused_everywhere(reversed_meta, capsys, SEMANTIC)


def test_reversed_variables_list_only(bundle: Path, capsys) -> None:  # noqa: ANN001
    rehash(bundle, lambda m: m["input"].__setitem__("variables", m["input"]["variables"][::-1]))
    _refused_everywhere(bundle, capsys, "variable order")


def test_harmless_smoke_inputs_do_not_hide_a_tamper(bundle: Path, capsys) -> None:  # noqa: ANN001
    edit_model(bundle, _disable_zero_tests)
    harmless = np.array([[2.0, 1.0], [3.0, 1.0]], dtype=np.float32)
    np.save(bundle / "smoke_inputs.npy", harmless)
    rehash(bundle, lambda m: m["smoke_inputs"].__setitem__("shape", [2, 2]))
    _refused_everywhere(bundle, capsys, SEMANTIC)


def test_signature_binds_the_bundle_to_a_key(tmp_path: Path) -> None:
    key = b"k" * 32
    signed = _export(tmp_path / "s", signing_key=key)
    assert validate_bundle(signed, signing_key=key).semantic.passed
    with pytest.raises(BundleValidationError, match="signed with another key"):
        validate_bundle(signed, signing_key=b"other key")
    # A consistent re-hash (which passes unkeyed validation) breaks the signature.
    rehash(signed, lambda m: m.__setitem__("bundle_id", "renamed"))
    validate_bundle(signed)
    with pytest.raises(BundleValidationError, match="does not match metadata.json"):
        load_onnx_runtime_bundle(signed, signing_key=key)
    unsigned = _export(tmp_path / "u")
    with pytest.raises(BundleValidationError, match="unsigned"):
        validate_bundle(unsigned, signing_key=key)


# A correct graph must never be refused: many expressions, dtypes, thresholds, seeds.
CASES = [
    ("(x**2 + 1)/(x - y) + 1/(1 + 1/x)", "float32", 0.0, None, ()),
    ("(x**2 + 1)/(x - y) + 1/(1 + 1/x)", "float64", 1e-3, 1e-2, ()),
    ("a*x/(x - b) + 1/y", "float32", 0.0, 0.5, ("a", "b")),
    ("1/(x**2 - 4) + y/(x*y - 3)", "float64", 0.0, None, ()),
    ("x/(x - y) - 1/(x*(x + 1/y))", "float32", 1e-6, 1e-4, ()),
    ("1/((x - 1/2)*(y + 3/4))", "float32", 0.0, None, ()),
    ("(x + y)/(1 + 1/(x - 1))", "float64", 0.0, None, ()),
]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = []
    for k, (expr, dtype, ti, tt, params) in enumerate(CASES):
        fru = zs.flatten(zs.parse(expr, parameters=list(params)), parameters=list(params))
        init = {"a": 2.0, "b": 0.5} if params else None
        ev = zs.strict_evaluator(
            fru,
            config=InferenceConfig(tau_infer=ti, tau_train=tt),
            validity_taus=1e-3 if k % 2 else 0.0,
            init=init,
            dtype=getattr(torch, dtype),
        )
        x = torch.zeros(1, len(fru.variables), dtype=getattr(torch, dtype))
        path = export_bundle(ev, tmp_path_factory.mktemp("case") / "b", (x,)).path
        vb, session = open_validated(path)
        out.append((vb.metadata, read_metadata_fru(vb.metadata), session))
    return out


@settings(max_examples=25, deadline=None)
@given(case=st.integers(0, len(CASES) - 1), seed=st.integers(0, 2**32 - 1))
def test_correct_graphs_always_pass(sessions: list, case: int, seed: int) -> None:
    meta, fru, session = sessions[case]
    names = [o.name for o in session.get_outputs()]

    def run(x: np.ndarray) -> dict:
        return dict(zip(names, session.run(None, {"x": x}), strict=True))

    report = check_semantics(meta, fru, run, seed)
    assert report.passed, report.problems
    assert report.rows > 0


def test_zero_set_rows_hit_bottoms(sessions: list) -> None:
    meta, fru, session = sessions[3]  # 1/(x**2 - 4) + y/(x*y - 3): zeros x = +-2, x*y = 3
    seen = []

    def run(x: np.ndarray) -> dict:
        seen.append(x)
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, {"x": x}), strict=True))

    report = check_semantics(meta, fru, run, 7)
    assert report.passed and report.zero_set_rows >= 2
    rows = seen[0]
    assert np.any(np.abs(rows[:, 0]) == 2.0)  # x = +-2 is on the zero set of x**2 - 4
    with np.errstate(over="ignore"):  # rows of huge magnitude are among the points too
        assert np.any(rows[:, 0] * rows[:, 1] == 3.0)


def test_graph_that_runs_but_is_wrong_on_one_factor_only(sessions: list) -> None:
    meta, fru, session = sessions[3]
    names = [o.name for o in session.get_outputs()]

    def run(x: np.ndarray) -> dict:
        out = dict(zip(names, session.run(None, {"x": x}), strict=True))
        on_pole = np.abs(x[:, 0]) == 2.0
        out["bottom_mask"] = out["bottom_mask"] & ~on_pole  # accepts x = +-2
        return out

    report = check_semantics(meta, fru, run, 11)
    assert not report.passed and "bottom_mask is False" in report.problems[0]


def test_session_creation_failure_is_typed(bundle: Path) -> None:
    with pytest.raises(BundleValidationError, match="onnxruntime cannot load"):
        make_session(b"not a model", ["CPUExecutionProvider"], str(bundle))
