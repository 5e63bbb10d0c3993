"""Multi-output bundles: one graph for ``k >= 2`` outputs per sample.

Output structure (the same for compiled and traced models):

* ``decoded, bottom_mask, gap_mask, fault_mask, semantic_bottom_mask,
  bottom_provenance``: shape ``[batch, k]``, column ``j`` is output ``j``;
* per validity factor ``g`` (global index): ``{prefix}_{g}_value``,
  ``{prefix}_{g}_fault_mask``, ``{prefix}_{g}_semantic_bottom_mask`` of shape
  ``[batch]`` (one value per sample) or ``[batch, k]`` (one per output).

``metadata["multi_output"]`` records ``k``, the output names and, per factor,
its shape and the outputs it guards. A compiled bundle also has
``metadata["expressions"]``: per output its exact FRU (the ``fru`` section of
a single-output bundle), factor schema, validity thresholds, power-of-two
gauge and factor offset.

:func:`expression_views` turns a compiled multi-output bundle into ``k``
single-expression metadata views, and :func:`view_outputs` maps the graph's
outputs onto one view, so the single-output semantic check, report and
``zpml explain`` code run unchanged per output.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.format import STRICT_OUTPUTS
from zpml_runtime.bundle.metadata import BundleMetadata

DEFAULT_PREFIX = "structural_validity_factor"
_PARTS = ("value", "fault_mask", "semantic_bottom_mask")


def factor_names(prefix: str, index: int) -> list[str]:
    """The three output names of validity factor ``index``."""
    return [f"{prefix}_{index}_{part}" for part in _PARTS]


def check_output_names(names: Sequence[str] | None, k: int, default: str = "e") -> list[str]:
    """Per-output names: given (``k`` distinct non-empty strings) or ``e0, e1, ...``."""
    if names is None:
        return [f"{default}{j}" for j in range(k)]
    out = list(names)
    if len(out) != k or any(not isinstance(n, str) or not n for n in out) or len(set(out)) != k:
        raise BundleError(
            f"output_names must be {k} distinct non-empty strings (one per output), got {names!r}"
        )
    return out


def is_multi(metadata: Mapping[str, Any]) -> bool:
    """True for a multi-output bundle."""
    return isinstance(metadata.get("multi_output"), dict)


def num_outputs(metadata: Mapping[str, Any]) -> int:
    """``k``: outputs per sample (1 for a single-output bundle)."""
    mo = metadata.get("multi_output")
    return int(mo["k"]) if isinstance(mo, dict) else 1


# ----------------------------------------------------------------- compiled graphs


def _rename_everywhere(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]


def _all_names(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _fresh(base: str, taken: set[str]) -> str:
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def stack_expression_outputs(
    model: onnx.ModelProto,
    prefixes: Sequence[str],
    factor_counts: Sequence[int],
    prefix: str,
) -> onnx.ModelProto:
    """Turn ``to_onnx``'s per-expression outputs (``e{j}_decoded``, ...) into the
    multi-output structure: the six strict outputs stacked to ``[batch, k]``, the
    per-factor outputs renamed to global indices (``[batch]`` each)."""
    graph = model.graph
    by_name = {o.name: o for o in graph.output}
    k = len(prefixes)
    taken = _all_names(graph)
    new_outputs: dict[str, str] = {}  # old graph-output name -> internal name
    for old in by_name:
        new_outputs[old] = _fresh(f"{old}__expr", taken)
    _rename_everywhere(graph, new_outputs)
    nodes: list[onnx.NodeProto] = []
    axes = _fresh("zpml_stack_axes", taken)
    graph.initializer.append(helper.make_tensor(axes, onnx.TensorProto.INT64, [1], [1]))
    outputs: list[onnx.ValueInfoProto] = []
    for name in STRICT_OUTPUTS:
        columns = []
        for pre in prefixes:
            src = new_outputs[pre + name]
            col = _fresh(f"{pre}{name}__col", taken)
            nodes.append(helper.make_node("Unsqueeze", [src, axes], [col]))
            columns.append(col)
        nodes.append(helper.make_node("Concat", columns, [name], axis=1))
        elem = by_name[prefixes[0] + name].type.tensor_type.elem_type
        outputs.append(helper.make_tensor_value_info(name, elem, ["batch", k]))
    g = 0
    for pre, count in zip(prefixes, factor_counts, strict=True):
        for i in range(count):
            for old, new in zip(
                factor_names(pre + prefix, i), factor_names(prefix, g), strict=True
            ):
                if new in taken and new not in new_outputs:
                    raise BundleError(f"internal: output name {new!r} is already used in the graph")
                nodes.append(helper.make_node("Identity", [new_outputs[old]], [new]))
                elem = by_name[old].type.tensor_type.elem_type
                outputs.append(helper.make_tensor_value_info(new, elem, ["batch"]))
            g += 1
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.extend(outputs)
    return model


# ----------------------------------------------------------------- views


def expression_views(metadata: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Per output of a compiled multi-output bundle: a single-expression metadata view
    and the map from the view's output names to the graph's.

    Each view looks like the metadata of a single-output compiled bundle
    (``fru``, ``structural_validity_output_schema``, ``validity_taus``,
    ``effective_thresholds``, ``output_order``), plus ``gauge`` and ``column``.
    """
    exprs = metadata.get("expressions")
    mo = metadata.get("multi_output") or {}
    if not isinstance(exprs, list) or len(exprs) != mo.get("k"):
        raise BundleError(
            f"metadata expressions must list one entry per output (multi_output.k={mo.get('k')!r})"
        )
    eff = metadata["effective_thresholds"]
    t_factors = list(eff.get("t_factors", []))
    views = []
    for j, entry in enumerate(exprs):
        if not isinstance(entry, dict):
            raise BundleError(f"metadata expressions[{j}] must be an object")
        schema = entry.get("schema") or {}
        pre = schema.get("prefix", DEFAULT_PREFIX) if isinstance(schema, dict) else DEFAULT_PREFIX
        offset, taus = entry.get("factor_offset"), entry.get("validity_taus")
        if not isinstance(offset, int) or not isinstance(taus, list):
            raise BundleError(
                f"metadata expressions[{j}] needs an integer factor_offset and a validity_taus list"
            )
        count = len(taus)
        mapping = {name: name for name in STRICT_OUTPUTS}
        local_names: list[str] = []
        for i in range(count):
            for local, glob in zip(
                factor_names(pre, i), factor_names(pre, offset + i), strict=True
            ):
                mapping[local] = glob
                local_names.append(local)
        view = copy.copy(dict(metadata))
        view.update(
            fru=entry.get("fru"),
            structural_validity_output_schema=schema or None,
            validity_taus=list(taus),
            effective_thresholds={**eff, "t_factors": t_factors[offset : offset + count]},
            output_order=[*STRICT_OUTPUTS, *local_names],
            gauge=entry.get("gauge") or {"PQ": 0, "V": [0] * count},
            column=j,
            output_name=mo.get("output_names", [None] * (j + 1))[j],
        )
        view.pop("multi_output", None)
        view.pop("expressions", None)
        views.append((view, mapping))
    return views


