"""Helpers of the bundle tamper tests: edit a bundle and recompute its unkeyed hashes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx

from zpml_runtime.bundle.format import CHECKSUM_FILE, checksum_line, dumps_metadata, sha256_bytes


def rehash(bundle: Path, edit_metadata: Callable[[dict], None] | None = None) -> None:
    """Recompute model/smoke hashes and the checksum, as an attacker can."""
    meta = json.loads((bundle / "metadata.json").read_text())
    if edit_metadata is not None:
        edit_metadata(meta)
    model = (bundle / meta["model_file"]).read_bytes()
    meta["model_sha256"], meta["model_size"] = sha256_bytes(model), len(model)
    smoke = (bundle / meta["smoke_inputs"]["file"]).read_bytes()
    meta["smoke_inputs"]["sha256"], meta["smoke_inputs"]["size"] = sha256_bytes(smoke), len(smoke)
    data = dumps_metadata(meta)
    (bundle / "metadata.json").write_bytes(data)
    (bundle / CHECKSUM_FILE).write_text(checksum_line(data))


def edit_model(bundle: Path, edit: Callable[[onnx.ModelProto], None]) -> None:
    """Edit model.onnx in place, then recompute every hash."""
    model = onnx.load(bundle / "model.onnx")
    edit(model)
    (bundle / "model.onnx").write_bytes(model.SerializeToString())
    rehash(bundle)


def scan_body(model: onnx.ModelProto) -> onnx.GraphProto:
    """The row-tile body graph of a strict bundle graph."""
    (scan,) = [n for n in model.graph.node if n.op_type == "Scan"]
    return scan.attribute[[a.name for a in scan.attribute].index("body")].g
