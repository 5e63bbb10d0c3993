"""Program -> ONNX model, built directly with ``onnx.helper`` (no tracing).

The graph evaluates ``P``, ``Q`` and the retained validity factors ``V_i`` of
one FlattenedFRU with the same :class:`~zpml_symbolic.emit.program.Program` as
the numpy and torch back-ends (one ONNX node per operation; ``axpy`` is
``Mul`` then ``Add``, two roundings, bit for bit like the numpy reference,
whereas torch's fused ``torch.add(alpha=)`` rounds once). The input ``x`` is
2-D, ``[batch, n_vars]``, and every output is ``[batch]``. It then decodes
them strictly as in SEMANTICS.md section 3, with the same mathematics as the
runtime's numpy kernel (``zpml_runtime.inference._kernels.numpy_core``):

* ``Q_safe = Where(|Q| == 0, 1, Q)``, ``quotient = P / Q_safe``;
* a value ``v`` is non-finite iff ``v - v`` is NaN (IEEE), so the core fault
  is ``IsNaN((quotient - quotient) * Q)``: ``P`` or ``Q`` non-finite, or the
  quotient overflowed; a factor's fault is ``IsNaN(V_i - V_i)``;
* semantic bottoms are ``|Q| < t_infer`` and ``|V_i| < t_i`` (NaN and Inf
  compare false, so only finite values qualify);
* ``bottom = fault | semantic``, ``gap = (|Q| < t_train) & ~bottom``,
  ``decoded = Where(bottom, NaN, quotient)``, ``bottom_provenance`` (int8) =
  ``fault + 2*semantic``.

The thresholds ``t_*`` are the *effective* thresholds of the evaluation dtype
(``zpml_runtime.inference._arrays.effective_threshold``): ``|Q| < t`` in that
dtype is the exact real test ``|Q| < tau`` and includes exact zeros. They are
0-d initializers named ``zpml_t_infer``, ``zpml_t_train`` and
``zpml_t_factor_{i}``, always live in the graph (never folded into other
constants), and are also recorded in ``model.metadata_props``;
:func:`read_baked_thresholds` reads them back from the graph and
:func:`check_baked_thresholds` compares both records.

Parameter- and constant-only instructions are computed on 0-d tensors and
broadcast; outputs that would be 0-d are expanded to ``[batch]``. Learnable
coefficients are 0-d initializers named after the parameters. Exact constants
are initializers rounded as the other back-ends do (``float(c)``, then to the
dtype); their ``doc_string`` records the exact rational. Only threshold-free
facts are folded at build time (a constant ``Q`` needs no zero test, dividing
by a constant 1 is the identity, the finiteness of a constant is known).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import onnx
import sympy as sp
from onnx import TensorProto, helper, numpy_helper

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.inference._arrays import effective_threshold
from zpml_runtime.inference.config import InferenceConfig, check_threshold
from zpml_runtime.inference.result import STRICT_OUTPUT_NAMES
from zpml_symbolic.emit.plan import Plan, as_frus, coefficient_values, make_plan
from zpml_symbolic.emit.program import Instr
from zpml_symbolic.emit.torch_emit import RationalModule
from zpml_symbolic.errors import EmitError, InvalidArgumentError
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.flatten.schema import check_prefix

#: name of the single graph input, of shape ``[batch, n_vars]``
INPUT_NAME = "x"
#: symbolic name of the dynamic batch dimension
BATCH_DIM = "batch"
#: the strict outputs, in order (SEMANTICS.md section 3), before the per-factor outputs
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
_NP = {"bool": np.bool_, "int8": np.int8, "int64": np.int64}


# --------------------------------------------------------------------------- graph builder


class _Graph:
    """Accumulates nodes and initializers with unique names, node-level CSE and
    rank tracking (0: a 0-d scalar, 1: a ``[batch]`` tensor)."""

    def __init__(self, dtype: str, reserved: set[str]) -> None:
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
        #: the graph input whose first dimension is the batch
        self.batch_ref = INPUT_NAME

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
        """Nodes (renames applied) and initializers."""
        r = self._renames
        for n in self.nodes:
            n.input[:] = [r.get(i, i) for i in n.input]
            n.output[:] = [r.get(o, o) for o in n.output]
        return self.nodes, self.initializers


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


def _c(g: _Graph, ins: Instr, magnitude: bool = False) -> str:
    assert ins.const is not None
    return _exact_const(g, abs(ins.const) if magnitude else ins.const)


Emit = Callable[[_Graph, Instr, list[str], str], str]


def _shift(g: _Graph, ins: Instr, v: list[str], base: str) -> str:
    assert ins.const is not None
    op = "Sub" if ins.const < 0 else "Add"  # a + c == a - |c| exactly; reads better
    return g.node(op, [v[ins.args[0]], _c(g, ins, magnitude=True)], base)


def _axpy(g: _Graph, ins: Instr, v: list[str], base: str) -> str:
    assert ins.const is not None
    prod = g.node("Mul", [v[ins.args[1]], _c(g, ins, magnitude=True)], f"{base}_term")
    return g.node("Sub" if ins.const < 0 else "Add", [v[ins.args[0]], prod], base)


#: op -> how to build it in the ONNX graph (a test checks every Program op is covered;
#: ``input``, ``param`` and ``const`` become Gather nodes and initializers)
ONNX_OPS: dict[str, Emit] = {
    "add": lambda g, i, v, n: g.node("Add", [v[i.args[0]], v[i.args[1]]], n),
    "sub": lambda g, i, v, n: g.node("Sub", [v[i.args[0]], v[i.args[1]]], n),
    "mul": lambda g, i, v, n: g.node("Mul", [v[i.args[0]], v[i.args[1]]], n),
    "square": lambda g, i, v, n: g.node("Mul", [v[i.args[0]], v[i.args[0]]], n),
    "neg": lambda g, i, v, n: g.node("Neg", [v[i.args[0]]], n),
    "scale": lambda g, i, v, n: g.node("Mul", [v[i.args[0]], _c(g, i)], n),
    "shift": _shift,
    "axpy": _axpy,
}


# --------------------------------------------------------------------------- lowering


def _instruction_names(plan: Plan) -> dict[int, str]:
    names = plan.names[0]
    out: dict[int, str] = {}
    for label in (names.P, names.Q, *names.V):
        out.setdefault(plan.program.outputs[label], label)
    return out


def _lower_program(g: _Graph, plan: Plan) -> list[str]:
    """One value name per instruction (nodes for operations, initializers otherwise)."""
    program = plan.program
    labels = _instruction_names(plan)
    values: list[str] = []
    for idx, ins in enumerate(program.instrs):
        base = labels.get(idx, f"t{idx}")
        if ins.op == "input":
            j = ins.index or 0
            var = program.variables[j]
            col = g.const(j, "int64", hint=f"col_{j}")
            name = f"in_{var}" if var.isidentifier() and var.isascii() else f"in_{j}"
            values.append(
                g.node("Gather", [INPUT_NAME, col], labels.get(idx, name), rank=1, axis=1)
            )
        elif ins.op == "param":
            values.append(program.parameters[ins.index or 0])  # initializer added by to_onnx
        elif ins.op == "const":
            assert ins.const is not None
            values.append(_exact_const(g, ins.const))
        else:
            values.append(ONNX_OPS[ins.op](g, ins, values, base))
    return values


def _strict(
    g: _Graph,
    P: str,
    Q: str,
    factors: Sequence[str],
    factor_names: Sequence[tuple[str, str, str]],
    t_factors: Sequence[str],
    has_train: bool,
) -> None:
    """Append the SEMANTICS §3 decoding of ``(P, Q, V)`` and expose every output."""
    qc = g.known.get(Q)
    aq = g.abs_(Q, "abs_Q")
    if qc is not None and np.isfinite(qc):  # constant Q (e.g. 1 for polynomials)
        q_safe = Q if qc != 0 else g.const(1.0)
        quotient = P if g.is_known(q_safe, 1.0) else g.node("Div", [P, q_safe], "quotient")
        fault_q = g.nonfinite(quotient, "fault_PQ")
    else:
        q_zero = g.node("Equal", [aq, g.const(0.0)], "Q_is_zero")
        q_safe = g.node("Where", [q_zero, g.const(1.0), Q], "Q_safe")
        quotient = g.node("Div", [P, q_safe], "quotient")
        diff = g.node("Sub", [quotient, quotient], "fault_PQ_diff")  # NaN iff quotient non-finite
        fault_q = g.node("IsNaN", [g.node("Mul", [diff, Q], "fault_PQ_diff_Q")], "fault_PQ")
    # thresholds are never folded, so ``semantic`` and ``bottom`` are always graph values
    semantic_q = g.less(aq, T_INFER, "semantic_Q")
    faults, semantics = [fault_q], [semantic_q]
    per_factor = []
    for i, (v, t) in enumerate(zip(factors, t_factors, strict=True)):
        f_i = g.nonfinite(v, f"fault_V{i}")
        s_i = g.less(g.abs_(v, f"abs_V{i}"), t, f"semantic_V{i}")
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
    provenance = _provenance(g, fault, semantic)
    for value, name in zip(
        (decoded, bottom, gap, fault, semantic, provenance), OUTPUT_NAMES, strict=True
    ):
        g.expose(value, name)
    for values, names in zip(per_factor, factor_names, strict=True):
        for value, name in zip(values, names, strict=True):
            g.expose(value, name)


def _provenance(g: _Graph, fault: str, semantic: str) -> str:
    """int8 ``fault + 2*semantic`` (0 finite, 1 fault, 2 semantic, 3 mixed)."""
    if fault in g.known:  # e.g. a constant expression: no fault possible
        f = int(g.known[fault])
        return g.node("Where", [semantic, g.const(2 + f, "int8"), g.const(f, "int8")], "provenance")
    with_semantic = g.node(
        "Where", [fault, g.const(3, "int8"), g.const(2, "int8")], "provenance_if_semantic"
    )
    fault_code = g.node("Cast", [fault], "fault_code", to=TensorProto.INT8)
    return g.node("Where", [semantic, with_semantic, fault_code], "provenance")


# --------------------------------------------------------------------------- arguments


def _check_dtype(dtype: object) -> str:
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise InvalidArgumentError(
            f"dtype must be 'float32' or 'float64' (a string), got {dtype!r}"
        )
    return dtype


def _check_opset(opset: object) -> int:
    if opset is None:
        return DEFAULT_OPSET
    highest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= highest:
        raise InvalidArgumentError(
            f"opset must be an integer between {MIN_OPSET} and {highest} (this onnx release), "
            f"got {opset!r}; the default is {DEFAULT_OPSET}"
        )
    return opset


def _check_config(config: object) -> InferenceConfig:
    if config is None:
        return InferenceConfig(tau_infer=0.0)
    if not isinstance(config, InferenceConfig):
        raise InvalidArgumentError(
            f"config must be a zpml_runtime.inference.InferenceConfig or None, got {type(config).__name__}"
        )
    return config


def _check_tau(value: object, field: str) -> float:
    """The runtime's threshold check, reported as a compiler argument error."""
    try:
        return check_threshold(value, field)
    except InvalidConfigError as e:
        raise InvalidArgumentError(str(e)) from None


