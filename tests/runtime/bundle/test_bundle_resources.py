"""Issue 13 item 6: sizes checked before reading, hostile graphs and files get typed errors."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from bundle_tamper_helpers import edit_model, rehash
from onnx import helper, numpy_helper

import zpml_symbolic as zs
from zpml_runtime.bundle import BundleValidationError, export_bundle, validate_bundle
from zpml_runtime.bundle import validate as validate_mod
from zpml_runtime.bundle.format import CHECKSUM_FILE, checksum_line, json_depth
from zpml_runtime.cli import main as cli_main
from zpml_runtime.errors import ZeroProofRuntimeError
from zpml_runtime.inference import InferenceConfig


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ev = zs.strict_evaluator(
        zs.parse("1/(x - y) + 1/(1 + 1/x)"), config=InferenceConfig(tau_infer=0.0)
    )
    out = tmp_path_factory.mktemp("src") / "b"
    export_bundle(ev, out, (torch.tensor([[2.0, 1.0], [0.0, 1.0]]),))
    return out


@pytest.fixture()
def bundle(source: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(source, out)
    return out


def _refused(bundle: Path, match: str) -> BundleValidationError:
    with pytest.raises(BundleValidationError, match=match) as info:
        validate_bundle(bundle)
    assert isinstance(info.value, ZeroProofRuntimeError) and isinstance(info.value, ValueError)
    return info.value


def test_oversized_model_is_not_read(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(bundle / "model.onnx", "r+b") as fh:
        fh.truncate(3 * 2**30)  # sparse 3 GiB file: a stat is enough to refuse it
    read = []
    real_read = validate_mod.os.read

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(validate_mod.os, "read", counting_read)
    _refused(
        bundle, "3221225472 bytes, larger than the limit of [0-9]+ bytes for model_file; not read"
    )
    assert sum(read) < 2**20  # metadata + checksum + smoke only


def test_model_larger_than_recorded_reads_at_most_size_plus_one(bundle: Path) -> None:
    problems: list[str] = []
    data = b"a" * 100
    (bundle / "blob").write_bytes(data)
    import os

    dfd = os.open(bundle, os.O_RDONLY)
    try:
        assert validate_mod._read_at(dfd, "blob", "f", 99, problems) is None
        assert validate_mod._read_at(dfd, "blob", "f", 100, problems) == data
    finally:
        os.close(dfd)
    assert "larger than the limit of 99 bytes" in problems[0]


def test_unused_initializer_is_refused(bundle: Path) -> None:
    def edit(model: onnx.ModelProto) -> None:
        blob = numpy_helper.from_array(np.zeros(2**18, dtype=np.float32), "payload")
        model.graph.initializer.append(blob)

    edit_model(bundle, edit)
    _refused(bundle, "initializer 'payload' .1048[0-9]+ bytes. that no node reads")


def test_custom_operator_domain_is_refused(bundle: Path) -> None:
    def edit(model: onnx.ModelProto) -> None:
        model.opset_import.append(helper.make_opsetid("com.example", 1))
        model.graph.node.append(helper.make_node("Evil", ["x"], ["evil"], domain="com.example"))

    edit_model(bundle, edit)
    err = _refused(bundle, "non-standard operator domains .'com.example'.")
    assert any("com.example.Evil" in p for p in err.problems)


def _write_metadata_bytes(bundle: Path, data: bytes) -> None:
    (bundle / "metadata.json").write_bytes(data)
    (bundle / CHECKSUM_FILE).write_text(checksum_line(data))


def test_deep_json_is_refused_before_parsing(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_metadata_bytes(bundle, b"[" * 200_000 + b"]" * 200_000)
    _refused(bundle, "nests 200000 levels deep")
    assert cli_main(["inspect", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zpml: error:") and "Traceback" not in err and err.count("\n") == 1


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": ["[[[{{", {"b": "\\"]]"}]}') == 3
    assert json_depth(b"0") == 0


def test_huge_npy_header_shape_is_refused(bundle: Path) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 2)}
    )
    buf.write(b"\0" * 16)
    (bundle / "smoke_inputs.npy").write_bytes(buf.getvalue())
    rehash(bundle, lambda m: m["smoke_inputs"].__setitem__("shape", [10**12, 2]))
    _refused(bundle, "header promises shape")


@pytest.mark.parametrize("name", ["model\x00.onnx", "model\n.onnx", "x" * 300])
def test_control_characters_in_model_file(bundle: Path, name: str) -> None:
    rehash_name = name

    def edit(meta: dict) -> None:
        meta["model_file"] = rehash_name

    meta = json.loads((bundle / "metadata.json").read_text())
    edit(meta)
    from zpml_runtime.bundle.format import dumps_metadata

    _write_metadata_bytes(bundle, dumps_metadata(meta))
    _refused(bundle, "control characters .e.g. NUL. or is longer than 255")


def test_fifo_model_does_not_block(bundle: Path) -> None:
    import os

    (bundle / "model.onnx").unlink()
    os.mkfifo(bundle / "model.onnx")
    _refused(bundle, "not a regular file")
