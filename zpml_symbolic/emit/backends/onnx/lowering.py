"""Program -> ONNX nodes: :class:`OnnxLowering` (the ``onnx`` column of the program
interpreter) turns every instruction into nodes of a :class:`~.graph.Graph`."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
from onnx import helper

from zpml_symbolic.emit.backends.onnx.graph import Graph, exact_const
from zpml_symbolic.emit.lowering.interpreter import Interpreter, column
from zpml_symbolic.emit.lowering.ops import OPERATIONS
from zpml_symbolic.emit.lowering.plan import Plan

__all__ = ["ONNX_OPS", "OnnxLowering", "lower_program"]


def _instruction_names(plan: Plan) -> dict[int, str]:
    out: dict[int, str] = {}
    for names in plan.names:
        for label in (names.P, names.Q, *names.V):
            out.setdefault(plan.program.outputs[label], label)
    return out


def _column(g: Graph, j: int, n: int, base: str) -> str:
    """Column ``j`` of the ``[rows, n]`` input as a ``[rows]`` tensor.

    One column: ``Squeeze`` (a view). Several: one ``Split`` along axis 1 for
    all of them (a single pass over the input), then ``Squeeze`` (views).
    Per-column ``Gather(axis=1)`` would be a strided gather per column, several
    times slower in onnxruntime.
    """
    axes = g.const(np.array([1]), "int64", hint="axis_1")
    if n == 1:
        return g.node("Squeeze", [g.input, axes], base, rank=1)
    key: tuple[object, ...] = ("Split", g.input, n)
    cols = g.multi.get(key)
    if cols is None:
        cols = [g.fresh(f"{g.input}_col_{i}") for i in range(n)]
        if g.opset >= 18:
            node = helper.make_node("Split", [g.input], cols, axis=1, num_outputs=n)
        else:  # opset < 18: sizes as an input
            sizes = g.const(np.ones(n), "int64", hint="ones")
            node = helper.make_node("Split", [g.input, sizes], cols, axis=1)
        g.nodes.append(node)
        for c in cols:
            g.rank[c] = 2
            g._node_outputs.add(c)
        g.multi[key] = cols
    return g.node("Squeeze", [cols[j], axes], base, rank=1)


def lower_program(g: Graph, plan: Plan, param_names: dict[str, str] | None = None) -> list[str]:
    """One value name per instruction (nodes for operations, initializers otherwise).

    ``param_names``: initializer name of each parameter (default: the parameter's name).
    """
    return OnnxLowering(g, plan, param_names).run()


@column("onnx")
class OnnxLowering(Interpreter[str]):
    """The program as nodes of ``g``: one value name per instruction. Values named by the
    plan (``P``, ``Q``, ``V_i``) keep their names, other temporaries are ``t{i}``; exact
    constants become shared initializers named after their value."""

    def __init__(self, g: Graph, plan: Plan, param_names: dict[str, str] | None = None) -> None:
        super().__init__(plan.program)
        self.g = g
        self.param_names = param_names
        self.labels = _instruction_names(plan)

    def _base(self) -> str:
        return self.labels.get(self.index, f"t{self.index}")

    def _binary(self, op: str, a: str, b: str) -> str:
        return self.g.node(op, [a, b], self._base())

    def input(self, column: int) -> str:
        program = self.program
        var = program.variables[column]
        name = f"in_{var}" if var.isidentifier() and var.isascii() else f"in_{column}"
        return _column(self.g, column, len(program.variables), self.labels.get(self.index, name))

    def param(self, index: int) -> str:
        name = self.program.parameters[index]  # initializer added by to_onnx
        return name if self.param_names is None else self.param_names[name]

    def const(self, value: Fraction) -> str:
        return exact_const(self.g, value)

    def add(self, a: str, b: str) -> str:
        return self._binary("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self._binary("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self._binary("Mul", a, b)

    def square(self, a: str) -> str:
        return self._binary("Mul", a, a)

    def neg(self, a: str) -> str:
        return self.g.node("Neg", [a], self._base())

    def scale(self, a: str, c: Fraction) -> str:
        return self.g.node("Mul", [a, exact_const(self.g, c)], self._base())

    def shift(self, a: str, c: Fraction) -> str:
        op = "Sub" if c < 0 else "Add"  # a + c == a - |c| exactly; reads better
        return self.g.node(op, [a, exact_const(self.g, abs(c))], self._base())

    def axpy(self, a: str, b: str, c: Fraction) -> str:
        base = self._base()
        prod = self.g.node("Mul", [b, exact_const(self.g, abs(c))], f"{base}_term")
        return self.g.node("Sub" if c < 0 else "Add", [a, prod], base)


#: op -> how to build it in the ONNX graph (the operations of the ``onnx`` column;
#: ``input``, ``param`` and ``const`` become Split/Squeeze nodes and initializers)
ONNX_OPS: dict[str, Callable[..., str]] = {op: getattr(OnnxLowering, op.value) for op in OPERATIONS}
