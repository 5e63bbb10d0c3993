"""ONNX graph building blocks shared by :func:`~zpml_symbolic.emit.onnx_emit.to_onnx`
and :func:`~zpml_symbolic.emit.onnx_emit.strict_decoder_model`.

:class:`_Graph` accumulates nodes and initializers with unique names and
node-level CSE; :class:`OnnxLowering` turns every program op into ONNX nodes;
``_strict`` appends the docs/semantics.md §3 decoding (masks, provenance, decoded)
with the thresholds read from reserved initializers (``zpml_t_*``) so they
are never folded away; ``_tile`` wraps a graph body in a ``Scan`` over row
tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from zpml_core.arrays import effective_threshold
from zpml_core.config import InferenceConfig
from zpml_core.result import STRICT_OUTPUT_NAMES
from zpml_symbolic.emit.lowering.interpreter import Interpreter, column
from zpml_symbolic.emit.lowering.ops import OPERATIONS
from zpml_symbolic.emit.lowering.plan import Plan

#: name of the single graph input, of shape ``[batch, n_vars]``
INPUT_NAME = "x"
#: symbolic name of the dynamic batch dimension
BATCH_DIM = "batch"
#: the strict outputs, in order (docs/semantics.md section 3), before the per-factor outputs
OUTPUT_NAMES: tuple[str, ...] = STRICT_OUTPUT_NAMES
T_INFER = "zpml_t_infer"
T_TRAIN = "zpml_t_train"
T_FACTOR = "zpml_t_factor_{}"
PRODUCER_NAME = "zpml_symbolic"
DEFAULT_OPSET = 21
#: ``Shape(start=, end=)`` needs opset 15
MIN_OPSET = 15
METADATA_PREFIX = "zpml."

_DTYPES: dict[str, tuple[int, type[np.floating[Any]]]] = {
    "float32": (TensorProto.FLOAT, np.float32),
    "float64": (TensorProto.DOUBLE, np.float64),
}
_NP = {
    "bool": np.bool_,
    "int8": np.int8,
    "int64": np.int64,
    "float32": np.float32,
    "float64": np.float64,
}


# --------------------------------------------------------------------------- graph builder


class _Graph:
    """Accumulates nodes and initializers with unique names, node-level CSE and
    rank tracking (0: a 0-d scalar, 1: a ``[batch]`` tensor)."""

    def __init__(self, dtype: str, reserved: set[str], input_name: str = INPUT_NAME) -> None:
        self.elem = _DTYPES[dtype][0]
        self.np_type = _DTYPES[dtype][1]
        self.taken = set(reserved)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.rank: dict[str, int] = {}
        #: Python values of build-time constants (not of learnable parameters)
        self.known: dict[str, Any] = {}
        self._consts: dict[tuple[str, bytes], TensorProto] = {}
        self._cse: dict[tuple[object, ...], str] = {}
        self._renames: dict[str, str] = {}
        self._node_outputs: set[str] = set()
        #: multi-output nodes (Split) by key
        self.multi: dict[tuple[object, ...], list[str]] = {}
        #: default-domain opset the graph targets
        self.opset = DEFAULT_OPSET
        #: the ``[rows, n_vars]`` input the program's columns are read from
        self.input = input_name
        #: the graph input whose first dimension is the batch
        self.batch_ref = input_name

    def fresh(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... when taken."""
        name, n = base, 0
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def initializer(self, name: str, value: float, doc: str) -> str:
        """A 0-d float initializer with a fixed ``name`` (not shared, not build-time known)."""
        with np.errstate(over="ignore"):
            arr = np.asarray(value, dtype=self.np_type)
        tensor = numpy_helper.from_array(arr, name)
        tensor.doc_string = doc
        self.initializers.append(tensor)
        self.rank[name] = 0
        return name

    def const(
        self, value: Any, kind: str | None = None, *, hint: str | None = None, exact: str = ""
    ) -> str:
        """A shared 0-d constant initializer (float dtype unless ``kind``); ``exact`` is documented."""
        arr: np.ndarray
        with np.errstate(over="ignore"):
            arr = np.asarray(value, dtype=self.np_type if kind is None else _NP[kind])
        key = (str(arr.dtype), arr.tobytes())
        tensor = self._consts.get(key)
        if tensor is None:
            name = self.fresh(hint or _const_name(arr))
            tensor = numpy_helper.from_array(arr, name)
            self._consts[key] = tensor
            self.initializers.append(tensor)
            self.rank[name] = 0
            self.known[name] = arr[()]
        if exact and exact not in tensor.doc_string.split("; "):
            tensor.doc_string = f"{tensor.doc_string}; {exact}" if tensor.doc_string else exact
        return tensor.name

    def node(
        self, op: str, inputs: Sequence[str], base: str, *, rank: int | None = None, **attrs: Any
    ) -> str:
        """Output of ``op(inputs)`` (an existing identical node is reused)."""
        key = (op, tuple(inputs), tuple(sorted(attrs.items())))
        found = self._cse.get(key)
        if found is not None:
            return found
        out = self.fresh(base)
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        self._node_outputs.add(out)
        self.rank[out] = (
            max((self.rank.get(i, 0) for i in inputs), default=0) if rank is None else rank
        )
        self._cse[key] = out
        return out

    # ------------------------------------------------------------- mask algebra
    def is_known(self, v: str, value: Any) -> bool:
        return v in self.known and bool(self.known[v] == value)

    def or_(self, items: Sequence[str], base: str) -> str:
        """``items[0] | items[1] | ...`` with build-time constants folded."""
        if any(self.is_known(v, True) for v in items):
            return self.const(True, "bool")
        rest = list(dict.fromkeys(v for v in items if not self.is_known(v, False)))
        if not rest:
            return self.const(False, "bool")
        acc = rest[0]
        for v in rest[1:]:
            acc = self.node("Or", [acc, v], base)
        return acc

    def nonfinite(self, v: str, base: str) -> str:
        """``~isfinite(v)``: ``v - v`` is NaN exactly when ``v`` is NaN or +-Inf."""
        if v in self.known:
            return self.const(not np.isfinite(self.known[v]), "bool")
        return self.node("IsNaN", [self.node("Sub", [v, v], f"{base}_diff")], base)

    def nonfinite_abs(self, v: str, av: str, base: str) -> str:
        """``~isfinite(v)`` given ``av = |v|``: ``Not(|v| < inf)`` (NaN compares false)."""
        if v in self.known:
            return self.const(not np.isfinite(self.known[v]), "bool")
        return self.node("Not", [self.less(av, self.const(math.inf), f"{base}_finite")], base)

    def is_zero(self, v: str, av: str, base: str) -> str:
        """``v == 0`` (an equality, never a subnormal threshold) given ``av = |v|``."""
        if v in self.known:
            return self.const(bool(self.known[v] == 0), "bool")
        return self.node("Equal", [av, self.const(0.0)], base)

    def less(self, a: str, t: str, base: str) -> str:
        return self.node("Less", [a, t], base)

    def abs_(self, v: str, base: str) -> str:
        if v in self.known:
            return self.const(abs(self.known[v]))
        return self.node("Abs", [v], base)

    # ------------------------------------------------------------------ outputs
    def batch_shape(self) -> str:
        """``[batch]`` as a 1-D shape tensor, read from the graph's batch reference input."""
        return self.node("Shape", [self.batch_ref], "batch_shape", rank=1, start=0, end=1)

    def expose(self, v: str, out: str) -> None:
        """Make ``v`` the graph output ``out`` of shape ``[batch]``.

        A node output not yet exposed is renamed (no extra node); a 0-d value
        is expanded; anything else gets an ``Identity``.
        """
        self.taken.add(out)
        if self.rank.get(v, 0) == 0:
            self.nodes.append(helper.make_node("Expand", [v, self.batch_shape()], [out]))
        elif v in self._node_outputs and v not in self._renames:
            self._renames[v] = out
        else:
            self.nodes.append(helper.make_node("Identity", [v], [out]))

    def finish(self) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
        """Nodes (renames applied) and initializers (shared constants no node reads
        dropped, e.g. a constant ``Q == 1`` that needs no division)."""
        r = self._renames
        for n in self.nodes:
            n.input[:] = [r.get(i, i) for i in n.input]
            n.output[:] = [r.get(o, o) for o in n.output]
            for attr in n.attribute:  # subgraphs (If branches) read outer values by name
                if attr.type == onnx.AttributeProto.GRAPH:
                    for sub in attr.g.node:
                        sub.input[:] = [r.get(i, i) for i in sub.input]
        used = {i for n in self.nodes for i in n.input}
        shared = {t.name for t in self._consts.values()}
        return self.nodes, [t for t in self.initializers if t.name in used or t.name not in shared]


