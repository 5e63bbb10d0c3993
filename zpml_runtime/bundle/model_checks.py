"""Checks of a bundle's ONNX model against its (typed) metadata.

The ONNX checker, standard operator domains only, no model-local functions, no
unused initializers, the input/output signature, the thresholds baked into the
graph (and that the recorded taus, scaled by each expression's power-of-two
gauge, give them), and the learnable coefficients' initializers. Problems are
appended to a list; the validator reports them all together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.format import STRICT_OUTPUTS
from zpml_runtime.bundle.metadata import BundleMetadata

_STANDARD_DOMAINS = ("", "ai.onnx")
_DTYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.INT8: "int8",
}


def tensor_signature(vi: onnx.ValueInfoProto) -> dict[str, Any]:
    """``{"name", "dtype", "shape"}`` of a graph input or output (as metadata records it)."""
    t = vi.type.tensor_type
    return {
        "name": vi.name,
        "dtype": _DTYPES.get(t.elem_type, f"onnx type {t.elem_type}"),
        "shape": [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim],
    }


def check_model(model: onnx.ModelProto, meta: BundleMetadata, problems: list[str]) -> None:
    """The ONNX checker, the signature and the baked thresholds against the metadata."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - report onnx's own message
        problems.append(f"model.onnx fails onnx.checker: {str(e).splitlines()[0]}")
    inputs = list(model.graph.input)
    want_in = meta.input
    if len(inputs) != 1:
        problems.append(f"the graph has {len(inputs)} inputs; a bundle graph has exactly one (x)")
    else:
        got = tensor_signature(inputs[0])
        for key, want in (
            ("name", want_in.name),
            ("dtype", want_in.dtype),
            ("shape", list(want_in.shape)),
        ):
            if got[key] != want:
                problems.append(
                    f"graph input {key} {got[key]!r} differs from metadata input.{key} {want!r}"
                )
        if got["shape"][1:] != [len(want_in.variables)]:
            problems.append(
                f"graph input width {got['shape'][1:]} does not match {len(want_in.variables)} variables"
            )
    got_out = [tensor_signature(o) for o in model.graph.output]
    want_out = [o.as_dict() for o in meta.outputs]
    order = list(meta.output_order)
    if [o["name"] for o in got_out] != order:
        problems.append(
            f"graph outputs {[o['name'] for o in got_out]} differ from metadata output_order {order}"
        )
    if order[:6] != list(STRICT_OUTPUTS):
        problems.append(f"output_order must start with {list(STRICT_OUTPUTS)}")
    for got_o, want_o in zip(got_out, want_out, strict=False):
        if got_o != want_o:
            problems.append(f"graph output {got_o} differs from metadata {want_o}")
    if len(got_out) != len(want_out):
        problems.append(f"graph has {len(got_out)} outputs, metadata lists {len(want_out)}")
    dtype = want_in.dtype
    thresholds = meta.effective_thresholds
    if thresholds.dtype != dtype:
        problems.append(
            f"effective_thresholds.dtype {thresholds.dtype!r} differs from input dtype {dtype!r}"
        )
    try:
        from zpml_symbolic.emit.backends.onnx import read_baked_thresholds

        baked = read_baked_thresholds(model)
    except Exception as e:  # noqa: BLE001
        problems.append(f"cannot read the thresholds baked into the graph: {e}")
        return
    recorded = thresholds.baked()
    if baked != recorded:
        problems.append(
            f"thresholds baked into the graph {baked} differ from metadata effective_thresholds {recorded}"
        )
    check_config_thresholds(meta, dtype, baked, problems)


def check_config_thresholds(
    meta: BundleMetadata, dtype: str, baked: dict[str, Any], problems: list[str]
) -> None:
    """The recorded tau values (scaled by each expression's power-of-two gauge) must
    produce the baked effective thresholds."""
    from zpml_runtime.bundle.multi import expression_views

    if dtype not in ("float32", "float64"):
        return
    try:
        if meta.is_multi and meta.expressions is not None:
            views = [BundleMetadata.parse(v) for v, _ in expression_views(meta.raw)]
            expected = [expected_thresholds(v, dtype) for v in views]
            t_infer, t_train = expected[0][0], expected[0][1]
            if any(e[:2] != (t_infer, t_train) for e in expected):
                problems.append("the expressions' gauges give different tau_infer thresholds")
            t_factors = [t for e in expected for t in e[2]]
        else:
            t_infer, t_train, t_factors = expected_thresholds(meta, dtype)
    except Exception as e:  # noqa: BLE001
        problems.append(f"inference_config/validity_taus are not valid: {e}")
        return
    if (
        baked.get("t_infer") != t_infer
        or baked.get("t_train") != t_train
        or baked.get("t_factors") != t_factors
    ):
        cfg = meta.inference_config
        problems.append(
            f"inference_config tau_infer={cfg.tau_infer!r}, "
            f"tau_train={cfg.tau_train!r}, validity_taus="
            f"{list(meta.validity_taus)!r} do not give the graph's thresholds {baked} in {dtype}"
        )


