"""Export of an arbitrary ``SCMInferenceWrapper`` model: trace ``(P, Q[, V])``,
then append the same strict decoder graph the compiler emits.

Only the model's raw outputs are traced (``torch.onnx.export`` with the
TorchScript exporter); masks, thresholds and provenance come from
:func:`zpml_symbolic.emit.onnx_emit.strict_decoder_model`, so a traced bundle
has exactly the outputs, baked thresholds and metadata of a compiled one.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import onnx
import torch
from torch import nn

from zpml_core.config import InferenceConfig
from zpml_runtime.bundle.format import BundleError
from zpml_runtime.inference.wrapper import split_model_outputs

TRACED_OPSET = 18


class _RawOutputs(nn.Module):
    """``x -> (P, Q[, V])`` with ``P, Q`` of shape ``[batch]`` and ``V`` ``[batch, k]``."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        P, Q, V = split_model_outputs(self.model(x))
        outs = [self._batch(P, "P"), self._batch(Q, "Q")]
        if V is not None:
            Vt = torch.stack(list(V), dim=-1) if isinstance(V, tuple | list) else V
            outs.append(Vt.to(self.dtype))
        return tuple(outs)

    def _batch(self, t: torch.Tensor, name: str) -> torch.Tensor:
        if t.dim() == 2 and t.shape[-1] == 1:
            t = t.squeeze(-1)
        if t.dim() != 1:
            raise BundleError(
                f"the wrapped model's {name} has shape {tuple(t.shape)}; bundles need [batch] or [batch, 1]"
            )
        return t.to(self.dtype)


def traced_strict_model(
    wrapper: Any,
    config: InferenceConfig,
    validity_taus: Any,
    dtype: str,
    opset: int | None,
    example: torch.Tensor,
) -> tuple[onnx.ModelProto, int, int]:
    """Trace the wrapper's model and join it with the strict decoder: ``(model, k, n_vars)``."""
    from zpml_symbolic.emit.onnx_emit import strict_decoder_model

    tdtype = torch.float32 if dtype == "float32" else torch.float64
    raw = _RawOutputs(wrapper.model, tdtype)
    was_training = wrapper.training
    wrapper.eval()
    x = example.detach().to(tdtype)
    try:
        with torch.no_grad():
            outs = raw(x)
        k = outs[2].shape[-1] if len(outs) == 3 else 0
        names = ["P", "Q"] + (["V"] if k else [])
        axes = {n: {0: "batch"} for n in ["x", *names]}
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                raw,
                (x,),
                buf,
                dynamo=False,
                input_names=["x"],
                output_names=names,
                dynamic_axes=axes,
                opset_version=opset or TRACED_OPSET,
            )
    finally:
        wrapper.train(was_training)
    traced = onnx.load_model_from_string(buf.getvalue())
    taus = 0.0 if validity_taus is None else validity_taus
    decoder = strict_decoder_model(
        k, config=config, validity_taus=taus, dtype=dtype, opset=opset or TRACED_OPSET
    )
    ir_version = max(traced.ir_version, decoder.ir_version)
    traced.ir_version = decoder.ir_version = ir_version
    try:
        merged = onnx.compose.merge_models(traced, decoder, io_map=[(n, n) for n in names])
    except Exception as e:  # noqa: BLE001 - onnx raises plain exceptions here
        raise BundleError(f"cannot join the traced model with the strict decoder: {e}") from e
    merged.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    del merged.metadata_props[:]
    onnx.helper.set_model_props(merged, {p.key: p.value for p in decoder.metadata_props})
    return merged, int(k), int(x.shape[-1])


__all__ = ["TRACED_OPSET", "traced_strict_model"]