def _const_name(arr: np.ndarray) -> str:
    v = arr[()]
    if arr.dtype == np.bool_:
        return f"c_{str(bool(v)).lower()}"
    if arr.dtype.kind == "i":
        return f"c_{arr.dtype.name}_{int(v)}".replace("-", "m")
    if math.isnan(v):
        return "c_nan"
    if math.isinf(v):
        return "c_inf" if v > 0 else "c_minf"
    return "c_" + repr(float(v)).removesuffix(".0").replace(".", "p").replace("+", "").replace(
        "-", "m"
    )


def _round(value: Fraction) -> float:
    """``float(value)`` (round to nearest float64), +-inf beyond the float64 range."""
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _exact_const(g: _Graph, c: Fraction) -> str:
    """The initializer of exact constant ``c`` rounded to the dtype, named after ``c``."""
    text = str(c.numerator) if c.denominator == 1 else f"{c.numerator}_{c.denominator}"
    hint = "c_" + text.replace("-", "m") if len(text) <= 24 else None
    return g.const(_round(c), hint=hint, exact=f"exact value {c}")


# --------------------------------------------------------------------------- lowering


def _instruction_names(plan: Plan) -> dict[int, str]:
    out: dict[int, str] = {}
    for names in plan.names:
        for label in (names.P, names.Q, *names.V):
            out.setdefault(plan.program.outputs[label], label)
    return out


