"""The contiguous column buffer of the in-place torch graphs (see :func:`column_layout`)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
from torch import fx

from zpml_symbolic.emit.lowering.ops import OpCode
from zpml_symbolic.emit.lowering.plan import Plan

__all__ = ["column_layout", "gather_columns"]


def _columns(j: int | slice) -> Any:
    """The index ``(..., j)``: column(s) ``j`` of the last dimension (an FX argument)."""
    return (Ellipsis, j)


def column_layout(plan: Plan) -> tuple[int, ...] | None:
    """Input columns to copy once into one contiguous ``[n, ...]`` buffer, or None.

    A column ``x[..., j]`` of a row-major ``[..., n_vars]`` input is strided:
    every operation reading it streams all of ``x`` through the cache and runs
    a non-vectorised loop. When the program reads its columns at least twice
    each on average (counting validity factors that are input columns, which
    ``V`` would copy anyway), copying the used columns once into contiguous
    rows is cheaper. Validity factors that are input columns come first, in
    ``V`` order, so a ``V`` made only of them is a view of the buffer (no
    stacking copy). Values are unchanged (a copy is exact).
    """
    program = plan.program
    if len(plan.variables) < 2:
        return None
    kinds = program.instrs
    used = sorted({ins.index for ins in kinds if ins.op is OpCode.INPUT and ins.index is not None})
    reads = sum(1 for ins in kinds for a in ins.args if kinds[a].op is OpCode.INPUT)
    factor_cols: list[int] = []
    for names in plan.names:
        for v in names.V:
            ins = kinds[program.outputs[v]]
            if ins.op is OpCode.INPUT and ins.index is not None and ins.index not in factor_cols:
                factor_cols.append(ins.index)
    if not used or reads + len(factor_cols) < 2 * len(used):
        return None
    return tuple(factor_cols) + tuple(j for j in used if j not in factor_cols)


def gather_columns(
    g: fx.Graph, x: fx.Node, plan: Plan
) -> tuple[fx.Node | None, tuple[int, ...] | None]:
    """Emit the contiguous column buffer of :func:`column_layout` (or nothing)."""
    layout = column_layout(plan)
    if layout is None:
        return None, None
    cols = [g.call_function(operator.getitem, (x, _columns(j))) for j in layout]
    return g.call_function(torch.stack, (cols,)), layout


def _factor_rows(plan: Plan, factors: Sequence[str], layout: tuple[int, ...] | None) -> list[int]:
    """Rows of the column buffer holding ``factors``, or [] unless all are input columns."""
    if layout is None:
        return []
    rows = []
    for name in factors:
        ins = plan.program.instrs[plan.program.outputs[name]]
        if ins.op is not OpCode.INPUT or ins.index not in layout:
            return []
        rows.append(layout.index(ins.index))
    return rows