def view_outputs(
    outputs: Mapping[str, np.ndarray], view: Mapping[str, Any], mapping: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """The graph ``outputs`` as seen by one expression view (core outputs: its column)."""
    j = view["column"]
    out = {}
    for local, glob in mapping.items():
        value = outputs[glob]
        out[local] = value[:, j] if local in STRICT_OUTPUTS or value.ndim == 2 else value
    return out


def single_gauge(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The power-of-two gauge of a single-expression bundle or view (``None``: identity)."""
    if isinstance(metadata.get("gauge"), dict):
        return metadata["gauge"]
    ge = metadata.get("gauge_exponents")
    if isinstance(ge, list) and ge and isinstance(ge[0], dict):
        return ge[0]
    return None


def structure_problems(metadata: BundleMetadata, model: onnx.ModelProto) -> list[str]:
    """Consistency of ``multi_output`` with the graph's outputs and thresholds."""
    mo = metadata.multi_output
    if mo is None:
        return []
    problems: list[str] = []
    k = mo.k
    if k < 2:
        return [f"metadata multi_output.k must be an integer >= 2, got {k!r}"]
    if len(mo.output_names) != k:
        problems.append(f"metadata multi_output.output_names must list {k} names")
    shapes = {o.name: list(o.shape) for o in metadata.outputs}
    for name in STRICT_OUTPUTS:
        if shapes.get(name) != ["batch", k]:
            problems.append(
                f"output {name} has shape {shapes.get(name)}; a {k}-output bundle needs ['batch', {k}]"
            )
    factors = mo.factors
    t_factors = metadata.effective_thresholds.t_factors
    if len(factors) != len(t_factors):
        problems.append(
            f"metadata multi_output.factors lists {len(factors)} "
            f"factors but the graph has {len(t_factors)} factor thresholds"
        )
        return problems
    order = metadata.output_order
    if len(order) != 6 + 3 * len(factors):
        problems.append(f"output_order has {len(order)} names for {len(factors)} validity factors")
        return problems
    for g, f in enumerate(factors):
        want = f.get("shape")
        if want not in (["batch"], ["batch", k]):
            problems.append(
                f"metadata multi_output.factors[{g}].shape must be ['batch'] or ['batch', {k}]"
            )
            continue
        for name in order[6 + 3 * g : 9 + 3 * g]:
            if shapes.get(name) != want:
                problems.append(
                    f"output {name} has shape {shapes.get(name)}, metadata factor {g} says {want}"
                )
    return problems


def stack_reference(results: Sequence[Any], prefix: str) -> dict[str, np.ndarray]:
    """A tuple of per-expression strict results as the multi-output structure (numpy)."""
    out: dict[str, np.ndarray] = {}
    dicts = [r.as_dict(prefix) for r in results]
    for name in STRICT_OUTPUTS:
        out[name] = np.stack([_np(d[name]) for d in dicts], axis=-1)
    g = 0
    for d, r in zip(dicts, results, strict=True):
        for i in range(r.num_factors):
            for local, glob in zip(factor_names(prefix, i), factor_names(prefix, g), strict=True):
                out[glob] = _np(d[local])
            g += 1
    return out


def _np(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


__all__ = [
    "check_output_names",
    "expression_views",
    "factor_names",
    "is_multi",
    "num_outputs",
    "single_gauge",
    "stack_expression_outputs",
    "stack_reference",
    "structure_problems",
    "view_outputs",
]