def _factor_taus(validity_taus: object, k: int) -> tuple[float, ...]:
    if isinstance(validity_taus, Sequence) and not isinstance(validity_taus, str | bytes):
        if len(validity_taus) != k:
            raise InvalidArgumentError(
                f"validity_taus has {len(validity_taus)} entries but the expression has {k} retained "
                f"validity factors; pass one number for all or exactly {k}"
            )
        return tuple(_check_tau(t, f"validity_taus[{i}]") for i, t in enumerate(validity_taus))
    return (_check_tau(validity_taus, "validity_taus"),) * k


def _resolve(
    obj: object,
    parameters: Sequence[sp.Symbol | str],
    init: Mapping[Any, float] | None,
    variables: Sequence[str | sp.Symbol] | None,
) -> tuple[Plan, dict[str, float]]:
    if isinstance(obj, RationalModule):
        if tuple(parameters) or init is not None or variables is not None:
            raise InvalidArgumentError(
                "to_onnx(module) takes the module's plan and current coefficient values; "
                "do not pass parameters=, init= or variables="
            )
        plan, coefficients = obj.plan, obj.coefficient_values()
    else:
        frus, _ = as_frus(obj, parameters=parameters)  # type: ignore[arg-type]
        if len(frus) != 1:
            raise EmitError(
                f"to_onnx builds one model per expression, got {len(frus)}; call it once per expression"
            )
        plan = make_plan(frus, variables=variables)
        coefficients = coefficient_values(plan, init)
    if len(plan.frus) != 1:
        raise EmitError(
            f"to_onnx builds one model per expression, but the module compiles {len(plan.frus)}; "
            "compile each expression with to_torch separately"
        )
    return plan, coefficients


