"""Program -> torch module (a ``torch.fx.GraphModule`` with readable code).

The generated ``forward(x)`` is straight-line code (see ``module.code``): one
line per instruction, no loops, no generic ``pow``. Learnable coefficients
are ``nn.Parameter`` scalars, cast to the input's dtype, so float32 and
float64 inputs are both computed in their own precision; exact constants are
inlined as literals (rounded once to the input's dtype by torch) and kept
exactly in ``module.exact_constants`` (and as a float64 buffer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import sympy as sp
import torch
from torch import fx, nn

from zpml_symbolic.emit.analyses.underflow import resolve_torch_dtype, wider_torch
from zpml_symbolic.emit.backends.inputs import check_torch_input
from zpml_symbolic.emit.backends.torch_adjoint import AdjointRunner
from zpml_symbolic.emit.backends.torch_columns import column_layout  # noqa: F401 - re-exported
from zpml_symbolic.emit.backends.torch_graph import (  # noqa: F401 - re-exported building blocks
    TORCH_OPS,
    RationalGraph,
    _Holder,
    build_graph,
)
from zpml_symbolic.emit.lowering.ops import OpCode
from zpml_symbolic.emit.lowering.plan import Plan, check_constants, coefficient_values, make_plan
from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.flatten.coerce import as_frus
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.frontend.sympy_in import to_sympy
from zpml_symbolic.ir import node as ir
from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.traverse import postorder


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

    # set with object.__setattr__ (not submodules: they share this module's parameters)
    _functional: RationalGraph
    _inplace: RationalGraph
    _adjoint: AdjointRunner

    def __init__(
        self,
        plan: Plan,
        coefficients: nn.ParameterDict,
        *,
        single: bool,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        #: evaluate in at least this dtype (None: the input's dtype); see :func:`to_torch`
        self.compute_dtype = compute_dtype
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
        #: input dtypes whose constants were checked (:func:`check_constants`)
        self._dtypes_checked: set[torch.dtype] = set()
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

    def check_input(self, x: Any, where: str = "RationalModule") -> None:
        """Raise a typed error unless ``x`` is a real floating tensor of shape ``[*batch, n_vars]``
        on the coefficients' device (attribute checks only; see :mod:`.inputs`)."""
        device = self.exact_constants_f64.device if self.plan.parameters else None
        check_torch_input(x, self.plan.variables, where, device)
        dtype = self.evaluation_dtype(x.dtype)
        if dtype not in self._dtypes_checked and not torch.compiler.is_compiling():
            check_constants(self.plan, str(dtype).removeprefix("torch."))
            self._dtypes_checked.add(dtype)

    def evaluation_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The dtype ``P, Q, V`` are computed in for inputs of ``dtype`` (the wider of it and
        :attr:`compute_dtype`)."""
        return wider_torch(dtype, self.compute_dtype)

    def _widen(self, x: torch.Tensor) -> torch.Tensor:
        if self.compute_dtype is None:
            return x
        dtype = wider_torch(x.dtype, self.compute_dtype)
        return x if dtype == x.dtype else x.to(dtype)

    def forward(self, x: torch.Tensor) -> Any:
        """``(P, Q[, V])`` of every compiled expression at ``x`` (shape ``[*batch, n_vars]``),
        in :meth:`evaluation_dtype`."""
        self.check_input(x)
        x = self._widen(x)
        if self._records(x):
            if self._use_adjoint():
                return self._run_adjoint(x, stack_factors=True)
            return self._functional(x)
        return self._inplace(x)

    def _run_adjoint(self, x: torch.Tensor, *, stack_factors: bool) -> Any:
        """Outputs through the generated reverse mode (see :mod:`torch_adjoint`)."""
        program = self.plan.program
        params = [getattr(self.coefficients, k) for k in self.plan.parameter_keys]
        computed = self._adjoint(x, params)

        def out(name: str) -> torch.Tensor:
            k = program.outputs[name]
            got = computed.get(k)
            if got is not None:
                return got
            ins = program.instrs[k]
            if ins.op is OpCode.INPUT:  # a copy: outputs never alias the caller's x
                return x[..., ins.index].clone(memory_format=torch.contiguous_format)
            return x.new_full(x.shape[:-1], float(ins.const or 0))

        results: list[tuple[Any, ...]] = []
        uniform = len(self.plan.names) > 1  # several expressions: every entry is (P, Q, V)
        for names in self.plan.names:
            P, Q = out(names.P), out(names.Q)
            if not names.V and uniform:
                results.append(
                    (P, Q, () if not stack_factors else x.new_zeros(x.shape[:-1] + (0,)))
                )
            elif not names.V:
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
        self.check_input(x)
        return self._forward_factors(x)

    def _forward_factors(self, x: torch.Tensor) -> Any:
        x = self._widen(x)
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
        if self.compute_dtype is not None:
            from zpml_symbolic.errors import EmitError

            raise EmitError(
                "torch.jit.script scripts the functional graph, which computes in the input's "
                f"dtype; this module has compute_dtype={self.compute_dtype}: compile it without "
                "compute_dtype and cast the input yourself, or use torch.compile"
            )
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
    def gauges(self) -> tuple[Any, ...]:
        """Per expression, the power-of-two gauge of the outputs: returned ``P, Q`` are
        ``2**-gauge.pq`` times the canonical ones, ``V_i`` ``2**-gauge.v[i]`` (0 unless the
        canonical constants leave the float range; see :mod:`zpml_symbolic.emit.lowering.gauge`)."""
        return tuple(self.plan.gauge(k) for k in range(len(self.plan.frus)))

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
        keys = self.plan.parameter_keys
        return {
            n: float(getattr(self.coefficients, k).detach())
            for n, k in zip(self.plan.parameters, keys, strict=True)
        }

    def coefficient(self, name: str) -> nn.Parameter:
        """The ``nn.Parameter`` of coefficient ``name`` (the user's name, whatever its storage key)."""
        if name not in self.plan.parameters:
            raise InvalidArgumentError(
                f"{name!r} is not a coefficient of this module; its coefficients are "
                f"{list(self.plan.parameters)}"
            )
        key = self.plan.parameter_keys[self.plan.parameters.index(name)]
        return getattr(self.coefficients, key)

    def to_sympy(self) -> sp.Expr | tuple[sp.Expr, ...]:
        """The user's expression(s), structure kept, with current coefficient values.

        Each coefficient becomes the exact rational of its current float value
        (``x - 17/10``, not ``x - 1*17/10``).
        """
        from zpml_symbolic.frontend.decimal_number import fold_negated_numbers

        values = {n: Fraction(v) for n, v in self.coefficient_values().items()}
        with sp.evaluate(False):
            exprs = tuple(
                fold_negated_numbers(to_sympy(substitute_parameters(f.root, values)))
                for f in self.plan.frus
            )
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
        {
            k: nn.Parameter(torch.tensor(values[n], dtype=dtype))
            for n, k in zip(plan.parameters, plan.parameter_keys, strict=True)
        }
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
    compute_dtype: torch.dtype | None = None,
) -> RationalModule:
    """Compile FRU(s) or expression(s) into a torch module returning ``(P, Q[, V])``.

    ``parameters``/``init``: learnable coefficients and their initial values
    (``dtype`` is the parameters' storage dtype). ``learnable_literals=True``
    turns the expression's float literals into coefficients initialised at
    their values (see :func:`lift_float_literals`). ``variables`` fixes the
    input column order for several expressions. ``compute_dtype`` (``None`` or
    ``torch.float64``/``torch.float32``): evaluate in at least this dtype, so
    ``P, Q, V`` of a float32 input are computed and returned in float64 (for
    SI-sized constants or inputs whose ``P`` or ``Q`` leaves the float32 range;
    default: the input's own dtype, no cast).
    """
    compute_dtype = resolve_torch_dtype(compute_dtype)
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
    check_constants(plan, "float64")  # not representable in the widest dtype: refuse now
    return RationalModule(
        plan, _coefficients(plan, init, dtype), single=single, compute_dtype=compute_dtype
    )


__all__ = [
    "TORCH_OPS",
    "RationalModule",
    "build_graph",
    "lift_float_literals",
    "substitute_parameters",
    "to_torch",
]
