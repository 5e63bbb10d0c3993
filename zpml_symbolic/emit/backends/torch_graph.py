"""Program -> torch.fx graphs: the graph emitter (functional, in-place and autograd-safe forms), the graph builder.

Shared by the module wrapper (:mod:`zpml_symbolic.emit.backends.torch_emit`) and the
generated reverse mode (:mod:`zpml_symbolic.emit.backends.torch_adjoint`); it imports
neither, so imports point one way: ``torch_graph`` <- ``torch_adjoint`` <- ``torch_emit``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import torch
from torch import fx, nn

from zpml_symbolic.emit.backends.torch_columns import _columns, _factor_rows, gather_columns
from zpml_symbolic.emit.lowering.interpreter import Interpreter, column
from zpml_symbolic.emit.lowering.ops import OPERATIONS, SPECS, OpCode
from zpml_symbolic.emit.lowering.plan import Plan


def _last_uses(plan: Plan) -> list[float]:
    program = plan.program
    last: list[float] = [-1] * len(program.instrs)
    for i, ins in enumerate(program.instrs):
        for a in ins.args:
            last[a] = i
    for i in program.outputs.values():
        last[i] = float("inf")
    return last


def mask_inputs(plan: Plan) -> set[int]:
    """Instructions that ``Q`` or a validity factor depends on.

    They are computed with the exact operation sequence of the numpy and ONNX
    back-ends (``a + c*b`` with two roundings), so every back-end sees
    bit-identical mask inputs. Instructions that only feed ``P`` may use a
    fused multiply-add (one rounding, one kernel).
    """
    program = plan.program
    roots = [program.outputs[n.Q] for n in plan.names]
    roots += [program.outputs[v] for n in plan.names for v in n.V]
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        k = stack.pop()
        if k not in seen:
            seen.add(k)
            stack.extend(program.instrs[k].args)
    return seen


def fused_scaled_products(plan: Plan, critical: set[int]) -> dict[int, tuple[float, int]]:
    """``a + v * (s * b)`` patterns to compute as one ``addcmul`` (``P``-only instructions).

    Maps the sum (``add``/``sub``/``axpy`` of a per-sample ``a`` and a product
    ``m = s * b`` of a 0-d coefficient ``s`` and a per-sample ``b`` read by
    nothing else) to ``(v, m)``. Like the fused ``axpy``, this is used only
    where neither ``Q`` nor a validity factor depends on the result.
    """
    program = plan.program
    uses = program.uses()
    sc = program.scalar
    out: dict[int, tuple[float, int]] = {}
    for i, ins in enumerate(program.instrs):
        spec = SPECS[ins.op]
        partials = spec.partials(ins.const)
        # sums of two operands with constant coefficients: add, sub, axpy
        if i in critical or sc[i] or spec.arity != 2 or any(p.times is not None for p in partials):
            continue
        a, m = ins.args
        pos = 1
        if spec.commutative and not _is_scaled_product(program, m, uses):
            a, m, pos = m, a, 0
        if sc[a] or not _is_scaled_product(program, m, uses):
            continue
        out[i] = (float(partials[pos].coef), m)  # the coefficient of m
    return out


def _is_scaled_product(program: Any, m: int, uses: list[int]) -> bool:
    ins = program.instrs[m]
    if ins.op is not OpCode.MUL or uses[m] != 1 or program.scalar[m]:
        return False
    s, b = ins.args
    return program.scalar[s] != program.scalar[b] and all(
        program.instrs[k].op is not OpCode.CONST for k in ins.args
    )


def _emit_addcmul(
    g: fx.Graph,
    program: Any,
    v: list[Any],
    i: int,
    fusion: tuple[float, int],
    reusable: Callable[[int, int], bool],
    inplace: bool,
) -> fx.Node:
    """``a + coef * (s * b)`` as one ``addcmul``, in place on a dead ``a`` (or ``b``) when allowed."""
    coef, m = fusion
    ins = program.instrs[i]
    a = ins.args[0] if ins.args[1] == m else ins.args[1]
    s, b = program.instrs[m].args
    if program.scalar[b]:
        s, b = b, s
    kw: dict[str, Any] = {} if coef == 1.0 else {"value": coef}
    if reusable(a, i):
        return g.call_method("addcmul_", (v[a], v[b], v[s]), kw)
    if inplace and reusable(b, i):
        return g.call_function(torch.addcmul, (v[a], v[b], v[s]), {**kw, "out": v[b]})
    return g.call_function(torch.addcmul, (v[a], v[b], v[s]), kw)


def _never(k: int, at: int) -> bool:
    return False


def emit_values(
    g: fx.Graph,
    plan: Plan,
    x: fx.Node,
    *,
    inplace: bool = False,
    autograd_reuse: bool = False,
    protect: frozenset[int] = frozenset(),
    columns: fx.Node | None = None,
    layout: tuple[int, ...] | None = None,
) -> list[Any]:
    """Emit every instruction of ``plan`` into ``g`` (reading columns of ``x``).

    Returns one FX node (or Python float for constants) per instruction. See
    :func:`build_graph` for ``inplace``/``autograd_reuse``; instructions in
    ``protect`` are never overwritten (their values are needed later).
    """
    return GraphEmitter(
        g,
        plan,
        x,
        inplace=inplace,
        autograd_reuse=autograd_reuse,
        protect=protect,
        columns=columns,
        layout=layout,
    ).run()


@column("torch_fx")
class GraphEmitter(Interpreter[Any]):
    """Emits the program into the FX graph ``g``: one node (a Python float for constants,
    None for a product fused into its consumer) per instruction; see :func:`emit_values`.

    Three variants of every op: functional (``a + b``), in place on a dead temporary
    (``inplace``: ``a.add_(b)``, no autograd), and the in-place forms autograd accepts
    (``autograd_reuse``: the overwritten temporary is never saved for backward and the
    op's own backward needs none of its inputs). Rounding is the same in all three;
    instructions that only feed ``P`` may use fused multiply-adds (``torch.add(alpha=)``,
    ``addcmul``), those ``Q`` or a validity factor depend on never do.
    """

    def __init__(
        self,
        g: fx.Graph,
        plan: Plan,
        x: fx.Node,
        *,
        inplace: bool,
        autograd_reuse: bool,
        protect: frozenset[int],
        columns: fx.Node | None,
        layout: tuple[int, ...] | None,
    ) -> None:
        super().__init__(plan.program)
        program = plan.program
        self.g, self.plan, self.x = g, plan, x
        self.columns, self.layout = columns, layout
        self.inplace = inplace
        self.autograd = autograd_reuse and not inplace
        self.last = _last_uses(plan)
        self.critical = mask_inputs(plan)
        self.owned = [
            not SPECS[ins.op].is_leaf and not program.scalar[k] and k not in protect
            for k, ins in enumerate(program.instrs)
        ]
        #: operands autograd saves for backward (the derivative reads their values)
        self.saved = {
            ins.args[p.times]
            for ins in program.instrs
            for p in SPECS[ins.op].partials(ins.const)
            if p.times is not None
        }
        self.fused = fused_scaled_products(plan, self.critical)
        self.skipped = {m for (_, m) in self.fused.values()}
        self.dtype = g.call_function(getattr, (x, "dtype"))

    # -- buffer reuse
    def dead(self, k: int, at: int) -> bool:
        """In-place mode: ``k`` is a temporary whose last reader is instruction ``at``."""
        return self.inplace and self.owned[k] and self.last[k] == at

    def dead_unsaved(self, k: int, at: int) -> bool:
        """Like :meth:`dead`, for a temporary autograd does not save."""
        return self.owned[k] and self.last[k] == at and k not in self.saved

    def reusable(self, k: int) -> bool:
        """``k``'s buffer may take the result of an op whose backward reads none of its inputs."""
        if self.inplace:
            return self.dead(k, self.index)
        return self.autograd and self.dead_unsaved(k, self.index)

    def execute(self, i: int, ins: Any) -> Any:
        if i in self.skipped:
            return None  # computed inside its consumer's addcmul
        fusion = self.fused.get(i)
        if fusion is not None:
            reuse = self.dead if self.inplace else self.dead_unsaved if self.autograd else _never
            return _emit_addcmul(self.g, self.program, self.values, i, fusion, reuse, self.inplace)
        return super().execute(i, ins)

    # -- leaves
    def input(self, column: int) -> Any:
        if self.columns is not None and self.layout is not None:
            row = self.layout.index(column)
            return self.g.call_function(operator.getitem, (self.columns, row))
        return self.g.call_function(operator.getitem, (self.x, _columns(column)))

    def param(self, index: int) -> Any:
        key = self.plan.parameter_keys[index]  # the user's name, or zpml_p{i} if unsafe
        p = self.g.get_attr(f"coefficients.{key}")
        return self.g.call_method("to", (p, self.dtype))

    def const(self, value: Fraction) -> Any:
        return float(value)

    # -- operations
    def _args(self) -> tuple[int, ...]:
        assert self.instr is not None
        return self.instr.args

    def add(self, a: Any, b: Any) -> Any:
        ka, kb = self._args()
        if self.reusable(ka):
            return self.g.call_method("add_", (a, b))
        if self.reusable(kb):
            return self.g.call_method("add_", (b, a))
        return self.g.call_function(operator.add, (a, b))

    def sub(self, a: Any, b: Any) -> Any:
        ka, kb = self._args()
        if self.reusable(ka):
            return self.g.call_method("sub_", (a, b))
        if self.dead(kb, self.index):
            return self.g.call_function(torch.sub, (a, b), {"out": b})
        return self.g.call_function(operator.sub, (a, b))

    def mul(self, a: Any, b: Any) -> Any:
        ka, kb = self._args()
        if self.dead(ka, self.index):
            return self.g.call_method("mul_", (a, b))
        if self.dead(kb, self.index):
            return self.g.call_method("mul_", (b, a))
        return self.g.call_function(operator.mul, (a, b))

    def square(self, a: Any) -> Any:
        if self.dead(self._args()[0], self.index):
            return self.g.call_method("mul_", (a, a))
        return self.g.call_function(operator.mul, (a, a))

    def neg(self, a: Any) -> Any:
        if self.reusable(self._args()[0]):
            return self.g.call_method("neg_", (a,))
        return self.g.call_function(operator.neg, (a,))

    def scale(self, a: Any, c: Fraction) -> Any:
        if self.reusable(self._args()[0]):
            return self.g.call_method("mul_", (a, float(c)))
        return self.g.call_function(operator.mul, (a, float(c)))

    def shift(self, a: Any, c: Fraction) -> Any:
        if self.reusable(self._args()[0]):
            f = float(c)
            return self.g.call_method("sub_" if f < 0 else "add_", (a, abs(f)))
        if c < 0:
            return self.g.call_function(operator.sub, (a, -float(c)))
        return self.g.call_function(operator.add, (a, float(c)))

    def axpy(self, a: Any, b: Any, c: Fraction) -> Any:
        ka, kb = self._args()
        i, f = self.index, float(c)
        critical = i in self.critical
        if self.autograd:
            if not critical and self.dead_unsaved(ka, i):
                return self.g.call_method("add_", (a, b), {"alpha": f})
            if critical and (self.dead_unsaved(ka, i) or self.dead_unsaved(kb, i)):
                return self._axpy_in_place(a, b, f, self.dead_unsaved)
            if not critical:
                return self._fused_axpy(a, b, f)
        elif not critical:  # in place or functional
            if self.dead(ka, i):
                return self.g.call_method("add_", (a, b), {"alpha": f})
            if self.dead(kb, i):
                return self._fused_axpy(a, b, f, out=b)
            return self._fused_axpy(a, b, f)
        elif self.inplace and (self.dead(ka, i) or self.dead(kb, i)):
            return self._axpy_in_place(a, b, f, self.dead)
        # a + (c*b) with two roundings, like numpy and ONNX (torch.add(..., alpha=c) fuses
        # the multiply-add and would round once, so back-ends could disagree in the last bit)
        return self.g.call_function(operator.add, (a, self.g.call_function(operator.mul, (b, f))))

    def _axpy_in_place(self, a: Any, b: Any, f: float, dead: Callable[[int, int], bool]) -> Any:
        """``a + c*b`` with two roundings into the buffer of a dead ``b`` (else ``a``)."""
        if dead(self._args()[1], self.index):
            return self.g.call_method("add_", (self.g.call_method("mul_", (b, f)), a))
        return self.g.call_method("add_", (a, self.g.call_function(operator.mul, (b, f))))

    def _fused_axpy(self, a: Any, b: Any, f: float, out: Any = None) -> Any:
        """``a + c*b`` in one kernel (one rounding): ``P``-only instructions."""
        kwargs: dict[str, Any] = {"alpha": f}
        if out is not None:
            kwargs["out"] = out
        return self.g.call_function(torch.add, (a, b), kwargs)


#: op -> how to build it in an FX graph (the operations of the ``torch_fx`` column)
TORCH_OPS: dict[str, Callable[..., Any]] = {
    op: getattr(GraphEmitter, op.value) for op in OPERATIONS
}


class _BatchShape:
    """Lazily emitted ``x.shape[:-1]`` and broadcasting of 0-d outputs."""

    def __init__(self, g: fx.Graph, x: fx.Node, plan: Plan, values: list[Any]) -> None:
        self.g, self.x, self.plan, self.values = g, x, plan, values
        self.node: fx.Node | None = None

    def shape(self) -> fx.Node:
        if self.node is None:
            shape = self.g.call_function(getattr, (self.x, "shape"))
            self.node = self.g.call_function(operator.getitem, (shape, slice(None, -1)))
        return self.node

    def full(self, idx: int) -> Any:
        """Instruction ``idx``'s value with the batch shape (scalars are broadcast)."""
        program = self.plan.program
        v = self.values[idx]
        if not program.scalar[idx]:
            return v
        if program.instrs[idx].op is OpCode.CONST:
            return self.g.call_method("new_full", (self.x, self.shape(), v))
        return self.g.call_function(torch.broadcast_to, (v, self.shape()))


def build_graph(
    plan: Plan, *, inplace: bool = False, stack_factors: bool = True, autograd_reuse: bool = False
) -> fx.Graph:
    """The FX graph of ``plan``: ``forward(x) -> outputs`` (see :func:`to_torch`).

    ``inplace=True`` builds the inference variant: the same operations in the
    same order, but each temporary whose last use is the current operation
    lends its buffer to the result (``a.mul_(b)``), which halves allocation
    and memory traffic in eager mode. It is only valid without autograd.
    ``autograd_reuse=True`` (for the autograd graph) reuses only buffers
    autograd never saves: temporaries that are not an input of any product,
    overwritten by sums, differences, negations and scalings.
    ``stack_factors=False`` returns the validity factors as a tuple of
    ``[...]`` tensors instead of one stacked ``[..., k]`` tensor (no copy).
    """
    program = plan.program
    g = fx.Graph()
    x = g.placeholder("x")
    columns, layout = gather_columns(g, x, plan) if inplace else (None, None)
    values = emit_values(
        g, plan, x, inplace=inplace, autograd_reuse=autograd_reuse, columns=columns, layout=layout
    )
    batch = _BatchShape(g, x, plan, values)
    exposed: set[int] = set()

    def full(idx: int) -> Any:
        """Output ``idx`` with the batch shape, never aliasing the input or another output.

        An output that is just an input column would be a view of the caller's
        ``x`` (``1/x`` has ``Q = x[..., 0]``): it is copied (one column), as is
        an instruction exposed twice (``P`` equal to a validity factor).
        """
        v = batch.full(idx)
        if program.instrs[idx].op is OpCode.INPUT or idx in exposed:
            v = g.call_method("clone", (v,), {"memory_format": torch.contiguous_format})
        exposed.add(idx)
        return v

    results: list[tuple[Any, ...]] = []
    for names in plan.names:
        P = full(program.outputs[names.P])
        Q = full(program.outputs[names.Q])
        rows = _factor_rows(plan, names.V, layout)
        if names.V and stack_factors and columns is not None and rows == list(range(len(names.V))):
            # every factor is an input column, stored first in the private column buffer:
            # a view of that buffer (P and Q, if input columns too, were copied above)
            V = g.call_method(
                "movedim",
                (g.call_function(operator.getitem, (columns, slice(0, len(rows)))), 0, -1),
            )
            results.append((P, Q, V))
        elif names.V and not stack_factors:
            results.append((P, Q, tuple(full(program.outputs[n]) for n in names.V)))
        elif len(names.V) == 1:  # a view, no copy
            V = g.call_method("unsqueeze", (full(program.outputs[names.V[0]]), -1))
            results.append((P, Q, V))
        elif names.V:
            V = g.call_function(
                torch.stack, ([full(program.outputs[n]) for n in names.V],), {"dim": -1}
            )
            results.append((P, Q, V))
        elif len(plan.names) > 1:  # several expressions: every entry is (P, Q, V), V may be empty
            if stack_factors:
                empty = g.call_function(operator.getitem, (x, _columns(slice(None, 0))))
                results.append((P, Q, g.call_function(torch.zeros_like, (empty,))))
            else:
                results.append((P, Q, ()))
        else:
            results.append((P, Q))
    g.output(results[0] if len(results) == 1 else tuple(results))
    g.eliminate_dead_code()
    g.lint()
    return g


class _Holder(nn.Module):
    def __init__(self, coefficients: nn.ParameterDict) -> None:
        super().__init__()
        self.coefficients = coefficients


class RationalGraph(fx.GraphModule):
    """A generated graph module (its own ``__init__`` keeps TorchScript's checks quiet)."""

    def __init__(self, root: nn.Module, graph: fx.Graph, class_name: str) -> None:
        super().__init__(root, graph, class_name)


__all__ = [
    "TORCH_OPS",
    "GraphEmitter",
    "RationalGraph",
    "build_graph",
    "emit_values",
    "mask_inputs",
]