def _column(g: _Graph, j: int, n: int, base: str) -> str:
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


def _lower_program(g: _Graph, plan: Plan, param_names: dict[str, str] | None = None) -> list[str]:
    """One value name per instruction (nodes for operations, initializers otherwise).

    ``param_names``: initializer name of each parameter (default: the parameter's name).
    """
    return OnnxLowering(g, plan, param_names).run()


@column("onnx")
class OnnxLowering(Interpreter[str]):
    """The program as nodes of ``g``: one value name per instruction. Values named by the
    plan (``P``, ``Q``, ``V_i``) keep their names, other temporaries are ``t{i}``; exact
    constants become shared initializers named after their value."""

    def __init__(self, g: _Graph, plan: Plan, param_names: dict[str, str] | None = None) -> None:
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
        return _exact_const(self.g, value)

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
        return self.g.node("Mul", [a, _exact_const(self.g, c)], self._base())

    def shift(self, a: str, c: Fraction) -> str:
        op = "Sub" if c < 0 else "Add"  # a + c == a - |c| exactly; reads better
        return self.g.node(op, [a, _exact_const(self.g, abs(c))], self._base())

    def axpy(self, a: str, b: str, c: Fraction) -> str:
        base = self._base()
        prod = self.g.node("Mul", [b, _exact_const(self.g, abs(c))], f"{base}_term")
        return self.g.node("Sub" if c < 0 else "Add", [a, prod], base)


