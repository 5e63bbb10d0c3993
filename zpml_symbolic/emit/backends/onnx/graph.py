"""The ONNX graph builder: :class:`Graph` accumulates nodes and initializers with unique
names, node-level CSE, rank tracking and build-time constant folding of masks; the
names and constants every module of the ONNX back end shares."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from zpml_core.outputs import STRICT_OUTPUT_NAMES

__all__ = [
    "BATCH_DIM",
    "DEFAULT_OPSET",
    "DTYPES",
    "INPUT_NAME",
    "METADATA_PREFIX",
    "MIN_OPSET",
    "OUTPUT_NAMES",
    "PRODUCER_NAME",
    "T_FACTOR",
    "T_INFER",
    "T_TRAIN",
    "Graph",
    "exact_const",
]

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

DTYPES: dict[str, tuple[int, type[np.floating[Any]]]] = {
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


class Graph:
    """Accumulates nodes and initializers with unique names, node-level CSE and
    rank tracking (0: a 0-d scalar, 1: a ``[batch]`` tensor)."""

    def __init__(self, dtype: str, reserved: set[str], input_name: str = INPUT_NAME) -> None:
        self.elem = DTYPES[dtype][0]
        self.np_type = DTYPES[dtype][1]
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


def exact_const(g: Graph, c: Fraction) -> str:
    """The initializer of exact constant ``c`` rounded to the dtype, named after ``c``."""
    text = str(c.numerator) if c.denominator == 1 else f"{c.numerator}_{c.denominator}"
    hint = "c_" + text.replace("-", "m") if len(text) <= 24 else None
    return g.const(_round(c), hint=hint, exact=f"exact value {c}")
