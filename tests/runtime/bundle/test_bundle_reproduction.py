"""Bundles are verified by reproduction, not sampling.

The six fail-open tampers of the adversarial review, each built from an honest
export exactly as described (unkeyed hashes recomputed), in float32 and
float64, must be refused by ``validate_bundle`` (whatever the seed),
``load_onnx_runtime_bundle``, ``zpml inspect`` and ``zpml report bundle``; each
tamper is first shown to be real (the tampered graph returns a finite value
where the strict semantics give bottom). Edits 1-4 on an honest traced bundle
are refused too. Exports are byte-identical, and a one-bit change of any
initializer or attribute is refused naming the node or initializer.
"""

from __future__ import annotations

import math
import shutil
import struct
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bundle_tamper_helpers import (
    downgrade_fru,
    edit_model,
    ignore_tau_band,
    override_masks,
    rehash,
    relabel_traced,
)
from torch import nn

import zpml_symbolic as zs
from zpml_runtime.bundle import (
    BundleValidationError,
    export_bundle,
    load_onnx_runtime_bundle,
    validate_bundle,
)
from zpml_runtime.bundle.reproduce import compiled_problems, compiled_views
from zpml_runtime.cli import main as cli_main
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
CONFIG = InferenceConfig(tau_infer=1e-6)
DTYPES = ["float32", "float64"]
# where each tamper lies: (rows, what the honest graph says there)
ATTACKS = {
    "tau_band": np.array([[1 + 2.0**-22, 1.0]]),  # |Q| = 4.8e-7 < tau_infer = 1e-6
    "off_grid": np.array([[0.1, 0.1]]),  # Q = 0
    "magnitude": np.array([[10.0, 10.0]]),  # Q = 0, |x| in (3.5, 1e30)
    "batch_of_1": np.array([[10.0, 10.0]]),  # Q = 0, a batch of one row
    "batch_below_8": np.array([[10.0, 10.0], [0.0, 1.0], [2.0, 2.0]]),
}


