"""``export_bundle``: write a strict ONNX bundle atomically.

The model is turned into a graph by :mod:`.export_model`; this module writes the
metadata, rebuilds the graph from it (the graph the validator will reproduce),
and publishes the files (:mod:`.publish`).

A compiled FRU (a strict evaluator or compiled module from
``zpml_symbolic``, or an ``SCMInferenceWrapper`` around one) is exported
through the direct ONNX emitter, never by tracing. Any other model wrapped in
``SCMInferenceWrapper`` is traced (``torch.onnx.export``) for its raw
``(P, Q[, V])`` outputs and joined with the same strict decoder graph.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch

from zpml_core.config import InferenceConfig
from zpml_core.errors import UnsupportedInputError
from zpml_runtime.bundle.errors import BundlePathError
from zpml_runtime.bundle.export_model import (
    ResolvedModel,
    fru_metadata,
    graph_extras,
    resolve_model,
)
from zpml_runtime.bundle.format import (
    BUNDLE_SCHEMA,
    BUNDLE_SCHEMA_VERSION,
    CHECKSUM_FILE,
    MASK_SEMANTICS,
    METADATA_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    SMOKE_FILE,
    STRICT_OUTPUTS,
    BundleError,
    checksum_line,
    dumps_metadata,
    sha256_bytes,
    signature_line,
)
from zpml_runtime.bundle.metadata import BundleMetadata
from zpml_runtime.bundle.model_checks import tensor_signature
from zpml_runtime.bundle.publish import publish_bundle
from zpml_runtime.bundle.reproduce import (
    COMPILED,
    TRACED,
    compiled_views,
    emit_compiled_artifact,
    emitter_record,
)
from zpml_runtime.projective import GaugePolicy

if TYPE_CHECKING:
    from zpml_symbolic.emit.backends.onnx.artifact import OnnxArtifact


@dataclass(frozen=True, slots=True)
class ExportedBundle:
    """Where a bundle was written and its metadata."""

    path: Path
    metadata: dict[str, Any]

    @property
    def info(self) -> BundleMetadata:
        """The written metadata as typed records."""
        return BundleMetadata.parse(self.metadata)


def _package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("zpml", "torch", "onnx", "onnxruntime", "numpy", "sympy", "python-flint"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _signature(model: onnx.ModelProto) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (inp,) = model.graph.input
    return tensor_signature(inp), [tensor_signature(o) for o in model.graph.output]


def _smoke_array(example_inputs: Any, smoke_inputs: Any, dtype: str, n_vars: int) -> np.ndarray:
    source = smoke_inputs if smoke_inputs is not None else example_inputs
    if isinstance(source, tuple | list):
        if len(source) != 1:
            raise BundleError(f"expected one input tensor x, got {len(source)} example inputs")
        source = source[0]
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    arr = np.asarray(source)
    if arr.ndim != 2 or arr.shape[1] != n_vars or arr.shape[0] < 1:
        raise BundleError(
            f"smoke/example inputs must have shape [batch >= 1, {n_vars}], got {arr.shape}"
        )
    return np.ascontiguousarray(arr.astype(dtype))


def _dtype_of(example_inputs: Any, dtype: str | None) -> str:
    if dtype is not None:
        if dtype not in ("float32", "float64"):
            raise BundleError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        return dtype
    first = example_inputs[0] if isinstance(example_inputs, tuple | list) else example_inputs
    name = str(getattr(first, "dtype", "float32")).removeprefix("torch.")
    return name if name in ("float32", "float64") else "float32"


def export_bundle(
    model: Any,
    out_dir: str | os.PathLike[str],
    example_inputs: Any,
    config: InferenceConfig | None = None,
    *,
    validity_taus: float | Sequence[float] | None = None,
    smoke_inputs: Any = None,
    dtype: str | None = None,
    opset: int | None = None,
    bundle_id: str | None = None,
    gauge_policy: GaugePolicy = GaugePolicy.CANONICAL_DENOMINATOR,
    overwrite: bool = False,
    signing_key: bytes | None = None,
    lock_timeout: float = 60.0,
    output_names: Sequence[str] | None = None,
    input_box: Mapping[str, Any] | str | None = None,
) -> ExportedBundle:
    """Write ``model.onnx``, ``metadata.json``, ``metadata.sha256`` and smoke inputs to ``out_dir``.

    ``example_inputs`` is ``(x,)`` with ``x`` of shape ``[batch, n_vars]``; it
    fixes the dtype (unless ``dtype`` is given) and is stored as the smoke
    inputs unless ``smoke_inputs`` is given. ``config`` defaults to the
    model's own.

    The bundle is written to a temporary directory next to ``out_dir``,
    validated completely there (a graph that disagrees with its own metadata is
    never published) and swapped into place atomically under a lock
    (``.<name>.lock`` next to it; racing exports serialise, and one waiting
    longer than ``lock_timeout`` seconds gets :class:`BundleBusyError`). An
    existing directory is replaced only with ``overwrite=True`` and only when it
    is empty or a valid bundle with no other files. ``signing_key`` (bytes)
    adds ``metadata.sig``, an HMAC-SHA256 of ``metadata.json``.

    A model with ``k >= 2`` outputs (a compiled module or strict evaluator of
    several expressions, or a wrapped model whose ``P`` is ``[batch, k]``) gives
    a multi-output bundle (see :mod:`zpml_runtime.bundle.multi`);
    ``output_names`` names its outputs (default ``e0, e1, ...``).

    ``input_box`` declares the operating box, ``{variable: (lo, hi) or value}`` or text
    ``"x=0:1,y=-2:2"`` with exact bounds, covering every input variable (an unknown or
    missing name is an :class:`~zpml_runtime.bundle.domain.InputBoxError` naming it). It is
    recorded exactly as ``metadata["input_box"]``, with ``metadata["domain"]``, the certified
    domain report of the recorded expression over the box (see :mod:`.domain`); validation
    recomputes that report. Compiled models only: a traced model has no exact expression, so
    ``input_box`` is refused for it.
    """
    if not isinstance(out_dir, str | os.PathLike):
        raise UnsupportedInputError(
            f"export_bundle: out_dir must be a path (str or os.PathLike), got "
            f"{type(out_dir).__name__}; the order is export_bundle(model, out_dir, example_inputs)"
        )
    if not os.fspath(out_dir):
        raise BundlePathError("export_bundle: out_dir is empty; name the bundle directory to write")
    out = Path(out_dir)
    if os.path.lexists(out) and not overwrite:
        raise BundleError(f"{out} already exists; pass overwrite=True to replace it")
    if signing_key is not None and (
        not isinstance(signing_key, bytes | bytearray) or not signing_key
    ):
        raise BundleError("signing_key must be non-empty bytes")
    dt = _dtype_of(example_inputs, dtype)
    resolved = resolve_model(model, config, validity_taus, dt, opset, example_inputs, output_names)
    box = None
    if input_box is not None:
        from zpml_runtime.bundle.domain import check_input_box

        box = check_input_box(
            input_box, resolved.variables, resolved.parameters, source=resolved.source
        )
    smoke = _smoke_array(example_inputs, smoke_inputs, dt, len(resolved.variables))
    smoke_bytes = _npy_bytes(smoke)
    inp, outputs = _signature(resolved.model)
    thresholds = {"dtype": dt, **_baked_thresholds(resolved)}
    metadata: dict[str, Any] = {
        "schema": BUNDLE_SCHEMA,
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "bundle_id": bundle_id or out.name,
        "model_file": MODEL_FILE,
        "inference_config": resolved.config.to_metadata(),
        "validity_taus": list(resolved.taus),
        "effective_thresholds": thresholds,
        "input": {**inp, "batch_axis": 0, "variables": list(resolved.variables)},
        "outputs": outputs,
        "output_order": [o["name"] for o in outputs],
        "mask_semantics": dict(MASK_SEMANTICS),
        "gauge_policy": gauge_policy.value
        if isinstance(gauge_policy, GaugePolicy)
        else str(gauge_policy),
        "parameters": dict(resolved.parameters),
        "package_versions": _package_versions(),
        "smoke_inputs": {
            "file": SMOKE_FILE,
            "sha256": sha256_bytes(smoke_bytes),
            "size": len(smoke_bytes),
            "shape": list(smoke.shape),
            "dtype": dt,
        },
        "source": resolved.source,
        "fru": fru_metadata(resolved.fru) if resolved.fru is not None else None,
        "structural_validity_output_schema": resolved.schema.to_metadata()
        if resolved.schema is not None
        else None,
    }
    metadata.update(resolved.extra or {})
    if resolved.multi is not None:
        metadata["multi_output"] = resolved.multi
    if resolved.expressions is not None:
        metadata["expressions"] = resolved.expressions
    if metadata["output_order"][:6] != list(STRICT_OUTPUTS):
        raise BundleError(f"internal: unexpected output order {metadata['output_order']}")
    metadata["emitter"] = emitter_record(
        COMPILED if resolved.source == "compiled_fru" else TRACED, resolved.emitter or {}
    )
    onnx_model = resolved.model
    if resolved.artifact is not None:
        onnx_model = _reproducible_graph(metadata, resolved.artifact)
    if box is not None:
        from zpml_runtime.bundle.domain import export_domain, input_box_metadata

        metadata["input_box"] = input_box_metadata(box)
        metadata["domain"] = export_domain(metadata, box)
    model_bytes = onnx_model.SerializeToString()
    metadata["model_sha256"], metadata["model_size"] = sha256_bytes(model_bytes), len(model_bytes)
    meta_bytes = dumps_metadata(metadata)
    files = {
        MODEL_FILE: model_bytes,
        SMOKE_FILE: smoke_bytes,
        METADATA_FILE: meta_bytes,
        CHECKSUM_FILE: checksum_line(meta_bytes).encode("ascii"),
    }
    if signing_key is not None:
        files[SIGNATURE_FILE] = signature_line(meta_bytes, bytes(signing_key)).encode("ascii")
    publish_bundle(out, files, overwrite=overwrite, lock_timeout=lock_timeout)
    return ExportedBundle(out, metadata)


def _baked_thresholds(resolved: ResolvedModel) -> dict[str, Any]:
    """The thresholds baked into the graph: what the emitter decided (compiled models), or
    read from the traced model's strict decoder."""
    if resolved.artifact is not None and resolved.artifact.effective is not None:
        return resolved.artifact.effective.to_metadata()
    from zpml_symbolic.emit.backends.onnx import read_baked_thresholds

    return read_baked_thresholds(resolved.model)