#: op -> how to build it in the ONNX graph (the operations of the ``onnx`` column;
#: ``input``, ``param`` and ``const`` become Split/Squeeze nodes and initializers)
ONNX_OPS: dict[str, Callable[..., str]] = {op: getattr(OnnxLowering, op.value) for op in OPERATIONS}


def _strict(
    g: _Graph,
    P: str,
    Q: str,
    factors: Sequence[str],
    factor_names: Sequence[Sequence[str]],
    t_factors: Sequence[str],
    has_train: bool,
    core_names: Sequence[str] = OUTPUT_NAMES,
    q_leaves: Sequence[str] = (),
    narrow: str | None = None,
) -> None:
    """Append the docs/semantics.md §3 decoding of ``(P, Q, V)`` and expose every output.

    ``q_leaves``: the values of the factors ``Q`` is the product of; where ``Q == 0``
    but none of them is 0, ``Q`` underflowed: a fault, not a semantic bottom
    (:func:`_underflow`). ``narrow``: dtype name ``decoded`` is cast to at the end
    (``compute_dtype``); samples where that cast overflows are faults.
    """
    qc = g.known.get(Q)
    aq = g.abs_(Q, "abs_Q")
    if qc is not None and np.isfinite(qc):  # constant Q (e.g. 1 for polynomials)
        q_safe = Q if qc != 0 else g.const(1.0)
        quotient = P if g.is_known(q_safe, 1.0) else g.node("Div", [P, q_safe], "quotient")
        fault_q = g.nonfinite(quotient, "fault_PQ")
        q_zero = g.const(bool(qc == 0), "bool")
    else:
        # Q + (|Q| == 0): Q, or 1 where Q == 0 (as the numpy kernel; Where is slower in ORT)
        q_zero = g.node("Equal", [aq, g.const(0.0)], "Q_is_zero")
        q_safe = g.node("Add", [Q, g.node("Cast", [q_zero], "Q_zero_one", to=g.elem)], "Q_safe")
        quotient = g.node("Div", [P, q_safe], "quotient")
        diff = g.node("Sub", [quotient, quotient], "fault_PQ_diff")  # NaN iff quotient non-finite
        fault_q = g.node("IsNaN", [g.node("Mul", [diff, Q], "fault_PQ_diff_Q")], "fault_PQ")
    # thresholds are never folded, so ``semantic`` and ``bottom`` are always graph values
    # exact zeros by equality, OR-ed with the threshold test: a subnormal threshold
    # reads as 0 under denormals-as-zero (session.set_denormal_as_zero), so
    # ``Less(|Q|, t)`` alone would accept Q == 0 there
    semantic_q = g.or_([q_zero, g.less(aq, T_INFER, "below_t_infer")], "semantic_Q")
    if q_leaves and not (qc is not None and np.isfinite(qc)):
        fault_q, semantic_q = _underflow(g, q_zero, fault_q, semantic_q, q_leaves)
    faults, semantics = [fault_q], [semantic_q]
    per_factor = []
    for i, (v, t) in enumerate(zip(factors, t_factors, strict=True)):
        av = g.abs_(v, f"abs_V{i}")
        f_i = g.nonfinite_abs(v, av, f"fault_V{i}")
        s_i = g.or_(
            [g.is_zero(v, av, f"V{i}_is_zero"), g.less(av, t, f"below_t_V{i}")], f"semantic_V{i}"
        )
        faults.append(f_i)
        semantics.append(s_i)
        per_factor.append((v, f_i, s_i))
    fault = g.or_(faults, "fault")
    semantic = g.or_(semantics, "semantic")
    bottom = g.or_([fault, semantic], "bottom")
    if has_train:
        below_train = g.less(aq, T_TRAIN, "below_t_train")
        gap = g.node("And", [below_train, g.node("Not", [bottom], "not_bottom")], "gap")
    else:
        gap = g.const(False, "bool")
    decoded = g.node("Where", [bottom, g.const(math.nan), quotient], "masked_quotient")
    if narrow is not None:  # compute_dtype: decoded back to the input dtype; overflow is a fault
        cast = g.node("Cast", [decoded], "decoded_narrow", to=_DTYPES[narrow][0])
        over = g.node("IsInf", [cast], "narrow_overflow")
        fault = g.or_([fault, over], "fault_narrow")
        bottom = g.or_([bottom, over], "bottom_narrow")
        if has_train:
            gap = g.node("And", [gap, g.node("Not", [over], "not_overflow")], "gap_narrow")
        decoded = g.node("Where", [over, g.const(math.nan, narrow), cast], "decoded_out")
    provenance = _provenance(g, fault, semantic)
    for value, name in zip(
        (decoded, bottom, gap, fault, semantic, provenance), core_names, strict=True
    ):
        g.expose(value, name)
    for values, names in zip(per_factor, factor_names, strict=True):
        for value, name in zip(values, names, strict=True):
            g.expose(value, name)