class ExprModel(nn.Module):
    """The review's expression written by hand in torch: P, Q and the validity factor x."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, b = x[:, 0], x[:, 1]
        P = (a * a + 1) * (a + 1) + a * (a - b)
        Q = (a - b) * (a + 1)
        return P, Q, a.unsqueeze(-1)


def _compiled(path: Path, dtype: str) -> Path:
    ev = zs.strict_evaluator(EXPR, config=CONFIG, dtype=getattr(torch, dtype))
    x = torch.tensor([[2.0, 1.0], [0.5, -0.5], [1.0, 1.0]], dtype=getattr(torch, dtype))
    export_bundle(ev, path, (x,), bundle_id="b")
    return path


def _traced(path: Path, dtype: str) -> Path:
    wrapped = SCMInferenceWrapper(ExprModel(), config=CONFIG).eval()
    x = torch.tensor([[2.0, 1.0], [0.5, -0.5], [1.0, 1.0]], dtype=getattr(torch, dtype))
    export_bundle(wrapped, path, (x,), bundle_id="b")
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("sources")
    out = {}
    for dtype in DTYPES:
        out["compiled", dtype] = _compiled(root / f"c_{dtype}", dtype)
        out["traced", dtype] = _traced(root / f"t_{dtype}", dtype)
    return out


def _copy(sources: dict, kind: str, dtype: str, tmp_path: Path) -> Path:
    out = tmp_path / f"{kind}_{dtype}"
    shutil.copytree(sources[kind, dtype], out)
    return out


def _run(model_bytes: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"x": x}), strict=True))


def _tamper(bundle: Path, kind: str) -> None:
    if kind == "tau_band":
        edit_model(bundle, ignore_tau_band)
    else:
        edit_model(bundle, lambda m: override_masks(m, kind))


def _refused_everywhere(bundle: Path, capsys: pytest.CaptureFixture[str], match: str) -> None:
    for seed in (0, 1, 2, None):
        with pytest.raises(BundleValidationError, match=match):
            validate_bundle(bundle, seed=seed)
    with pytest.raises(BundleValidationError, match=match):
        load_onnx_runtime_bundle(bundle)
    capsys.readouterr()
    assert cli_main(["inspect", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zpml: error:") and "Traceback" not in err
    assert cli_main(["report", "bundle", str(bundle)]) == 1
    assert not (bundle / "VALIDATION_REPORT.md").exists()


# ----------------------------------------------------------------- the six tampers


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(ATTACKS))
def test_graph_tampers_1_to_4_are_real_and_refused(
    sources: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, dtype: str
) -> None:
    bundle = _copy(sources, "compiled", dtype, tmp_path)
    honest = (bundle / "model.onnx").read_bytes()
    _tamper(bundle, kind)
    x = ATTACKS[kind].astype(dtype)
    want, got = _run(honest, x), _run((bundle / "model.onnx").read_bytes(), x)
    assert want["bottom_mask"][0] and math.isnan(want["decoded"][0])
    assert not got["bottom_mask"][0] and math.isfinite(got["decoded"][0])  # the lie is real
    _refused_everywhere(bundle, capsys, "is not the graph zpml .* compiles from the recorded")


@pytest.mark.parametrize("dtype", DTYPES)
def test_downgrade_fru_null_is_refused_not_skipped(
    sources: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], dtype: str
) -> None:
    bundle = _copy(sources, "compiled", dtype, tmp_path)
    rehash(bundle, downgrade_fru)
    _refused_everywhere(bundle, capsys, "no usable exact expression")
    # the explicit override accepts it, and says UNVERIFIED
    vb = validate_bundle(bundle, allow_unverified=True)
    assert not vb.verified and "no usable exact expression" in vb.unverified_reason
    with pytest.warns(UserWarning, match="is UNVERIFIED"):
        load_onnx_runtime_bundle(bundle, allow_unverified=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("graph_edit", ["none", "off_grid", "magnitude"])
def test_relabel_as_traced_is_refused(
    sources: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dtype: str,
    graph_edit: str,
) -> None:
    bundle = _copy(sources, "compiled", dtype, tmp_path)
    if graph_edit != "none":
        _tamper(bundle, graph_edit)
    rehash(bundle, relabel_traced)
    # a compiled graph is no traced model followed by the strict decoder; the appended
    # nodes after the decode are what gets caught
    _refused_everywhere(bundle, capsys, "does not end with the strict decoder")
    with pytest.raises(BundleValidationError, match="does not end with the strict decoder"):
        validate_bundle(bundle, allow_unverified=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(ATTACKS))
def test_edits_1_to_4_on_a_traced_bundle_are_refused(
    sources: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, dtype: str
) -> None:
    bundle = _copy(sources, "traced", dtype, tmp_path)
    honest = (bundle / "model.onnx").read_bytes()
    _tamper(bundle, kind)
    x = ATTACKS[kind].astype(dtype)
    want, got = _run(honest, x), _run((bundle / "model.onnx").read_bytes(), x)
    assert want["bottom_mask"][0] and not got["bottom_mask"][0]
    _refused_everywhere(bundle, capsys, "does not end with the strict decoder")


@pytest.mark.parametrize("dtype", DTYPES)
def test_honest_bundles_validate(sources: dict, dtype: str) -> None:
    vb = validate_bundle(sources["compiled", dtype])
    assert vb.verified and vb.unverified_reason is None
    assert vb.semantic is not None and vb.semantic.passed and vb.semantic.differential_rows > 0
    assert sorted(set(vb.semantic.batch_sizes))[:3] == [1, 2, 7]
    assert max(vb.semantic.batch_sizes) > 65536  # across the first row-tile boundary
    traced = validate_bundle(sources["traced", dtype])
    assert not traced.verified and "traced model" in traced.unverified_reason
    with pytest.warns(UserWarning, match="is UNVERIFIED: traced model"):
        load_onnx_runtime_bundle(sources["traced", dtype])
    with pytest.raises(BundleValidationError, match="refused by require_verified"):
        validate_bundle(sources["traced", dtype], require_verified=True)
    assert validate_bundle(sources["compiled", dtype], require_verified=True).verified


# ----------------------------------------------------------------- determinism, one-bit changes


def test_two_exports_are_byte_identical(tmp_path: Path) -> None:
    for dtype in DTYPES:
        a, b = _compiled(tmp_path / f"a{dtype}", dtype), _compiled(tmp_path / f"b{dtype}", dtype)
        for name in ("model.onnx", "metadata.json", "smoke_inputs.npy", "metadata.sha256"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        ta, tb = _traced(tmp_path / f"ta{dtype}", dtype), _traced(tmp_path / f"tb{dtype}", dtype)
        assert (ta / "model.onnx").read_bytes() == (tb / "model.onnx").read_bytes()
    multi = ["a/(a*d - b*c)", "-b/(a*d - b*c)"]
    paths = []
    for name in ("m1", "m2"):
        ev = zs.strict_evaluator([zs.parse(e) for e in multi], config=CONFIG)
        paths.append(export_bundle(ev, tmp_path / name, (torch.ones(2, 4),), bundle_id="m").path)
    assert (paths[0] / "model.onnx").read_bytes() == (paths[1] / "model.onnx").read_bytes()
    assert (paths[0] / "metadata.json").read_bytes() == (paths[1] / "metadata.json").read_bytes()


def _flip_tensor_bit(t: onnx.TensorProto) -> None:
    if t.raw_data:
        raw = bytearray(t.raw_data)
        raw[0] ^= 1
        t.raw_data = bytes(raw)
    elif t.float_data:
        t.float_data[0] = struct.unpack(
            "<f", struct.pack("<I", struct.unpack("<I", struct.pack("<f", t.float_data[0]))[0] ^ 1)
        )[0]
    elif t.double_data:
        t.double_data[0] = struct.unpack(
            "<d", struct.pack("<Q", struct.unpack("<Q", struct.pack("<d", t.double_data[0]))[0] ^ 1)
        )[0]
    elif t.int64_data:
        t.int64_data[0] ^= 1
    elif t.int32_data:
        t.int32_data[0] ^= 1
    else:
        raise AssertionError(f"initializer {t.name} has no data to flip")


def _flip_attribute_bit(a: onnx.AttributeProto) -> bool:
    if a.type == onnx.AttributeProto.INT:
        a.i ^= 1
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = struct.unpack(
            "<f", struct.pack("<I", struct.unpack("<I", struct.pack("<f", a.f))[0] ^ 1)
        )[0]
    elif a.type == onnx.AttributeProto.INTS and len(a.ints):
        a.ints[0] ^= 1
    elif a.type == onnx.AttributeProto.STRING:
        a.s = bytes([a.s[0] ^ 1]) + a.s[1:] if a.s else b"\x01"
    elif a.type == onnx.AttributeProto.TENSOR:
        _flip_tensor_bit(a.t)
    else:
        return False  # subgraphs: their nodes are flipped one by one
    return True


def _graphs(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    out, stack = [], [model.graph]
    while stack:
        g = stack.pop()
        out.append(g)
        stack += [a.g for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_bit_change_of_any_initializer_or_attribute_is_refused_naming_it(
    sources: dict, dtype: str
) -> None:
    import json

    bundle = sources["compiled", dtype]
    meta = json.loads((bundle / "metadata.json").read_text())
    _, frus, found = compiled_views(meta)
    assert not found
    model = onnx.load(bundle / "model.onnx")
    assert compiled_problems(meta, model, frus) == []
    checked = 0
    for gi, g in enumerate(_graphs(model)):
        for ti in range(len(g.initializer)):
            bad = onnx.ModelProto()
            bad.CopyFrom(model)
            t = _graphs(bad)[gi].initializer[ti]
            _flip_tensor_bit(t)
            (problem,) = compiled_problems(meta, bad, frus)
            assert f"initializer {t.name!r}" in problem, problem
            checked += 1
        for ni, node in enumerate(g.node):
            for ai in range(len(node.attribute)):
                bad = onnx.ModelProto()
                bad.CopyFrom(model)
                bad_node = _graphs(bad)[gi].node[ni]
                if not _flip_attribute_bit(bad_node.attribute[ai]):
                    continue
                (problem,) = compiled_problems(meta, bad, frus)
                assert f"({node.op_type}, outputs {list(node.output)})" in problem, problem
                assert repr(node.attribute[ai].name) in problem, problem
                checked += 1
    assert checked >= 25  # every initializer and every attribute of the outer graph and the body


def test_one_bit_change_end_to_end(
    sources: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _copy(sources, "compiled", "float32", tmp_path)

    def flip_one(model: onnx.ModelProto) -> None:
        (t,) = [i for i in model.graph.initializer if i.name == "c_1"]
        _flip_tensor_bit(t)  # 1.0 -> 1.0000001: the checker is happy, the graph is not ours

    edit_model(bundle, flip_one)
    _refused_everywhere(bundle, capsys, "initializer 'c_1' of the main graph holds float32")


# ----------------------------------------------------------------- versions, records


def _edit_emitter(bundle: Path, **changes: object) -> None:
    def edit(meta: dict) -> None:
        if changes.get("drop"):
            meta.pop("emitter")
        else:
            meta["emitter"].update(changes)

    rehash(bundle, edit)


@pytest.mark.parametrize("kind", ["compiled", "traced"])
def test_bundle_of_another_compiler_version_is_refused_naming_both(
    sources: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    bundle = _copy(sources, kind, "float32", tmp_path)
    _edit_emitter(bundle, version="0.0.1")
    with pytest.raises(BundleValidationError) as info:
        validate_bundle(bundle)
    text = str(info.value)
    assert "zpml '0.0.1'" in text and f"installed zpml {zs.__version__}" in text
    assert "re-export the bundle" in text and "allow_unverified=True" in text
    vb = validate_bundle(bundle, allow_unverified=True)
    assert not vb.verified and "0.0.1" in vb.unverified_reason
    with pytest.raises(BundleValidationError, match="refused by require_verified"):
        validate_bundle(bundle, require_verified=True)


def test_missing_or_foreign_emitter_record_is_refused(sources: dict, tmp_path: Path) -> None:
    a = _copy(sources, "compiled", "float64", tmp_path)
    _edit_emitter(a, drop=True)
    with pytest.raises(BundleValidationError, match="no emitter record"):
        validate_bundle(a)
    assert not validate_bundle(a, allow_unverified=True).verified
    b = tmp_path / "b"
    shutil.copytree(sources["compiled", "float64"], b)
    _edit_emitter(b, format=999)
    with pytest.raises(BundleValidationError, match="emitter format 999"):
        validate_bundle(b)
    d = tmp_path / "d"  # same version string, another emitter (a development build)
    shutil.copytree(sources["compiled", "float64"], d)
    _edit_emitter(d, fingerprint="0123456789abcdef")
    with pytest.raises(BundleValidationError, match="fingerprint '0123456789abcdef'"):
        validate_bundle(d)
    assert not validate_bundle(d, allow_unverified=True).verified
    c = tmp_path / "c"
    shutil.copytree(sources["compiled", "float64"], c)
    _edit_emitter(c, kind="traced_decoder")
    with pytest.raises(BundleValidationError, match="emitter kind 'traced_decoder'"):
        validate_bundle(c, allow_unverified=True)


def test_edited_options_are_refused(sources: dict, tmp_path: Path) -> None:
    bundle = _copy(sources, "compiled", "float32", tmp_path)

    def edit(meta: dict) -> None:
        meta["emitter"]["options"]["tile_rows"] = 1024

    rehash(bundle, edit)
    with pytest.raises(
        BundleValidationError, match=r"initializer 'tile_rows_m1' .* expected int64\[1\] \[1023\]"
    ):
        validate_bundle(bundle)


def test_unknown_protobuf_fields_are_refused(sources: dict, tmp_path: Path) -> None:
    bundle = _copy(sources, "compiled", "float32", tmp_path)
    data = (bundle / "model.onnx").read_bytes()
    # field 99, wire type 2 (length-delimited), 5 bytes: a reader skips it silently
    tag = 99 << 3 | 2
    (bundle / "model.onnx").write_bytes(data + bytes([tag & 0x7F | 0x80, tag >> 7, 5]) + b"hello")
    rehash(bundle)
    with pytest.raises(BundleValidationError, match="fields that ONNX does not define"):
        validate_bundle(bundle)


def test_policy_flags_contradict() -> None:
    from zpml_runtime.bundle import BundleError

    with pytest.raises(BundleError, match="contradict"):
        validate_bundle("/nonexistent", allow_unverified=True, require_verified=True)


def test_expression_text_must_match_the_recorded_tree(sources: dict, tmp_path: Path) -> None:
    bundle = _copy(sources, "compiled", "float64", tmp_path)
    rehash(bundle, lambda m: m["fru"].__setitem__("expression", "(x**2 + 2)/(x - y) + 1/(1 + 1/x)"))
    with pytest.raises(BundleValidationError, match="not the text of the recorded tree"):
        validate_bundle(bundle)


# ----------------------------------------------------------------- traced smoke inputs


def test_single_output_traced_bundle_runs_its_smoke_inputs(sources: dict, tmp_path: Path) -> None:
    bundle = _copy(sources, "traced", "float32", tmp_path)

    def constant_q(model: onnx.ModelProto) -> None:
        # the traced part's Q becomes a constant of 3 values: the graph runs, but not per row
        g = model.graph
        for node in g.node:
            node.output[:] = ["Q_orig" if o == "Q" else o for o in node.output]
        g.initializer.append(
            onnx.helper.make_tensor("evil_q3", onnx.TensorProto.FLOAT, [3], [1, 2, 3])
        )
        g.node.insert(0, onnx.helper.make_node("Identity", ["evil_q3"], ["Q"]))

    edit_model(bundle, constant_q)
    smoke = np.load(bundle / "smoke_inputs.npy")
    assert len(smoke) == 3
    np.save(bundle / "smoke_inputs.npy", np.concatenate([smoke, smoke[:2]]))
    rehash(bundle, lambda m: m["smoke_inputs"].__setitem__("shape", [5, 2]))
    with pytest.raises(BundleValidationError, match="on the smoke inputs|on the 5 smoke rows"):
        validate_bundle(bundle)


def test_seed_deployment_flow_for_traced_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment calls of the original docs, unchanged, on a traced (non-compiled) model."""
    from zpml_runtime.inference import (
        export_bundle,
        load_onnx_runtime_bundle,
        run_bundle_reference_smoke_test,
        validate_bundle,
    )

    monkeypatch.chdir(tmp_path)
    wrapped = SCMInferenceWrapper(
        ExprModel(), config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    ).eval()
    x_example = torch.tensor([[2.0, 1.0], [1.0, 1.0], [0.0, 3.0], [0.5, -0.5]])
    x_numpy, x_smoke = x_example.numpy(), x_example[:3]

    export_bundle(wrapped, "bundle_dir", example_inputs=(x_example,))
    validate_bundle("bundle_dir")

    with pytest.warns(UserWarning, match="UNVERIFIED: traced model"):
        runtime = load_onnx_runtime_bundle(
            "bundle_dir",
            providers=["CPUExecutionProvider"],
        )
    decoded, bottom_mask, gap_mask = runtime.run(x_numpy)

    with pytest.warns(UserWarning, match="UNVERIFIED"):
        run_bundle_reference_smoke_test("bundle_dir", wrapped, (x_smoke,))
    assert bottom_mask.tolist() == [False, True, True, False]
    assert not runtime.verified and "traced model" in runtime.unverified_reason


