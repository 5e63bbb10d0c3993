"""Program -> torch module (a ``torch.fx.GraphModule`` with readable code).

The generated ``forward(x)`` is straight-line code (see ``module.code``): one
line per instruction, no loops, no generic ``pow``. Learnable coefficients
are ``nn.Parameter`` scalars, cast to the input's dtype, so float32 and
float64 inputs are both computed in their own precision; exact constants are
inlined as literals (rounded once to the input's dtype by torch) and kept
exactly in ``module.exact_constants`` (and as a float64 buffer).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import sympy as sp
import torch
from torch import fx, nn

from zpml_symbolic.emit.plan import Plan, as_frus, coefficient_values, make_plan
from zpml_symbolic.emit.program import Instr
from zpml_symbolic.emit.torch_adjoint import AdjointRunner
from zpml_symbolic.errors import EmitError, InvalidArgumentError
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.frontend.sympy_in import to_sympy
from zpml_symbolic.ir import node as ir
from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.traverse import postorder

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


def _param_key(name: str) -> str:
    if not name.isidentifier():
        raise EmitError(f"parameter name {name!r} is not a Python identifier; rename the symbol")
    return name


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
            name = program.parameters[ins.index or 0]
            p = g.get_attr(f"coefficients.{_param_key(name)}")
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
    full = batch.full

    results = []
    for names in plan.names:
        P = full(program.outputs[names.P])
        Q = full(program.outputs[names.Q])
        rows = _factor_rows(plan, names.V, layout)
        if names.V and stack_factors and columns is not None and rows == list(range(len(names.V))):
            # every factor is an input column, stored first in the column buffer: a view
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


class RationalModule(nn.Module):
    """Compiled rational expression(s): ``forward(x) -> (P, Q)`` or ``(P, Q, V)``.

    ``x`` has shape ``[..., len(variables)]`` (columns in :attr:`variables`
    order); outputs have the batch shape ``[...]`` and ``V`` is ``[..., k]``
    (returned only when there are retained validity factors). With several
    expressions the result is a tuple of such tuples.

    Two FX graphs compute the same operations in the same order: the
    functional one (``module.code``) runs whenever autograd records; the
    in-place one (``module.inference_code``) reuses dead temporaries' buffers
    and runs otherwise (``torch.no_grad()``, or nothing requires grad).
    ``torch.jit.script(module)`` scripts the functional graph.
    """

    def __init__(self, plan: Plan, coefficients: nn.ParameterDict, *, single: bool) -> None:
        super().__init__()
        consts = sorted({i.const for i in plan.program.instrs if i.const is not None})
        self.coefficients = coefficients
        self.register_buffer(
            "exact_constants_f64", torch.tensor([float(c) for c in consts], dtype=torch.float64)
        )
        holder = _Holder(coefficients)
        # Not registered as submodules: they share this module's parameters.
        object.__setattr__(
            self,
            "_functional",
            RationalGraph(holder, build_graph(plan, autograd_reuse=True), "RationalGraph"),
        )
        object.__setattr__(
            self,
            "_inplace",
            RationalGraph(holder, build_graph(plan, inplace=True), "RationalInferenceGraph"),
        )
        object.__setattr__(self, "_adjoint", AdjointRunner(plan, holder))
        self.plan = plan
        self.single = single
        self.exact_constants = tuple(consts)
        #: gradients through the generated reverse mode (False: plain autograd of ``code``)
        self.generated_backward = True

    def _records(self, x: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.coefficients.values())
        )

    def _use_adjoint(self) -> bool:
        return self.generated_backward and not (
            torch.compiler.is_compiling()
            or torch.jit.is_scripting()
            or torch.jit.is_tracing()
            or torch._C._are_functorch_transforms_active()
        )

    def forward(self, x: torch.Tensor) -> Any:
        """``(P, Q[, V])`` of every compiled expression at ``x`` (shape ``[..., n_vars]``)."""
        if self._records(x):
            if self._use_adjoint():
                return self._run_adjoint(x, stack_factors=True)
            return self._functional(x)
        return self._inplace(x)

    def _run_adjoint(self, x: torch.Tensor, *, stack_factors: bool) -> Any:
        """Outputs through the generated reverse mode (see :mod:`torch_adjoint`)."""
        program = self.plan.program
        params = [getattr(self.coefficients, _param_key(n)) for n in self.plan.parameters]
        computed = self._adjoint(x, params)

        def out(name: str) -> torch.Tensor:
            k = program.outputs[name]
            got = computed.get(k)
            if got is not None:
                return got
            ins = program.instrs[k]
            if ins.op == "input":
                return x[..., ins.index]
            return x.new_full(x.shape[:-1], float(ins.const or 0))

        results = []
        for names in self.plan.names:
            P, Q = out(names.P), out(names.Q)
            if not names.V:
                results.append((P, Q))
            elif not stack_factors:
                results.append((P, Q, tuple(out(n) for n in names.V)))
            elif len(names.V) == 1:
                results.append((P, Q, out(names.V[0]).unsqueeze(-1)))
            else:
                results.append((P, Q, torch.stack([out(n) for n in names.V], dim=-1)))
        return results[0] if len(results) == 1 else tuple(results)

    def forward_factors(self, x: torch.Tensor) -> Any:
        """Like :meth:`forward`, but validity factors as a tuple of ``[...]`` tensors (no stacking)."""
        graphs = self.__dict__.get("_split_graphs")
        if graphs is None:
            holder = _Holder(self.coefficients)
            graphs = (
                RationalGraph(
                    holder,
                    build_graph(self.plan, stack_factors=False, autograd_reuse=True),
                    "RationalGraph",
                ),
                RationalGraph(
                    holder,
                    build_graph(self.plan, inplace=True, stack_factors=False),
                    "RationalInferenceGraph",
                ),
            )
            object.__setattr__(self, "_split_graphs", graphs)
        if self._records(x):
            if self._use_adjoint():
                return self._run_adjoint(x, stack_factors=False)
            return graphs[0](x)
        return graphs[1](x)

    def __prepare_scriptable__(self) -> fx.GraphModule:
        return self._functional

    @property
    def code(self) -> str:
        """The generated forward (functional graph): one line per operation."""
        return self._functional.code

    @property
    def inference_code(self) -> str:
        """The generated in-place inference forward."""
        return self._inplace.code

    @property
    def variables(self) -> tuple[str, ...]:
        """Input column order."""
        return self.plan.variables

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the learnable coefficients (keys of ``self.coefficients``)."""
        return self.plan.parameters

    @property
    def frus(self) -> tuple[FlattenedFRU, ...]:
        """The compiled FlattenedFRUs."""
        return self.plan.frus

    def coefficient_values(self) -> dict[str, float]:
        """Current coefficient values as Python floats."""
        return {n: float(getattr(self.coefficients, n).detach()) for n in self.plan.parameters}

    def to_sympy(self) -> sp.Expr | tuple[sp.Expr, ...]:
        """The user's expression(s), structure kept, with current coefficient values.

        Each coefficient becomes the exact rational of its current float value.
        """
        values = {n: Fraction(v) for n, v in self.coefficient_values().items()}
        exprs = tuple(to_sympy(substitute_parameters(f.root, values)) for f in self.plan.frus)
        return exprs[0] if self.single else exprs