def _underflow(
    g: _Graph, q_zero: str, fault_q: str, semantic_q: str, leaves: Sequence[str]
) -> tuple[str, str]:
    """``(fault_Q, semantic_Q)`` with the samples where ``Q`` underflowed moved to the faults.

    ``under = (Q == 0) & ~(leaf_0 == 0 | leaf_1 == 0 | ...)``: a product of nonzero
    factors is nonzero, so its computed zero is a floating-point failure. The zero
    tests run in the ``then`` branch of an ``If`` on "some ``Q == 0`` in this
    batch/tile" (one ``ReduceSum`` of the existing ``Cast(Q == 0)``); otherwise the
    masks pass through unchanged.
    """
    count = g.node(
        "ReduceSum",
        [g.node("Cast", [q_zero], "Q_zero_one", to=g.elem)],
        "Q_zeros",
        rank=0,
        keepdims=0,
    )
    cond = g.node("Cast", [count], "any_Q_zero", rank=0, to=TensorProto.BOOL)
    zero = g.const(0.0)
    nodes = []
    tests = []
    for j, leaf in enumerate(leaves):
        out = g.fresh(f"Q_factor_{j}_is_zero")
        nodes.append(helper.make_node("Equal", [leaf, zero], [out]))
        tests.append(out)
    acc = tests[0]
    for t in tests[1:]:
        out = g.fresh("Q_factor_zero")
        nodes.append(helper.make_node("Or", [acc, t], [out]))
        acc = out
    names = {k: g.fresh(k) for k in ("no_Q_factor_zero", "Q_underflow", "not_Q_underflow")}
    nodes.append(helper.make_node("Not", [acc], [names["no_Q_factor_zero"]]))
    nodes.append(
        helper.make_node("And", [q_zero, names["no_Q_factor_zero"]], [names["Q_underflow"]])
    )
    nodes.append(helper.make_node("Not", [names["Q_underflow"]], [names["not_Q_underflow"]]))
    then_f, then_s, else_f, else_s = (
        g.fresh(n) for n in ("fault_Q_uf", "semantic_Q_uf", "fault_Q_same", "semantic_Q_same")
    )
    nodes.append(helper.make_node("Or", [fault_q, names["Q_underflow"]], [then_f]))
    nodes.append(helper.make_node("And", [semantic_q, names["not_Q_underflow"]], [then_s]))

    def info(n: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(n, TensorProto.BOOL, None)

    then_branch = helper.make_graph(
        nodes, g.fresh("Q_underflow_then"), [], [info(then_f), info(then_s)]
    )
    else_branch = helper.make_graph(
        [
            helper.make_node("Identity", [fault_q], [else_f]),
            helper.make_node("Identity", [semantic_q], [else_s]),
        ],
        g.fresh("Q_underflow_else"),
        [],
        [info(else_f), info(else_s)],
    )
    fault_out, semantic_out = g.fresh("fault_Q_checked"), g.fresh("semantic_Q_checked")
    g.nodes.append(
        helper.make_node(
            "If",
            [cond],
            [fault_out, semantic_out],
            then_branch=then_branch,
            else_branch=else_branch,
        )
    )
    for n in (fault_out, semantic_out):
        g.rank[n] = 1
        g._node_outputs.add(n)
    return fault_out, semantic_out


def _provenance(g: _Graph, fault: str, semantic: str) -> str:
    """int8 ``fault + 2*semantic`` (0 finite, 1 fault, 2 semantic, 3 mixed)."""
    if fault in g.known:  # e.g. a constant expression: no fault possible
        f = int(g.known[fault])
        return g.node("Where", [semantic, g.const(2 + f, "int8"), g.const(f, "int8")], "provenance")
    fault_code = g.node("Cast", [fault], "fault_code", to=TensorProto.INT8)
    semantic_code = g.node("Cast", [semantic], "semantic_code", to=TensorProto.INT8)
    once = g.node("Add", [fault_code, semantic_code], "provenance_partial")
    return g.node("Add", [once, semantic_code], "provenance")


def _strict_outputs(
    elem: int,
    factor_names: Sequence[Sequence[str]],
    core_names: Sequence[str] = OUTPUT_NAMES,
    dim: str = BATCH_DIM,
    decoded_elem: int | None = None,
) -> list[onnx.ValueInfoProto]:
    """Value infos of the strict outputs then the per-factor outputs, all ``[dim]``
    (``decoded`` in ``decoded_elem`` when given: ``compute_dtype``)."""
    d_elem = elem if decoded_elem is None else decoded_elem
    outputs = [helper.make_tensor_value_info(core_names[0], d_elem, [dim])]
    outputs += [helper.make_tensor_value_info(n, TensorProto.BOOL, [dim]) for n in core_names[1:5]]
    outputs.append(helper.make_tensor_value_info(core_names[5], TensorProto.INT8, [dim]))
    for value, fault_mask, semantic_mask in factor_names:
        outputs.append(helper.make_tensor_value_info(value, elem, [dim]))
        outputs.append(helper.make_tensor_value_info(fault_mask, TensorProto.BOOL, [dim]))
        outputs.append(helper.make_tensor_value_info(semantic_mask, TensorProto.BOOL, [dim]))
    return outputs


# --------------------------------------------------------------------------- row tiling

#: name of the tile input inside the Scan body, ``[tile, n_vars]``
TILE_INPUT = "x_tile"
#: symbolic name of the tile dimension inside the Scan body
TILE_DIM = "tile"
#: suffix of the Scan body's outputs (the graph outputs keep the plain names)
TILE_SUFFIX = "_tile"


def _tile(
    g: _Graph,
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


def _threshold_initializers(
    g: _Graph, cfg: InferenceConfig, taus: Sequence[float], dtype: str
) -> tuple[float, float | None, list[float]]:
    """Bake the effective thresholds into ``g`` under their reserved names."""
    t_infer, t_train = cfg.thresholds_for(dtype)
    t_factors = [
        effective_threshold(tau, dtype, f"validity_taus[{i}]") for i, tau in enumerate(taus)
    ]
    doc = "effective threshold of {} in " + dtype + ": |v| < t is the exact real test |v| < {}"
    g.initializer(T_INFER, t_infer, doc=doc.format(f"tau_infer={cfg.tau_infer!r}", "tau_infer"))
    if t_train is not None:
        g.initializer(T_TRAIN, t_train, doc=doc.format(f"tau_train={cfg.tau_train!r}", "tau_train"))
    for i, (tau, t) in enumerate(zip(taus, t_factors, strict=True)):
        g.initializer(
            T_FACTOR.format(i), t, doc=doc.format(f"validity_taus[{i}]={tau!r}", f"tau_{i}")
        )
    return t_infer, t_train, t_factors
