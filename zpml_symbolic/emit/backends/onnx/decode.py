"""The strict decoding as ONNX nodes (docs/semantics.md section 3): masks, provenance
and ``decoded`` from ``P``, ``Q`` and the validity factors, compared with the
effective thresholds baked as reserved initializers (``zpml_t_*``, never folded)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from zpml_core.resolution import EffectiveThresholds, ResolvedThresholds
from zpml_symbolic.emit.backends.onnx.graph import (
    BATCH_DIM,
    DTYPES,
    OUTPUT_NAMES,
    T_FACTOR,
    T_INFER,
    T_TRAIN,
    Graph,
)

__all__ = ["bake_thresholds", "strict_decode", "strict_outputs"]


def strict_decode(
    g: Graph,
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
        cast = g.node("Cast", [decoded], "decoded_narrow", to=DTYPES[narrow][0])
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
    g: Graph, q_zero: str, fault_q: str, semantic_q: str, leaves: Sequence[str]
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


def _provenance(g: Graph, fault: str, semantic: str) -> str:
    """int8 ``fault + 2*semantic`` (0 finite, 1 fault, 2 semantic, 3 mixed)."""
    if fault in g.known:  # e.g. a constant expression: no fault possible
        f = int(g.known[fault])
        return g.node("Where", [semantic, g.const(2 + f, "int8"), g.const(f, "int8")], "provenance")
    fault_code = g.node("Cast", [fault], "fault_code", to=TensorProto.INT8)
    semantic_code = g.node("Cast", [semantic], "semantic_code", to=TensorProto.INT8)
    once = g.node("Add", [fault_code, semantic_code], "provenance_partial")
    return g.node("Add", [once, semantic_code], "provenance")


def strict_outputs(
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


def bake_thresholds(g: Graph, emitted: ResolvedThresholds, dtype: str) -> EffectiveThresholds:
    """Bake the effective thresholds of ``emitted`` (thresholds in the emitted gauge) in
    ``dtype`` into ``g`` under their reserved names; returns them."""
    eff = emitted.effective(dtype)
    doc = "effective threshold of {} in " + dtype + ": |v| < t is the exact real test |v| < {}"
    g.initializer(
        T_INFER, eff.t_infer, doc=doc.format(f"tau_infer={emitted.tau_infer!r}", "tau_infer")
    )
    if eff.t_train is not None:
        g.initializer(
            T_TRAIN, eff.t_train, doc=doc.format(f"tau_train={emitted.tau_train!r}", "tau_train")
        )
    for i, (tau, t) in enumerate(zip(emitted.factor_taus, eff.t_factors, strict=True)):
        g.initializer(
            T_FACTOR.format(i), t, doc=doc.format(f"validity_taus[{i}]={tau!r}", f"tau_{i}")
        )
    return eff
