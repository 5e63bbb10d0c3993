"""The strict decoder that ends a traced bundle's graph (torch-free).

A pure function of arguments recorded in the bundle metadata, so the validator
rebuilds it without torch and compares it with the end of the stored graph;
:mod:`.traced` puts it behind the traced part of the model.
"""

from __future__ import annotations

from typing import Any

import onnx

from zpml_core.config import InferenceConfig

__all__ = ["DEFAULT_PREFIX", "TRACED_OPSET", "decoder_model"]

TRACED_OPSET = 18
#: per-factor output name prefix of traced bundles
DEFAULT_PREFIX = "structural_validity_factor"


def decoder_model(
    num_factors: int,
    *,
    config: InferenceConfig,
    validity_taus: Any,
    dtype: str,
    opset: int,
    prefix: str = DEFAULT_PREFIX,
    n_out: int = 1,
    factor_shapes: list[list[Any]] | None = None,
) -> onnx.ModelProto:
    """The strict decoder a traced bundle ends with: inputs ``P``, ``Q`` (and ``V``),
    the strict outputs (reshaped to ``[batch, n_out]`` for several outputs).

    A pure function of its arguments (all recorded in the bundle metadata), so
    the validator rebuilds it and compares it with the end of the stored graph.
    """
    from zpml_symbolic.emit.backends.onnx import strict_decoder_model

    decoder = strict_decoder_model(
        num_factors,
        config=config,
        validity_taus=validity_taus,
        dtype=dtype,
        opset=opset,
        prefix=prefix,
    )
    if n_out > 1:
        _reshape_outputs(decoder, n_out, list(factor_shapes or []))
    return decoder


def _reshape_outputs(model: onnx.ModelProto, k: int, factor_shapes: list[list[Any]]) -> None:
    """Reshape the decoder's ``[batch * k]`` outputs to ``[batch, k]`` (``[batch]`` factors: column 0)."""
    from onnx import helper

    from zpml_runtime.bundle.multi import _all_names, _fresh, _rename_everywhere

    graph = model.graph
    del graph.value_info[:]
    taken = _all_names(graph) | {o.name for o in graph.output}
    old = list(graph.output)
    flat = {o.name: _fresh(f"{o.name}__flat", taken) for o in old}
    _rename_everywhere(graph, flat)
    shape = _fresh("zpml_multi_shape", taken)
    first = _fresh("zpml_multi_first", taken)
    graph.initializer.append(helper.make_tensor(shape, onnx.TensorProto.INT64, [2], [-1, k]))
    if any(shape_ == ["batch"] for shape_ in factor_shapes):
        graph.initializer.append(helper.make_tensor(first, onnx.TensorProto.INT64, [], [0]))
    outputs = []
    for n, o in enumerate(old):
        group = (n - 6) // 3 if n >= 6 else None
        per_sample = group is not None and factor_shapes[group] == ["batch"]
        wide = o.name if not per_sample else _fresh(f"{o.name}__wide", taken)
        graph.node.append(helper.make_node("Reshape", [flat[o.name], shape], [wide]))
        if per_sample:
            graph.node.append(helper.make_node("Gather", [wide, first], [o.name], axis=1))
        elem = o.type.tensor_type.elem_type
        dims: list[str | int] = ["batch"] if per_sample else ["batch", k]
        outputs.append(helper.make_tensor_value_info(o.name, elem, dims))
    del graph.output[:]
    graph.output.extend(outputs)
