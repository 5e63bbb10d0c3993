"""Row tiling: a ``Scan`` over row tiles of ``x`` running the flat graph as its body."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from zpml_symbolic.emit.backends.onnx.graph import INPUT_NAME, Graph

__all__ = ["TILE_DIM", "TILE_INPUT", "TILE_SUFFIX", "tile"]

#: name of the tile input inside the Scan body, ``[tile, n_vars]``
TILE_INPUT = "x_tile"
#: symbolic name of the tile dimension inside the Scan body
TILE_DIM = "tile"
#: suffix of the Scan body's outputs (the graph outputs keep the plain names)
TILE_SUFFIX = "_tile"


def tile(
    g: Graph,
    body: onnx.GraphProto,
    n_vars: int,
    tile_rows: int,
    outputs: Sequence[tuple[str, str]],
) -> None:
    """Append to ``g`` the nodes running ``body`` over row tiles of input ``x``.

    With ``rows`` the batch size, ``k = max(ceil(rows / tile_rows), 1)`` tiles of
    ``ceil(rows / k)`` rows each: ``x`` is padded with zero rows to ``k`` tiles
    (at most ``k - 1`` rows), reshaped to ``[k, tile, n_vars]`` and scanned; each
    scan output ``[k, tile]`` is flattened and sliced back to ``[rows]``. Every
    operation of the body is elementwise across rows, so the padding rows never
    affect the real ones. ``outputs`` maps body output names to graph outputs.
    """

    def i64(value: list[int], hint: str) -> str:
        return g.const(np.array(value), "int64", hint=hint)

    def op(op_type: str, inputs: Sequence[str], base: str, **attrs: Any) -> str:
        return g.node(op_type, inputs, base, rank=1, **attrs)

    rows = op("Shape", [INPUT_NAME], "rows", start=0, end=1)
    one = i64([1], "one")
    zero = i64([0], "zero")
    # k = max(ceil(rows / tile_rows), 1); per = ceil(rows / k); padding = k * per - rows
    rows_up = op("Add", [rows, i64([tile_rows - 1], "tile_rows_m1")], "rows_up")
    k = op("Max", [op("Div", [rows_up, i64([tile_rows], "tile_rows")], "tiles_ceil"), one], "tiles")
    rows_up_k = op("Add", [rows, op("Sub", [k, one], "tiles_m1")], "rows_up_k")
    per = op("Div", [rows_up_k, k], "rows_per_tile")
    padding = op("Sub", [op("Mul", [k, per], "padded_rows"), rows], "padding")
    pads = op("Concat", [i64([0, 0], "zeros_2"), padding, zero], "pads", axis=0)
    shape = op("Concat", [k, per, i64([n_vars], "n_vars")], "tiled_shape", axis=0)
    padded = g.node("Pad", [INPUT_NAME, pads], "x_padded")
    tiles = g.node("Reshape", [padded, shape], "x_tiles", allowzero=1)
    stacked = [g.fresh(f"{outer}_tiles") for _, outer in outputs]
    g.nodes.append(helper.make_node("Scan", [tiles], stacked, body=body, num_scan_inputs=1))
    minus_one = i64([-1], "minus_one")
    for (_, outer), tiled in zip(outputs, stacked, strict=True):
        flat = g.node("Reshape", [tiled, minus_one], f"{outer}_flat")
        g.nodes.append(helper.make_node("Slice", [flat, zero, rows], [outer]))
