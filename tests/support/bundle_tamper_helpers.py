"""Helpers of the bundle tamper tests: edit a bundle and recompute its unkeyed hashes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
from onnx import helper

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


# ----------------------------------------------------------------- the six review tampers
#
# Each edits an honest bundle's graph (and/or metadata) the way the adversarial review did,
# then recomputes the unkeyed hashes (rehash): only the verification can notice.


def _graph_with(model: onnx.ModelProto, op: str, name_prefix: str) -> onnx.GraphProto:
    """The graph holding the ``op`` nodes that compare with ``name_prefix`` thresholds
    (the Scan body of a compiled graph, the main graph of a traced one)."""
    scans = [n for n in model.graph.node if n.op_type == "Scan"]
    graph = scan_body(model) if scans else model.graph
    if not any(n.op_type == op and n.input[1].startswith(name_prefix) for n in graph.node):
        raise AssertionError("the graph layout changed: update this tamper")
    return graph


def ignore_tau_band(model: onnx.ModelProto) -> None:
    """Tamper 1: ``Mul(zpml_t_infer, 0)`` and the ``Less`` nodes re-pointed at it: only the
    exact-zero test of Q is left, ``tau_infer`` is ignored."""
    graph = _graph_with(model, "Less", "zpml_t_infer")
    dtype = next(i for i in model.graph.initializer if i.name == "zpml_t_infer").data_type
    model.graph.initializer.append(helper.make_tensor("evil_zero", dtype, [], [0.0]))
    graph.node.insert(0, helper.make_node("Mul", ["zpml_t_infer", "evil_zero"], ["evil_t_infer"]))
    for node in graph.node:
        if node.op_type == "Less" and node.input[1] == "zpml_t_infer":
            node.input[1] = "evil_t_infer"


def _any_row(graph: onnx.GraphProto, cond: str, out: str) -> None:
    """``out[b] = any(cond[b, :])`` for a bool ``[batch, n]`` tensor."""
    graph.node.extend(
        [
            helper.make_node("Cast", [cond], [f"{out}_i"], to=onnx.TensorProto.INT32),
            helper.make_node("ReduceMax", [f"{out}_i", "evil_axis_1"], [f"{out}_m"], keepdims=0),
            helper.make_node("Cast", [f"{out}_m"], [out], to=onnx.TensorProto.BOOL),
        ]
    )


_CONSTS: dict[str, tuple[int | None, list[int], list[float]]] = {
    "evil_axis_1": (onnx.TensorProto.INT64, [1], [1]),
    "evil_64": (None, [], [64.0]),
    "evil_3_5": (None, [], [3.5]),
    "evil_1e30": (None, [], [1e30]),
    "evil_42": (None, [], [42.0]),
    "evil_one_row": (onnx.TensorProto.INT64, [], [1]),
    "evil_eight_rows": (onnx.TensorProto.INT64, [], [8]),
    "evil_i8_zero": (onnx.TensorProto.INT8, [], [0]),
    "evil_first": (onnx.TensorProto.INT64, [1], [0]),
}


def _consts(model: onnx.ModelProto, dtype: int) -> None:
    """The constants the tamper's nodes read (and only those: a clean graph)."""
    g = model.graph
    read = {i for node in g.node for i in node.input}
    for name, (kind, dims, vals) in _CONSTS.items():
        if name in read:
            g.initializer.append(helper.make_tensor(name, kind or dtype, dims, vals))


def _trigger_off_grid(g: onnx.GraphProto) -> str:
    """Tamper 2: rows with a coordinate off the 1/64 grid."""
    g.node.extend(
        [
            helper.make_node("Mul", ["x", "evil_64"], ["evil_x64"]),
            helper.make_node("Round", ["evil_x64"], ["evil_x64r"]),
            helper.make_node("Equal", ["evil_x64", "evil_x64r"], ["evil_on_grid"]),
            helper.make_node("Not", ["evil_on_grid"], ["evil_off_grid"]),
        ]
    )
    _any_row(g, "evil_off_grid", "evil_trigger")
    return "evil_trigger"