def _reproducible_graph(metadata: dict[str, Any], built_art: OnnxArtifact) -> onnx.ModelProto:
    """The graph the validator will rebuild from ``metadata`` (the recorded expression
    text, re-parsed and re-flattened): the bundle holds exactly that graph.

    It equals ``built`` (compiled from the model object) unless the expression's text
    lowers to another evaluation order; then the rebuilt one is used, whose metadata
    (signature, thresholds, gauge) must be the same.
    """
    built = built_art.model
    _, frus, problems = compiled_views(metadata)
    if problems or any(f is None for f in frus):
        raise BundleError(
            "internal: the compiled expression does not survive its own metadata (text and "
            f"exact terms disagree), so the bundle could not be verified: {'; '.join(problems)}"
        )
    rebuilt_art = emit_compiled_artifact(metadata, frus)
    rebuilt = rebuilt_art.model
    if rebuilt.SerializeToString() == built.SerializeToString():
        return built
    same = (
        _signature(rebuilt) == _signature(built)
        and rebuilt_art.effective == built_art.effective
        and graph_extras(rebuilt_art) == graph_extras(built_art)
    )
    if not same:
        raise BundleError(
            "internal: the graph rebuilt from the recorded expression has another signature, "
            "thresholds or gauge than the compiled model's"
        )
    return rebuilt


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


__all__ = ["ExportedBundle", "export_bundle", "fru_metadata"]