def substitute_parameters(root: Node, values: Mapping[str, Fraction]) -> Node:
    """``root`` with each ``PARAM`` named in ``values`` replaced by its constant."""
    out: dict[Node, Node] = {}
    for node in postorder(root):
        if node.op is Op.PARAM and str(node.value) in values:
            out[node] = ir.const(values[str(node.value)])
        elif node.args:
            out[node] = ir.intern(node.op, tuple(out[a] for a in node.args), node.value)
        else:
            out[node] = node
    return out[root]


def _coefficients(
    plan: Plan, init: Mapping[Any, float] | None, dtype: torch.dtype
) -> nn.ParameterDict:
    values = coefficient_values(plan, init)
    return nn.ParameterDict(
        {_param_key(n): nn.Parameter(torch.tensor(values[n], dtype=dtype)) for n in plan.parameters}
    )


def lift_float_literals(expr: sp.Expr, *, prefix: str = "c") -> tuple[sp.Expr, dict[str, float]]:
    """Turn every sympy Float in ``expr`` into a learnable Coefficient ``{prefix}{k}``.

    Returns the new (unevaluated, structure-kept) expression and the initial
    values. Exact Integers and Rationals stay constants.
    """
    from zpml_symbolic.frontend.coefficient import Coefficient
    from zpml_symbolic.frontend.sympy_in import from_sympy

    front = from_sympy(expr)
    floats = [a for a in sp.preorder_traversal(expr) if isinstance(a, sp.Float)]
    mapping: dict[Fraction, str] = {}
    init: dict[str, float] = {}
    for f in floats:
        from zpml_symbolic.frontend.sympy_in import float_to_fraction

        value = float_to_fraction(f)
        if value not in mapping:
            name = f"{prefix}{len(mapping)}"
            mapping[value] = name
            init[name] = float(f)
    out: dict[Node, Node] = {}
    for node in postorder(front.root):
        if node.op is Op.CONST and node.value in mapping:
            out[node] = ir.param(mapping[node.value])  # type: ignore[index]
        elif node.args:
            out[node] = ir.intern(node.op, tuple(out[a] for a in node.args), node.value)
        else:
            out[node] = node
    lifted = to_sympy(out[front.root])
    del Coefficient
    return lifted, init


def to_torch(
    fru_or_expr: FlattenedFRU | sp.Expr | str | Sequence[FlattenedFRU | sp.Expr | str],
    *,
    parameters: Sequence[sp.Symbol | str] = (),
    init: Mapping[Any, float] | None = None,
    dtype: torch.dtype = torch.float32,
    variables: Sequence[str | sp.Symbol] | None = None,
    learnable_literals: bool = False,
) -> RationalModule:
    """Compile FRU(s) or expression(s) into a torch module returning ``(P, Q[, V])``.

    ``parameters``/``init``: learnable coefficients and their initial values
    (``dtype`` is the parameters' storage dtype). ``learnable_literals=True``
    turns the expression's float literals into coefficients initialised at
    their values (see :func:`lift_float_literals`). ``variables`` fixes the
    input column order for several expressions.
    """
    if dtype not in (torch.float32, torch.float64):
        raise InvalidArgumentError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if learnable_literals:
        if isinstance(fru_or_expr, FlattenedFRU) or not isinstance(fru_or_expr, sp.Basic | str):
            raise InvalidArgumentError(
                "learnable_literals=True needs a single sympy expression or string"
            )
        expr = fru_or_expr
        if isinstance(expr, str):
            from zpml_symbolic.frontend.parser import parse

            expr = parse(expr, parameters=parameters)
        expr, lifted = lift_float_literals(expr)
        init = {**lifted, **dict(init or {})}
        parameters = tuple(parameters) + tuple(lifted)
        fru_or_expr = expr
    frus, single = as_frus(fru_or_expr, parameters=parameters)
    plan = make_plan(frus, variables=variables)
    return RationalModule(plan, _coefficients(plan, init, dtype), single=single)


__all__ = [
    "TORCH_OPS",
    "RationalModule",
    "build_graph",
    "lift_float_literals",
    "substitute_parameters",
    "to_torch",
]
