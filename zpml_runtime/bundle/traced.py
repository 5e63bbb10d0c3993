"""Export of an arbitrary ``SCMInferenceWrapper`` model: trace ``(P, Q[, V])``,
then append the same strict decoder graph the compiler emits.

Only the model's raw outputs are traced (``torch.onnx.export`` with the
TorchScript exporter); masks, thresholds and provenance come from
:func:`zpml_symbolic.emit.backends.onnx.decoder.strict_decoder_model`, so a traced bundle
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
from zpml_runtime.bundle.decoder import DEFAULT_PREFIX, TRACED_OPSET, decoder_model
from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.inference.wrapper import split_model_outputs


class _RawOutputs(nn.Module):
    """``x -> (P, Q[, V])`` with ``P, Q`` of shape ``[batch]`` and ``V`` ``[batch, m]``.

    With ``k >= 2`` outputs (``P`` of shape ``[batch, k]``) every tensor is
    flattened to ``[batch * k]`` (``Q`` and ``[batch]`` factors repeated per
    output), so the one-output strict decoder applies entry by entry; the
    graph reshapes the results back to ``[batch, k]``.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype, k: int = 1) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.k = k

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        P, Q, V = split_model_outputs(self.model(x))
        if self.k > 1:
            return self._multi(P, Q, V)
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
                f"the wrapped model's {name} has shape {tuple(t.shape)}; bundles need [batch] or "
                "[batch, 1] (one output), or P of shape [batch, k] for k outputs"
            )
        return t.to(self.dtype)

    def _per_output(self, t: torch.Tensor, name: str) -> torch.Tensor:
        """``[batch]``, ``[batch, 1]`` or ``[batch, k]`` -> ``[batch * k]``."""
        k = self.k
        if t.dim() == 2 and t.shape[-1] == 1:
            t = t.squeeze(-1)
        if t.dim() == 1:
            t = t.unsqueeze(-1).expand(-1, k)
        if t.dim() != 2 or t.shape[-1] != k:
            raise BundleError(
                f"the wrapped model's {name} has shape {tuple(t.shape)}; with P of shape "
                f"[batch, {k}] it must be [batch], [batch, 1] or [batch, {k}]"
            )
        return t.to(self.dtype).reshape(-1)

    def _multi(self, P: torch.Tensor, Q: torch.Tensor, V: Any) -> tuple[torch.Tensor, ...]:
        outs = [self._per_output(P, "P"), self._per_output(Q, "Q")]
        factors = _factor_list(V)
        if factors:
            cols = [self._per_output(v, f"validity factor {i}") for i, v in enumerate(factors)]
            outs.append(torch.stack(cols, dim=-1))
        return tuple(outs)


def _factor_list(V: Any) -> list[torch.Tensor]:
    """Validity factors as a list: a tensor ``[batch, m]`` is ``m`` factors of shape ``[batch]``."""
    if V is None:
        return []
    if isinstance(V, torch.Tensor):
        if V.dim() != 2:
            raise BundleError(
                f"the wrapped model's V has shape {tuple(V.shape)}; give [batch, m] or a list of "
                "[batch] / [batch, k] tensors"
            )
        return [V[:, i] for i in range(V.shape[-1])]
    return list(V)


def _output_layout(model: nn.Module, x: torch.Tensor) -> tuple[int, list[list[Any]]]:
    """``(k, factor shapes)`` from one eager run: ``k = 1`` unless ``P`` is ``[batch, k >= 2]``."""
    P, _, V = split_model_outputs(model(x))
    if P.dim() != 2 or P.shape[-1] < 2:
        return 1, []
    k = int(P.shape[-1])
    shapes = []
    for v in _factor_list(V):
        per_output = v.dim() == 2 and v.shape[-1] == k and k > 1
        shapes.append(["batch", k] if per_output else ["batch"])
    return k, shapes


def traced_strict_model(
    wrapper: Any,
    config: InferenceConfig,
    validity_taus: Any,
    dtype: str,
    opset: int | None,
    example: torch.Tensor,
) -> tuple[onnx.ModelProto, int, int, dict[str, Any] | None]:
    """Trace the wrapper's model and join it with the strict decoder.

    Returns ``(model, number of factors, n_vars, layout)``; ``layout`` is ``None``
    for one output, else ``{"k": k, "factor_shapes": [...]}`` (see
    :mod:`zpml_runtime.bundle.multi`). The graph is the traced part (computing
    ``P``, ``Q``, ``V``) followed by :func:`decoder_model`, unchanged.
    """
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    was_training = wrapper.training
    wrapper.eval()
    x = example.detach().to(tdtype)
    try:
        with torch.no_grad():
            n_out, factor_shapes = _output_layout(wrapper.model, x)
            raw = _RawOutputs(wrapper.model, tdtype, n_out)
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
                buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
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
    decoder = decoder_model(
        int(k),
        config=config,
        validity_taus=taus,
        dtype=dtype,
        opset=opset or TRACED_OPSET,
        n_out=n_out,
        factor_shapes=factor_shapes,
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
    if n_out == 1:
        return merged, int(k), int(x.shape[-1]), None
    # both parts call their leading axis "batch", but P, Q, V are [batch * k] here:
    # the optional shape annotations of the traced part would contradict, drop them
    del merged.graph.value_info[:]
    return merged, int(k), int(x.shape[-1]), {"k": n_out, "factor_shapes": factor_shapes}


__all__ = ["DEFAULT_PREFIX", "TRACED_OPSET", "decoder_model", "traced_strict_model"]