def _trigger_magnitude(g: onnx.GraphProto) -> str:
    """Tamper 3: rows with a coordinate of magnitude in (3.5, 1e30)."""
    g.node.extend(
        [
            helper.make_node("Abs", ["x"], ["evil_ax"]),
            helper.make_node("Greater", ["evil_ax", "evil_3_5"], ["evil_big"]),
            helper.make_node("Less", ["evil_ax", "evil_1e30"], ["evil_not_huge"]),
            helper.make_node("And", ["evil_big", "evil_not_huge"], ["evil_mid"]),
        ]
    )
    _any_row(g, "evil_mid", "evil_trigger")
    return "evil_trigger"


def _trigger_batch(g: onnx.GraphProto, below: int) -> str:
    """Tamper 4: every row, but only when the batch has fewer than ``below`` rows."""
    limit = "evil_one_row" if below == 1 else "evil_eight_rows"
    op = "Equal" if below == 1 else "Less"
    g.node.extend(
        [
            helper.make_node("Shape", ["x"], ["evil_shape"]),
            helper.make_node("Gather", ["evil_shape", "evil_first"], ["evil_rows"], axis=0),
            helper.make_node(op, ["evil_rows", limit], ["evil_small1"]),
            helper.make_node("Abs", ["x"], ["evil_ax0"]),
            helper.make_node("ReduceMax", ["evil_ax0", "evil_axis_1"], ["evil_rowmax"], keepdims=0),
            helper.make_node("Equal", ["evil_rowmax", "evil_rowmax"], ["evil_row_true_or_nan"]),
            helper.make_node("IsNaN", ["evil_rowmax"], ["evil_row_nan"]),
            helper.make_node("Or", ["evil_row_true_or_nan", "evil_row_nan"], ["evil_every_row"]),
            helper.make_node("And", ["evil_every_row", "evil_small1"], ["evil_trigger"]),
        ]
    )
    return "evil_trigger"


def override_masks(model: onnx.ModelProto, kind: str) -> None:
    """Tampers 2-4: where the trigger holds, clear every bottom mask and return 42 as
    ``decoded`` instead of NaN: nodes appended after the strict decode."""
    g = model.graph
    dtype = g.input[0].type.tensor_type.elem_type
    trigger = {
        "off_grid": _trigger_off_grid,
        "magnitude": _trigger_magnitude,
        "batch_of_1": lambda gr: _trigger_batch(gr, 1),
        "batch_below_8": lambda gr: _trigger_batch(gr, 8),
    }[kind](g)
    outputs = {o.name: o for o in g.output}
    wide = len(outputs["bottom_mask"].type.tensor_type.shape.dim) == 2
    if wide:  # [batch] trigger against [batch, k] masks
        g.node.append(helper.make_node("Unsqueeze", [trigger, "evil_axis_1"], ["evil_trigger_2d"]))
    renames = {
        name: f"{name}__honest"
        for name in outputs
        if name in ("decoded", "bottom_provenance") or name.endswith("mask")
    }
    for node in g.node:  # the honest nodes write (and read) the renamed tensors
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for name, honest in renames.items():
        shape = outputs[name].type.tensor_type.shape.dim
        t = "evil_trigger_2d" if (wide and len(shape) == 2) else trigger
        if name == "decoded":
            g.node.extend(
                [
                    helper.make_node("And", [t, "bottom_mask__honest"], ["evil_lie"]),
                    helper.make_node("Where", ["evil_lie", "evil_42", honest], [name]),
                ]
            )
        elif name == "bottom_provenance":
            g.node.append(helper.make_node("Where", [t, "evil_i8_zero", honest], [name]))
        else:
            g.node.extend(
                [
                    helper.make_node("Not", [t], [f"evil_not_{name}"]),
                    helper.make_node("And", [honest, f"evil_not_{name}"], [name]),
                ]
            )
    _consts(model, dtype)


def downgrade_fru(meta: dict) -> None:
    """Tamper 5: ``fru: null`` on a compiled bundle."""
    meta["fru"] = None


def relabel_traced(meta: dict) -> None:
    """Tamper 6: relabel as a traced model (``fru: null``, emitter kind to match)."""
    meta["source"] = "traced_model"
    meta["fru"] = None
    meta["structural_validity_output_schema"] = None
    if isinstance(meta.get("emitter"), dict):
        meta["emitter"]["kind"] = "traced_decoder"
        meta["emitter"]["options"].pop("tile_rows", None)
