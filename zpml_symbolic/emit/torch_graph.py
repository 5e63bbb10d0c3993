"""Program -> torch.fx graphs: the op table, the in-place and autograd-safe emitters, the graph builder.

Shared by the module wrapper (:mod:`zpml_symbolic.emit.torch_emit`) and the
generated reverse mode (:mod:`zpml_symbolic.emit.torch_adjoint`); it imports
neither, so imports point one way: ``torch_graph`` <- ``torch_adjoint`` <- ``torch_emit``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import torch
from torch import fx, nn

from zpml_symbolic.emit.plan import Plan
from zpml_symbolic.emit.program import Instr

Emit = Callable[[fx.Graph, list[fx.Node], Instr], fx.Node]


def _f(c: Fraction | None) -> float:
    assert c is not None
    return float(c)


#: op -> how to build it in an FX graph (a test checks every Program op is covered)
TORCH_OPS: dict[str, Emit] = {
    "add": lambda g, v, i: g.call_function(operator.add, (v[i.args[0]], v[i.args[1]])),
    "sub": lambda g, v, i: g.call_function(operator.sub, (v[i.args[0]], v[i.args[1]])),
    "mul": lambda g, v, i: g.call_function(operator.mul, (v[i.args[0]], v[i.args[1]])),
    "square": lambda g, v, i: g.call_function(operator.mul, (v[i.args[0]], v[i.args[0]])),
    "neg": lambda g, v, i: g.call_function(operator.neg, (v[i.args[0]],)),
    "scale": lambda g, v, i: g.call_function(operator.mul, (v[i.args[0]], _f(i.const))),
    "shift": lambda g, v, i: (
        g.call_function(operator.sub, (v[i.args[0]], -_f(i.const)))
        if i.const is not None and i.const < 0
        else g.call_function(operator.add, (v[i.args[0]], _f(i.const)))
    ),
    # a + (c*b) with two roundings, like numpy and ONNX (torch.add(..., alpha=c) fuses
    # the multiply-add and would round once, so back-ends could disagree in the last bit)
    "axpy": lambda g, v, i: g.call_function(
        operator.add, (v[i.args[0]], g.call_function(operator.mul, (v[i.args[1]], _f(i.const))))
    ),
}


def _last_uses(plan: Plan) -> list[float]:
    program = plan.program
    last: list[float] = [-1] * len(program.instrs)
    for i, ins in enumerate(program.instrs):
        for a in ins.args:
            last[a] = i
    for i in program.outputs.values():
        last[i] = float("inf")
    return last


def _emit_inplace(
    g: fx.Graph, v: list[Any], ins: Instr, i: int, dead: Callable[[int, int], bool]
) -> fx.Node | None:
    """The in-place form of ``ins`` reusing a dead temporary's buffer, or None.

    Only temporaries computed by the program itself are overwritten (never
    the input's columns, parameters or outputs); rounding is unchanged.
    """
    op, args = ins.op, ins.args
    if op in ("add", "mul"):
        a, b = args
        name = op + "_"
        if dead(a, i):
            return g.call_method(name, (v[a], v[b]))
        if dead(b, i):
            return g.call_method(name, (v[b], v[a]))
    elif op == "sub":
        a, b = args
        if dead(a, i):
            return g.call_method("sub_", (v[a], v[b]))
        if dead(b, i):
            return g.call_function(torch.sub, (v[a], v[b]), {"out": v[b]})
    elif op == "square" and dead(args[0], i):
        return g.call_method("mul_", (v[args[0]], v[args[0]]))
    elif op == "neg" and dead(args[0], i):
        return g.call_method("neg_", (v[args[0]],))
    elif op == "scale" and dead(args[0], i):
        return g.call_method("mul_", (v[args[0]], _f(ins.const)))
    elif op == "shift" and dead(args[0], i):
        c = _f(ins.const)
        return g.call_method("sub_" if c < 0 else "add_", (v[args[0]], abs(c)))
    elif op == "axpy":
        a, b = args
        if dead(b, i):
            scaled = g.call_method("mul_", (v[b], _f(ins.const)))
            return g.call_method("add_", (scaled, v[a]))
        if dead(a, i):
            scaled = g.call_function(operator.mul, (v[b], _f(ins.const)))
            return g.call_method("add_", (v[a], scaled))
    return None


def _emit_autograd_safe(
    g: fx.Graph, v: list[Any], ins: Instr, i: int, dead: Callable[[int, int], bool], critical: bool
) -> fx.Node | None:
    """In-place forms that autograd accepts: the overwritten temporary is never
    saved for backward (``dead`` guarantees it is not an input of any product)
    and the operation's own backward needs none of its inputs."""
    op, args = ins.op, ins.args
    if op == "add":
        a, b = args
        if dead(a, i):
            return g.call_method("add_", (v[a], v[b]))
        if dead(b, i):
            return g.call_method("add_", (v[b], v[a]))
    elif op == "sub" and dead(args[0], i):
        return g.call_method("sub_", (v[args[0]], v[args[1]]))
    elif op in ("neg", "scale", "shift") and dead(args[0], i):
        return _emit_inplace(g, v, ins, i, dead)
    elif op == "axpy":
        a, b = args
        if not critical and dead(a, i):
            return g.call_method("add_", (v[a], v[b]), {"alpha": _f(ins.const)})
        if critical and (dead(a, i) or dead(b, i)):
            return _emit_inplace(g, v, ins, i, dead)
    return None


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
        if i in critical or sc[i] or ins.op not in ("add", "sub", "axpy"):
            continue
        a, m = ins.args
        if ins.op == "add" and not _is_scaled_product(program, m, uses):
            a, m = m, a
        if sc[a] or not _is_scaled_product(program, m, uses) or m in out.values():
            continue
        v = 1.0 if ins.op == "add" else -1.0 if ins.op == "sub" else _f(ins.const)
        out[i] = (v, m)
    return out


def _is_scaled_product(program: Any, m: int, uses: list[int]) -> bool:
    ins = program.instrs[m]
    if ins.op != "mul" or uses[m] != 1 or program.scalar[m]:
        return False
    s, b = ins.args
    return program.scalar[s] != program.scalar[b] and all(
        program.instrs[k].op != "const" for k in ins.args
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


def _fused_axpy(g: fx.Graph, v: list[Any], ins: Instr, out: Any = None) -> fx.Node:
    kwargs: dict[str, Any] = {"alpha": _f(ins.const)}
    if out is not None:
        kwargs["out"] = out
    return g.call_function(torch.add, (v[ins.args[0]], v[ins.args[1]]), kwargs)


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
    used = sorted({ins.index for ins in kinds if ins.op == "input" and ins.index is not None})
    reads = sum(1 for ins in kinds for a in ins.args if kinds[a].op == "input")
    factor_cols: list[int] = []
    for names in plan.names:
        for v in names.V:
            ins = kinds[program.outputs[v]]
            if ins.op == "input" and ins.index is not None and ins.index not in factor_cols:
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
    cols = [g.call_function(operator.getitem, (x, (Ellipsis, j))) for j in layout]
    return g.call_function(torch.stack, (cols,)), layout


def _factor_rows(plan: Plan, factors: Sequence[str], layout: tuple[int, ...] | None) -> list[int]:
    """Rows of the column buffer holding ``factors``, or [] unless all are input columns."""
    if layout is None:
        return []
    rows = []
    for name in factors:
        ins = plan.program.instrs[plan.program.outputs[name]]
        if ins.op != "input" or ins.index not in layout:
            return []
        rows.append(layout.index(ins.index))
    return rows


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
    program = plan.program
    last = _last_uses(plan)
    critical = mask_inputs(plan)
    owned = [
        ins.op not in ("input", "param", "const") and not program.scalar[k] and k not in protect
        for k, ins in enumerate(program.instrs)
    ]

    saved = {a for ins in program.instrs if ins.op in ("mul", "square") for a in ins.args}

    def dead(k: int, at: int) -> bool:
        return inplace and owned[k] and last[k] == at

    def dead_unsaved(k: int, at: int) -> bool:
        return owned[k] and last[k] == at and k not in saved

    fused = fused_scaled_products(plan, critical)
    skipped = {m for (_, m) in fused.values()}
    dtype = g.call_function(getattr, (x, "dtype"))
    values: list[Any] = []
    for ins in program.instrs:
        i = len(values)
        if i in skipped:
            values.append(None)  # computed inside its consumer's addcmul
        elif i in fused:
            reusable = dead if inplace else dead_unsaved if autograd_reuse else _never
            values.append(_emit_addcmul(g, program, values, i, fused[i], reusable, inplace))
        elif ins.op == "input":
            if columns is not None and layout is not None:
                row = layout.index(ins.index or 0)
                values.append(g.call_function(operator.getitem, (columns, row)))
            else:
                values.append(g.call_function(operator.getitem, (x, (Ellipsis, ins.index))))
        elif ins.op == "param":
            key = plan.parameter_keys[ins.index or 0]  # the user's name, or zpml_p{i} if unsafe
            p = g.get_attr(f"coefficients.{key}")
            values.append(g.call_method("to", (p, dtype)))
        elif ins.op == "const":
            values.append(_f(ins.const))
        elif autograd_reuse and not inplace:
            node = _emit_autograd_safe(g, values, ins, i, dead_unsaved, i in critical)
            if node is None and ins.op == "axpy" and i not in critical:
                node = _fused_axpy(g, values, ins)
            values.append(node if node is not None else TORCH_OPS[ins.op](g, values, ins))
        elif ins.op == "axpy" and len(values) not in critical:
            a, b = ins.args
            if dead(a, len(values)):
                values.append(
                    g.call_method("add_", (values[a], values[b]), {"alpha": _f(ins.const)})
                )
            elif dead(b, len(values)):
                values.append(_fused_axpy(g, values, ins, out=values[b]))
            else:
                values.append(_fused_axpy(g, values, ins))
        else:
            node = _emit_inplace(g, values, ins, len(values), dead) if inplace else None
            values.append(node if node is not None else TORCH_OPS[ins.op](g, values, ins))
    return values


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
        if program.instrs[idx].op == "const":
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
        if program.instrs[idx].op == "input" or idx in exposed:
            v = g.call_method("clone", (v,), {"memory_format": torch.contiguous_format})
        exposed.add(idx)
        return v

    results = []
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
                empty = g.call_function(operator.getitem, (x, (Ellipsis, slice(None, 0))))
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
    "RationalGraph",
    "build_graph",
    "column_layout",
    "emit_values",
    "gather_columns",
    "mask_inputs",
]