# --------------------------------------------------------------------------- entry point


def _strict_outputs(elem: int, factor_names: Sequence[Sequence[str]]) -> list[onnx.ValueInfoProto]:
    """Value infos of the strict outputs then the per-factor outputs, all ``[batch]``."""
    outputs = [helper.make_tensor_value_info(OUTPUT_NAMES[0], elem, [BATCH_DIM])]
    outputs += [
        helper.make_tensor_value_info(n, TensorProto.BOOL, [BATCH_DIM]) for n in OUTPUT_NAMES[1:5]
    ]
    outputs.append(helper.make_tensor_value_info(OUTPUT_NAMES[5], TensorProto.INT8, [BATCH_DIM]))
    for value, fault_mask, semantic_mask in factor_names:
        outputs.append(helper.make_tensor_value_info(value, elem, [BATCH_DIM]))
        outputs.append(helper.make_tensor_value_info(fault_mask, TensorProto.BOOL, [BATCH_DIM]))
        outputs.append(helper.make_tensor_value_info(semantic_mask, TensorProto.BOOL, [BATCH_DIM]))
    return outputs


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


def strict_decoder_model(
    num_factors: int,
    *,
    config: InferenceConfig | None = None,
    validity_taus: float | Sequence[float] = 0.0,
    dtype: str = "float32",
    opset: int | None = None,
    prefix: str = "structural_validity_factor",
) -> onnx.ModelProto:
    """A graph decoding inputs ``P``, ``Q`` (``[batch]``) and ``V`` (``[batch, k]``) strictly.

    Same outputs, masks and baked thresholds as :func:`to_onnx`; used to
    append strict decoding to a traced model (``onnx.compose.merge_models``).
    """
    dtype = _check_dtype(dtype)
    opset = _check_opset(opset)
    cfg = _check_config(config)
    check_prefix(prefix)
    if isinstance(num_factors, bool) or not isinstance(num_factors, int) or num_factors < 0:
        raise InvalidArgumentError(f"num_factors must be an int >= 0, got {num_factors!r}")
    taus = _factor_taus(validity_taus, num_factors)
    factor_names = [
        (f"{prefix}_{i}_value", f"{prefix}_{i}_fault_mask", f"{prefix}_{i}_semantic_bottom_mask")
        for i in range(num_factors)
    ]
    reserved = {"P", "Q", "V", *OUTPUT_NAMES, *(n for names in factor_names for n in names)}
    reserved |= {T_INFER, T_TRAIN, *(T_FACTOR.format(i) for i in range(num_factors))}
    g = _Graph(dtype, reserved)
    g.batch_ref = "Q"
    t_infer, t_train, t_factors = _threshold_initializers(g, cfg, taus, dtype)
    g.rank["P"] = g.rank["Q"] = 1
    factors = [
        g.node("Gather", ["V", g.const(i, "int64")], f"V{i}", axis=1) for i in range(num_factors)
    ]
    thresholds = [T_FACTOR.format(i) for i in range(num_factors)]
    _strict(g, "P", "Q", factors, factor_names, thresholds, t_train is not None)
    nodes, initializers = g.finish()
    elem = _DTYPES[dtype][0]
    inputs = [helper.make_tensor_value_info(n, elem, [BATCH_DIM]) for n in ("P", "Q")]
    if num_factors:
        inputs.append(helper.make_tensor_value_info("V", elem, [BATCH_DIM, num_factors]))
    outputs = _strict_outputs(elem, factor_names)
    graph = helper.make_graph(
        nodes, "zpml_strict_decoder", inputs, outputs, initializer=initializers
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name=PRODUCER_NAME,
        producer_version=_package_version(),
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    metadata = {
        "dtype": dtype,
        "tau_infer": json.dumps(cfg.tau_infer),
        "tau_train": json.dumps(cfg.tau_train),
        "validity_taus": json.dumps(list(taus)),
        "effective_thresholds": json.dumps(_thresholds_json(t_infer, t_train, t_factors)),
        "inference_config": json.dumps(cfg.to_metadata()),
    }
    helper.set_model_props(model, {METADATA_PREFIX + key: value for key, value in metadata.items()})
    return model


def to_onnx(
    fru_or_exprs: FlattenedFRU
    | sp.Expr
    | str
    | Sequence[FlattenedFRU | sp.Expr | str]
    | RationalModule,
    *,
    config: InferenceConfig | None = None,
    validity_taus: float | Sequence[float] = 0.0,
    dtype: str = "float32",
    opset: int | None = None,
    parameters: Sequence[sp.Symbol | str] = (),
    init: Mapping[Any, float] | None = None,
    variables: Sequence[str | sp.Symbol] | None = None,
    prefix: str = "structural_validity_factor",
    model_name: str | None = None,
) -> onnx.ModelProto:
    """Build the strict ONNX model of one rational expression.

    Args:
        fru_or_exprs: a FlattenedFRU, sympy expression or text (or a one-element
            sequence of them), or a :class:`RationalModule` from ``to_torch`` (its plan
            and current coefficient values are used).
        config: thresholds (``tau_infer``, optional ``tau_train``); ``None`` means
            ``InferenceConfig(tau_infer=0.0)`` (exact zeros only).
        validity_taus: per-factor thresholds ``tau_i``: one number or one per factor.
        dtype: ``"float32"`` or ``"float64"``: input, computation and value outputs.
        opset: default-domain opset (default 21; at least 15).
        parameters, init: learnable coefficients and their values (initializers).
        variables: input column order (default: the FRU's variables).
        prefix: per-factor output name prefix (``{prefix}_{i}_value``, ...).
        model_name: the graph's name (default ``"zpml_rational"``).

    Returns:
        An ``onnx.ModelProto`` with input ``x`` (2-D, ``[batch, n_vars]``) and outputs
        ``decoded, bottom_mask, gap_mask, fault_mask, semantic_bottom_mask,
        bottom_provenance`` then the per-factor outputs, all of shape ``[batch]``
        (masks bool, provenance int8). Same arguments give a byte-identical model.

    Raises:
        InvalidArgumentError: bad dtype, opset, config, thresholds, init or names.
        EmitError: several expressions, or a parameter name the graph reserves.
        zpml_runtime.errors.ThresholdUnderflowError: a positive threshold the dtype
            cannot represent.
    """
    dtype = _check_dtype(dtype)
    opset = _check_opset(opset)
    cfg = _check_config(config)
    if model_name is not None and (not isinstance(model_name, str) or not model_name):
        raise InvalidArgumentError(f"model_name must be a non-empty string, got {model_name!r}")
    plan, coefficients = _resolve(fru_or_exprs, parameters, init, variables)
    fru = plan.frus[0]
    schema = fru.structural_validity_output_schema(prefix=prefix)
    k = len(plan.names[0].V)
    taus = _factor_taus(validity_taus, k)
    factor_names = [out.output_names for out in schema.outputs]
    output_names = OUTPUT_NAMES + schema.output_names

    threshold_names = [T_INFER, T_TRAIN] + [T_FACTOR.format(i) for i in range(k)]
    reserved = {INPUT_NAME, *output_names, *threshold_names}
    clash = sorted(set(plan.parameters) & reserved)
    if clash:
        raise EmitError(
            f"parameter names {clash} are reserved by the ONNX graph; rename the symbols"
        )
    g = _Graph(dtype, reserved | set(plan.parameters))
    for name in plan.parameters:
        g.initializer(name, coefficients[name], doc="learnable coefficient")
    t_infer, t_train, t_factors = _threshold_initializers(g, cfg, taus, dtype)

    values = _lower_program(g, plan)
    out = plan.program.outputs
    names = plan.names[0]
    _strict(
        g,
        values[out[names.P]],
        values[out[names.Q]],
        [values[out[v]] for v in names.V],
        factor_names,
        [T_FACTOR.format(i) for i in range(k)],
        t_train is not None,
    )
    nodes, initializers = g.finish()
    elem = _DTYPES[dtype][0]
    outputs = _strict_outputs(elem, factor_names)
    x = helper.make_tensor_value_info(INPUT_NAME, elem, [BATCH_DIM, len(plan.variables)])
    graph = helper.make_graph(
        nodes,
        model_name or "zpml_rational",
        [x],
        outputs,
        initializer=initializers,
        doc_string=f"x columns: {', '.join(plan.variables) or '(none)'}",
    )
    opsets = [helper.make_opsetid("", opset)]
    version = _package_version()
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name=PRODUCER_NAME,
        producer_version=version,
        ir_version=helper.find_min_ir_version_for(opsets),
        doc_string=(
            f"Strict rational model of {fru.expression}: P/Q with bottom, gap, fault and "
            "semantic masks (SEMANTICS.md section 3)"
        ),
    )
    metadata = {
        "version": version,
        "dtype": dtype,
        "expression": str(fru.expression),
        "numerator": str(fru.numerator),
        "denominator": str(fru.denominator),
        "gauge": "canonical_denominator",
        "variables": json.dumps(list(plan.variables)),
        "parameters": json.dumps(list(plan.parameters)),
        "coefficients": json.dumps({n: _json_float(v) for n, v in coefficients.items()}),
        "tau_infer": json.dumps(cfg.tau_infer),
        "tau_train": json.dumps(cfg.tau_train),
        "validity_taus": json.dumps(list(taus)),
        "effective_thresholds": json.dumps(_thresholds_json(t_infer, t_train, t_factors)),
        "inference_config": json.dumps(cfg.to_metadata()),
        "output_names": json.dumps(list(output_names)),
        "schema": json.dumps(schema.to_metadata(), default=_json_default),
    }
    helper.set_model_props(model, {METADATA_PREFIX + key: value for key, value in metadata.items()})
    return model


