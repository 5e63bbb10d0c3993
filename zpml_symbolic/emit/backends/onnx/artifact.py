"""``OnnxArtifact``: what the ONNX back end built, typed, so consumers need not re-read
the metadata it has just written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import onnx

from zpml_core.resolution import EffectiveThresholds, ResolvedThresholds
from zpml_symbolic.emit.lowering.gauge import OutputGauge

__all__ = ["OnnxArtifact"]


@dataclass(frozen=True, eq=False)
class OnnxArtifact:
    """An emitted ONNX model and the decisions behind it (from :func:`emit_onnx_artifact`).

    Usage::

        from zpml_symbolic.emit.backends.onnx import emit_onnx_artifact

        art = emit_onnx_artifact("1/(x - y)", config=InferenceConfig(tau_infer=1e-6))
        onnx.save(art.model, "model.onnx")          # the same bytes as to_onnx(...)
        art.effective.t_infer                        # the threshold the graph compares with
        art.thresholds[0].factor_taus                # validated per-factor taus of expression 0
        art.metadata["variables"]                    # what read_metadata(art.model) returns

    Attributes:
        model: the ``onnx.ModelProto`` (:func:`to_onnx` returns exactly this).
        thresholds: per expression, the validated thresholds in the canonical gauge with
            that expression's power-of-two gauge (empty for ``outputs="quotient"``).
        effective: the thresholds baked into the graph, in the graph's compute dtype, all
            expressions' factors in order (``None`` for ``outputs="quotient"``).
        metadata: the ``zpml.*`` metadata written into ``model.metadata_props``, JSON values
            decoded, keys without the prefix (equal to ``read_metadata(model)``).
        gauges: the emitted gauge of each expression (all zero unless regauged).
        input_name: the graph input (``[batch, n_vars]``).
        output_names: the graph outputs in order.
        variables: the input columns, in order.
        parameters: the learnable coefficients (initializers), in order.
        parameter_initializers: each parameter's initializer name.
        coefficients: the coefficient values baked into the initializers.
        dtype: the input/``decoded`` dtype; ``compute_dtype`` the dtype of ``P``, ``Q``, ``V``.
        tile_rows: rows per ``Scan`` tile, or ``None`` (flat graph).
        strict: True for the strict outputs, False for ``outputs="quotient"``.
    """

    model: onnx.ModelProto
    thresholds: tuple[ResolvedThresholds, ...]
    effective: EffectiveThresholds | None
    metadata: Mapping[str, Any]
    gauges: tuple[OutputGauge, ...]
    input_name: str
    output_names: tuple[str, ...]
    variables: tuple[str, ...]
    parameters: tuple[str, ...]
    parameter_initializers: Mapping[str, str]
    coefficients: Mapping[str, float]
    dtype: str
    compute_dtype: str
    tile_rows: int | None
    strict: bool

    @property
    def per_expression_taus(self) -> list[list[float]]:
        """Each expression's validated factor thresholds (canonical gauge)."""
        return [list(t.factor_taus) for t in self.thresholds]

    @property
    def regauged(self) -> bool:
        """True when some expression was emitted in a power-of-two gauge."""
        return any(g.pq or any(g.v) for g in self.gauges)