_CHILD = """
import hashlib, sys, torch
import zpml_symbolic as zs
from zpml_runtime.bundle import export_bundle, validate_bundle
from zpml_runtime.inference import InferenceConfig
vb = validate_bundle(sys.argv[1])                    # the parent's bundle, reproduced here
assert vb.verified, vb.unverified_reason
params = ["p0", "p1", "q1"]
ev = zs.strict_evaluator(
    zs.parse("(p0 + p1*x)/(1 + q1*x*y) + 1/(x*y*z - 1)", parameters=params), parameters=params,
    init={"p0": 1.0, "p1": 2.0, "q1": 0.5}, config=InferenceConfig(tau_infer=1e-6), variables=["z", "y", "x"],
)
p = export_bundle(ev, sys.argv[2], (torch.ones(2, 3),), bundle_id="h").path
print(hashlib.sha256((p / "model.onnx").read_bytes()).hexdigest())
"""


def test_exports_are_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    import hashlib
    import os
    import subprocess
    import sys

    params = ["p0", "p1", "q1"]
    ev = zs.strict_evaluator(
        zs.parse("(p0 + p1*x)/(1 + q1*x*y) + 1/(x*y*z - 1)", parameters=params),
        parameters=params,
        init={"p0": 1.0, "p1": 2.0, "q1": 0.5},
        config=InferenceConfig(tau_infer=1e-6),
        variables=["z", "y", "x"],
    )
    mine = export_bundle(ev, tmp_path / "parent", (torch.ones(2, 3),), bundle_id="h").path
    want = hashlib.sha256((mine / "model.onnx").read_bytes()).hexdigest()
    for seed in ("12345",):  # the parent runs with its own (random) hash seed
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(mine), str(tmp_path / f"child{seed}")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split()[-1] == want
