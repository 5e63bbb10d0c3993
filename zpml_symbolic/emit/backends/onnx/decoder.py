"""``strict_decoder_model``: the strict decoding alone, as a graph from ``P``, ``Q``, ``V``
(appended to traced models with ``onnx.compose.merge_models``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import onnx
from onnx import helper

from zpml_core.config import InferenceConfig
from zpml_symbolic.emit.backends.onnx.arguments import (
    check_config,
    check_dtype,
    check_opset,
    checked_factor_taus,
)
from zpml_symbolic.emit.backends.onnx.decode import bake_thresholds, strict_decode, strict_outputs
from zpml_symbolic.emit.backends.onnx.graph import (
    BATCH_DIM,
    DTYPES,
    METADATA_PREFIX,
    OUTPUT_NAMES,
    PRODUCER_NAME,
    T_FACTOR,
    T_INFER,
    T_TRAIN,
    Graph,
)
from zpml_symbolic.emit.backends.onnx.metadata import package_version
from zpml_symbolic.emit.lowering.gauge import OutputGauge, gauged_thresholds
from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.flatten.schema import check_prefix

__all__ = ["strict_decoder_model"]


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

    Same outputs, masks and baked thresholds as
    :func:`~zpml_symbolic.emit.backends.onnx.emit.to_onnx`; used to
    append strict decoding to a traced model (``onnx.compose.merge_models``).
    """
    dtype = check_dtype(dtype)
    opset = check_opset(opset)
    cfg = check_config(config)
    check_prefix(prefix)
    if isinstance(num_factors, bool) or not isinstance(num_factors, int) or num_factors < 0:
        raise InvalidArgumentError(f"num_factors must be an int >= 0, got {num_factors!r}")
    taus = checked_factor_taus(validity_taus, num_factors)
    factor_names = [
        (f"{prefix}_{i}_value", f"{prefix}_{i}_fault_mask", f"{prefix}_{i}_semantic_bottom_mask")
        for i in range(num_factors)
    ]
    reserved = {"P", "Q", "V", *OUTPUT_NAMES, *(n for names in factor_names for n in names)}
    reserved |= {T_INFER, T_TRAIN, *(T_FACTOR.format(i) for i in range(num_factors))}
    g = Graph(dtype, reserved)
    g.batch_ref = "Q"
    eff = bake_thresholds(g, gauged_thresholds(cfg, taus, num_factors, OutputGauge()), dtype)
    g.rank["P"] = g.rank["Q"] = 1
    factors = [
        g.node("Gather", ["V", g.const(i, "int64")], f"V{i}", axis=1) for i in range(num_factors)
    ]
    thresholds = [T_FACTOR.format(i) for i in range(num_factors)]
    strict_decode(g, "P", "Q", factors, factor_names, thresholds, eff.t_train is not None)
    nodes, initializers = g.finish()
    elem = DTYPES[dtype][0]
    inputs = [helper.make_tensor_value_info(n, elem, [BATCH_DIM]) for n in ("P", "Q")]
    if num_factors:
        inputs.append(helper.make_tensor_value_info("V", elem, [BATCH_DIM, num_factors]))
    outputs = strict_outputs(elem, factor_names)
    graph = helper.make_graph(
        nodes, "zpml_strict_decoder", inputs, outputs, initializer=initializers
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name=PRODUCER_NAME,
        producer_version=package_version(),
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    metadata = {
        "dtype": dtype,
        "tau_infer": json.dumps(cfg.tau_infer),
        "tau_train": json.dumps(cfg.tau_train),
        "validity_taus": json.dumps(list(taus)),
        "effective_thresholds": json.dumps(eff.to_metadata()),
        "inference_config": json.dumps(cfg.to_metadata()),
    }
    helper.set_model_props(model, {METADATA_PREFIX + key: value for key, value in metadata.items()})
    return model