def _package_version() -> str:
    import zpml_symbolic  # late: this module is imported while the package initialises

    return str(getattr(zpml_symbolic, "__version__", "unknown"))


def _json_float(v: float | None) -> float | str | None:
    """JSON-safe float: non-finite values (e.g. a huge tau in float32) become ``"inf"``, ``"-inf"``, ``"nan"``."""
    if v is None or math.isfinite(v):
        return v
    return repr(v)


def _json_default(obj: object) -> int | str:
    """Integers of other libraries (e.g. python-flint ``fmpz`` exponents) as ints, else text."""
    if isinstance(obj, numbers.Integral) or hasattr(obj, "__index__"):
        return int(obj)  # type: ignore[call-overload]
    return str(obj)


def _thresholds_json(
    t_infer: float, t_train: float | None, t_factors: Sequence[float]
) -> dict[str, Any]:
    return {
        "t_infer": _json_float(t_infer),
        "t_train": _json_float(t_train),
        "t_factors": [_json_float(t) for t in t_factors],
    }


# --------------------------------------------------------------------------- readers


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """The ``zpml.*`` metadata of ``model``, JSON values decoded (keys without the prefix)."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            key = prop.key.removeprefix(METADATA_PREFIX)
            try:
                out[key] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[key] = prop.value
    return out


def read_baked_thresholds(model: onnx.ModelProto) -> dict[str, Any]:
    """The thresholds the GRAPH compares against, read from its initializers (or
    Constant nodes) ``zpml_t_infer``, ``zpml_t_train``, ``zpml_t_factor_{i}``.

    Returns ``{"t_infer": float, "t_train": float | None, "t_factors": [float, ...]}``
    with infinities as ``"inf"``, the layout of the ``zpml.effective_thresholds``
    metadata, so ``read_baked_thresholds(m) == read_metadata(m)["effective_thresholds"]``
    checks that both records agree.
    """
    found: dict[str, float] = {}
    for tensor in model.graph.initializer:
        if tensor.name.startswith("zpml_t_"):
            found[tensor.name] = float(numpy_helper.to_array(tensor).reshape(()))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0].startswith("zpml_t_"):
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                found[node.output[0]] = float(numpy_helper.to_array(attr.t).reshape(()))
    if T_INFER not in found:
        raise EmitError(
            f"the graph has no threshold constant {T_INFER!r}; is it a zpml_symbolic model?"
        )
    factors = []
    while T_FACTOR.format(len(factors)) in found:
        factors.append(found[T_FACTOR.format(len(factors))])
    return _thresholds_json(found[T_INFER], found.get(T_TRAIN), factors)


def check_baked_thresholds(model: onnx.ModelProto) -> None:
    """Raise :class:`EmitError` unless the graph's thresholds equal the metadata's."""
    baked = read_baked_thresholds(model)
    recorded = read_metadata(model).get("effective_thresholds")
    if baked != recorded:
        raise EmitError(
            f"thresholds baked into the graph {baked} differ from the metadata "
            f"zpml.effective_thresholds {recorded}; the model was edited after export"
        )


__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "ONNX_OPS",
    "OUTPUT_NAMES",
    "check_baked_thresholds",
    "strict_decoder_model",
    "read_baked_thresholds",
    "read_metadata",
    "to_onnx",
]