def expected_thresholds(meta: BundleMetadata, dtype: str) -> tuple[Any, Any, list[Any]]:
    """``(t_infer, t_train, t_factors)`` the graph must hold, in the emitted gauge, as the
    metadata records them (infinities as ``"inf"``): the recorded taus resolved by
    :func:`zpml_core.resolution.resolve_thresholds`, as the emitter resolves them."""
    from zpml_core.resolution import resolve_thresholds

    taus = list(meta.validity_taus)
    gauge = meta.gauge()
    e_pq, e_v = 0, (0,) * len(taus)
    if gauge is not None:
        e_pq, e_v = gauge.pq, gauge.factor_exponents(len(taus))
        if len(e_v) != len(taus):
            raise BundleError(f"gauge V has {len(e_v)} exponents for {len(taus)} validity factors")
    resolved = resolve_thresholds(
        meta.inference_config.config(), taus, len(taus), gauge=e_pq, factor_gauges=e_v
    )
    eff = resolved.effective(dtype).to_metadata()
    return eff["t_infer"], eff["t_train"], list(eff["t_factors"])


def check_parameters(model: onnx.ModelProto, meta: BundleMetadata, problems: list[str]) -> None:
    """Each learnable coefficient's initializer (named by ``parameter_initializers`` when
    present, else by the parameter) must hold the metadata value in the bundle dtype."""
    from onnx import numpy_helper

    names = meta.parameter_initializers or {}
    inits = {i.name: i for g in walk_graphs(model.graph) for i in g.initializer}
    for param, value in meta.parameters.items():
        init = inits.get(str(names.get(param, param)))
        if init is None:
            continue  # a coefficient the program does not read (folded away)
        got = numpy_helper.to_array(init)
        want = np.asarray(value, dtype=meta.dtype)
        if (
            got.shape != ()
            or got.dtype != want.dtype
            or not (got == want or (np.isnan(got) and np.isnan(want)))
        ):
            problems.append(
                f"parameter {param!r}: the graph's initializer {init.name!r} holds {got.tolist()!r}, "
                f"metadata parameters say {value!r}"
            )


def walk_graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """The graph and every subgraph (Scan/Loop/If bodies), depth first."""
    out, stack = [], [graph]
    while stack:
        g = stack.pop()
        out.append(g)
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)
    return out


def check_hygiene(model: onnx.ModelProto, problems: list[str]) -> None:
    """Standard operators only, no model-local functions, no unused initializers."""
    custom = sorted({o.domain for o in model.opset_import} - set(_STANDARD_DOMAINS))
    if custom:
        problems.append(
            f"model.onnx imports non-standard operator domains {custom} (custom operators); "
            "a bundle graph uses the default ONNX domain only"
        )
    if len(model.functions):
        problems.append(
            f"model.onnx defines {len(model.functions)} local function(s); bundle graphs use none"
        )
    graphs = walk_graphs(model.graph)
    used: set[str] = set()
    for g in graphs:
        for node in g.node:
            used.update(node.input)
            if node.domain not in _STANDARD_DOMAINS:
                problems.append(
                    f"node {node.name or node.op_type!r} uses operator {node.domain}.{node.op_type} "
                    "from a non-standard domain (custom operator)"
                )
        used.update(o.name for o in g.output)
    for g in graphs:
        for init in [*g.initializer, *(s.values for s in g.sparse_initializer)]:
            if init.name not in used:
                size = init.ByteSize()
                problems.append(
                    f"model.onnx holds an initializer {init.name!r} ({size} bytes) that no node "
                    "reads; bundle graphs carry no unused data"
                )


__all__ = [
    "check_config_thresholds",
    "check_hygiene",
    "check_model",
    "check_parameters",
    "expected_thresholds",
    "tensor_signature",
    "walk_graphs",
]
