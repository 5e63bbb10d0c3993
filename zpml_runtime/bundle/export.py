"""``export_bundle``: write a strict ONNX bundle atomically.

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
from typing import Any

import numpy as np
import onnx
import torch

from zpml_core.config import InferenceConfig
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
from zpml_runtime.bundle.publish import publish_bundle
from zpml_runtime.bundle.reproduce import (
    COMPILED,
    TRACED,
    compiled_views,
    emit_compiled,
    emitter_record,
)
from zpml_runtime.projective import GaugePolicy

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.INT8: "int8",
}


@dataclass(frozen=True, slots=True)
class ExportedBundle:
    """Where a bundle was written and its metadata."""

    path: Path
    metadata: dict[str, Any]


@dataclass(slots=True)
class _Resolved:
    model: onnx.ModelProto
    config: InferenceConfig
    taus: tuple[float, ...]
    variables: tuple[str, ...]
    parameters: dict[str, float]
    fru: Any
    schema: Any
    source: str
    multi: dict[str, Any] | None = None  # metadata["multi_output"] (k >= 2 outputs)
    expressions: list[dict[str, Any]] | None = None  # compiled multi-output: per output
    extra: dict[str, Any] | None = None  # further metadata keys (gauge, parameter_initializers)
    emitter: dict[str, Any] | None = None  # emitter options recorded for reproduction


def _package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("zpml", "torch", "onnx", "onnxruntime", "numpy", "sympy", "python-flint"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _taus_tuple(value: float | Sequence[float], k: int) -> tuple[float, ...]:
    if isinstance(value, int | float):
        return (float(value),) * k
    items = tuple(float(v) for v in value)
    if len(items) != k:
        raise BundleError(
            f"validity_taus has {len(items)} entries but the model has {k} validity factors"
        )
    return items


def _resolve(
    model: Any,
    config: InferenceConfig | None,
    validity_taus: Any,
    dtype: str,
    opset: int | None,
    example: Any,
    output_names: Sequence[str] | None = None,
) -> _Resolved:
    """Turn the supported model kinds into an ONNX graph plus what metadata needs."""
    from zpml_runtime.bundle.traced import DEFAULT_PREFIX as TRACED_PREFIX
    from zpml_runtime.inference.wrapper import SCMInferenceWrapper

    try:
        from zpml_symbolic.emit.backends.torch_emit import RationalModule
        from zpml_symbolic.emit.onnx_emit import DEFAULT_TILE_ROWS, to_onnx
        from zpml_symbolic.emit.strict import StrictEvaluator
    except ImportError:  # pragma: no cover - both packages ship together
        StrictEvaluator = RationalModule = None  # type: ignore[assignment,misc]

    inner = model.model if isinstance(model, SCMInferenceWrapper) else model
    if isinstance(model, SCMInferenceWrapper):
        config = config or model.config
        validity_taus = model.validity_taus if validity_taus is None else validity_taus
    if StrictEvaluator is not None and isinstance(inner, StrictEvaluator):
        config = config or inner.config
        validity_taus = inner.validity_taus if validity_taus is None else validity_taus
        prefix = inner.schema.prefix
        inner = inner.model
    else:
        prefix = "structural_validity_factor"
    config = config or InferenceConfig(tau_infer=0.0)
    if RationalModule is not None and isinstance(inner, RationalModule):
        if len(inner.frus) > 1:
            return _resolve_compiled_multi(
                inner, config, validity_taus, dtype, opset, prefix, output_names
            )
        fru = inner.frus[0]
        k = len(fru.validity_factors)
        taus = _taus_tuple(0.0 if validity_taus is None else validity_taus, k)
        onnx_model = to_onnx(
            inner,
            config=config,
            validity_taus=taus,
            dtype=dtype,
            opset=opset,
            prefix=prefix,
            tile_rows=DEFAULT_TILE_ROWS,
        )
        return _Resolved(
            onnx_model,
            config,
            taus,
            inner.variables,
            inner.coefficient_values(),
            fru,
            fru.structural_validity_output_schema(prefix=prefix),
            "compiled_fru",
            extra=_graph_extras(onnx_model),
            emitter=_emitter_options(onnx_model, prefix, DEFAULT_TILE_ROWS),
        )
    if isinstance(model, SCMInferenceWrapper):
        from zpml_runtime.bundle.traced import traced_strict_model

        onnx_model, k, n_vars, layout = traced_strict_model(
            model, config, validity_taus, dtype, opset, torch.as_tensor(_first(example))
        )
        taus = _taus_tuple(0.0 if validity_taus is None else validity_taus, k)
        multi = None
        if layout is not None:
            from zpml_runtime.bundle.multi import check_output_names

            n_out = layout["k"]
            multi = {
                "k": n_out,
                "output_names": check_output_names(output_names, n_out),
                "factors": [
                    {"index": g, "shape": shape, "outputs": list(range(n_out))}
                    for g, shape in enumerate(layout["factor_shapes"])
                ],
            }
        elif output_names is not None:
            raise BundleError("output_names= is for models with several outputs")
        return _Resolved(
            onnx_model,
            config,
            taus,
            tuple(f"x{i}" for i in range(n_vars)),
            {},
            None,
            None,
            "traced_model",
            multi=multi,
            emitter=_emitter_options(onnx_model, TRACED_PREFIX, None),
        )
    raise BundleError(
        "export_bundle supports zpml_symbolic strict evaluators and compiled modules, and "
        f"SCMInferenceWrapper models; got {type(model).__name__}"
    )


def _emitter_options(
    onnx_model: onnx.ModelProto, prefix: str, tile_rows: int | None
) -> dict[str, Any]:
    """What the validator needs besides the metadata to emit the same graph again."""
    opset = next(o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))
    out: dict[str, Any] = {"opset": int(opset), "prefix": prefix}
    if tile_rows is not None:
        out["tile_rows"] = tile_rows
    return out


def _graph_extras(onnx_model: onnx.ModelProto) -> dict[str, Any]:
    """Metadata a compiled graph needs beyond the defaults: its power-of-two gauge
    (``gauge_exponents``, only when regauged) and non-default parameter initializer names."""
    from zpml_symbolic.emit.onnx_emit import read_metadata

    md = read_metadata(onnx_model)
    out: dict[str, Any] = {}
    if md.get("gauge_exponents"):
        out["gauge_exponents"] = md["gauge_exponents"]
    if md.get("parameter_initializers"):
        out["parameter_initializers"] = md["parameter_initializers"]
    return out


def _resolve_compiled_multi(
    inner: Any,
    config: InferenceConfig,
    validity_taus: Any,
    dtype: str,
    opset: int | None,
    prefix: str,
    output_names: Sequence[str] | None,
) -> _Resolved:
    """A module of several expressions: one graph with ``[batch, k]`` strict outputs."""
    from zpml_runtime.bundle.multi import check_output_names, stack_expression_outputs
    from zpml_symbolic.emit.onnx_emit import (
        DEFAULT_TILE_ROWS,
        expression_prefixes,
        read_metadata,
        to_onnx,
    )

    frus = inner.frus
    n_out = len(frus)
    names = check_output_names(output_names, n_out)
    onnx_model = to_onnx(
        inner,
        config=config,
        validity_taus=0.0 if validity_taus is None else validity_taus,
        dtype=dtype,
        opset=opset,
        prefix=prefix,
        tile_rows=DEFAULT_TILE_ROWS,
    )
    md = read_metadata(onnx_model)
    per_expr_taus = [list(t) for t in md["validity_taus"]]
    counts = [len(t) for t in per_expr_taus]
    stack_expression_outputs(onnx_model, expression_prefixes(n_out), counts, prefix)
    gauges = md.get("gauge_exponents") or [
        {"PQ": 0, "V": [0] * c} for c in counts
    ]
    expressions, factors, offset = [], [], 0
    for j, fru in enumerate(frus):
        expressions.append(
            {
                "output": names[j],
                "fru": fru_metadata(fru),
                "schema": fru.structural_validity_output_schema(prefix=prefix).to_metadata(),
                "validity_taus": per_expr_taus[j],
                "gauge": gauges[j],
                "factor_offset": offset,
            }
        )
        for i in range(counts[j]):
            factors.append(
                {"index": offset + i, "shape": ["batch"], "outputs": [j], "local_index": i}
            )
        offset += counts[j]
    extra = {}
    if md.get("parameter_initializers"):
        extra["parameter_initializers"] = md["parameter_initializers"]
    return _Resolved(
        onnx_model,
        config,
        tuple(float(t) for taus in per_expr_taus for t in taus),
        inner.variables,
        inner.coefficient_values(),
        None,
        None,
        "compiled_fru",
        multi={"k": n_out, "output_names": names, "factors": factors},
        expressions=_json_ready(expressions),
        extra=extra,
        emitter=_emitter_options(onnx_model, prefix, DEFAULT_TILE_ROWS),
    )


def _json_ready(value: Any) -> Any:
    """Plain JSON types (python-flint integers and other numbers become ints/strings)."""
    import json

    from zpml_symbolic.emit.onnx_emit import _json_default

    return json.loads(json.dumps(value, default=_json_default))


def _signature(model: onnx.ModelProto) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    def tensor(vi: onnx.ValueInfoProto) -> dict[str, Any]:
        t = vi.type.tensor_type
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return {
            "name": vi.name,
            "dtype": _ONNX_DTYPES.get(t.elem_type, str(t.elem_type)),
            "shape": shape,
        }

    (inp,) = model.graph.input
    return tensor(inp), [tensor(o) for o in model.graph.output]


def fru_metadata(fru: Any) -> dict[str, Any]:
    """The ``fru`` section of the metadata: expression, exact terms, provenance."""
    from zpml_runtime.bundle.irjson import dump_ir
    from zpml_symbolic.flatten.fru import poly_terms
    from zpml_symbolic.ir.printer import to_text

    ngens = len(fru.generators)
    return {
        "expression": to_text(fru.root),
        "generators": [s.name for s in fru.generators],
        "numerator": str(fru.numerator),
        "denominator": str(fru.denominator),
        "numerator_terms": [[list(m), c] for m, c in poly_terms(fru.numerator_poly_ring, ngens)],
        "denominator_terms": [
            [list(m), c] for m, c in poly_terms(fru.denominator_poly_ring, ngens)
        ],
        "denominator_factors": [[str(f), m] for f, m in fru.denominator_factors],
        "validity_factors": [str(v) for v in fru.validity_factors],
        "mode": fru.mode,
        "provenance": fru.provenance_metadata(),
        "ir": dump_ir(fru.root),
    }


def _first(example_inputs: Any) -> Any:
    if isinstance(example_inputs, tuple | list):
        if len(example_inputs) != 1:
            raise BundleError(
                f"expected one input tensor x, got {len(example_inputs)} example inputs"
            )
        return example_inputs[0]
    return example_inputs


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
    out = Path(out_dir)
    if os.path.lexists(out) and not overwrite:
        raise BundleError(f"{out} already exists; pass overwrite=True to replace it")
    if signing_key is not None and (not isinstance(signing_key, bytes | bytearray) or not signing_key):
        raise BundleError("signing_key must be non-empty bytes")
    dt = _dtype_of(example_inputs, dtype)
    resolved = _resolve(model, config, validity_taus, dt, opset, example_inputs, output_names)
    box = None
    if input_box is not None:
        from zpml_runtime.bundle.domain import check_input_box

        box = check_input_box(
            input_box, resolved.variables, resolved.parameters, source=resolved.source
        )
    smoke = _smoke_array(example_inputs, smoke_inputs, dt, len(resolved.variables))
    smoke_bytes = _npy_bytes(smoke)
    inp, outputs = _signature(resolved.model)
    from zpml_symbolic.emit.onnx_emit import read_baked_thresholds

    thresholds = {"dtype": dt, **read_baked_thresholds(resolved.model)}
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
    if resolved.source == "compiled_fru":
        onnx_model = _reproducible_graph(metadata, onnx_model)
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


def _reproducible_graph(metadata: dict[str, Any], built: onnx.ModelProto) -> onnx.ModelProto:
    """The graph the validator will rebuild from ``metadata`` (the recorded expression
    text, re-parsed and re-flattened): the bundle holds exactly that graph.

    It equals ``built`` (compiled from the model object) unless the expression's text
    lowers to another evaluation order; then the rebuilt one is used, whose metadata
    (signature, thresholds, gauge) must be the same.
    """
    from zpml_symbolic.emit.onnx_emit import read_baked_thresholds

    _, frus, problems = compiled_views(metadata)
    if problems or any(f is None for f in frus):
        raise BundleError(
            "internal: the compiled expression does not survive its own metadata (text and "
            f"exact terms disagree), so the bundle could not be verified: {'; '.join(problems)}"
        )
    rebuilt = emit_compiled(metadata, frus)
    if rebuilt.SerializeToString() == built.SerializeToString():
        return built
    same = (
        _signature(rebuilt) == _signature(built)
        and read_baked_thresholds(rebuilt) == read_baked_thresholds(built)
        and _graph_extras(rebuilt) == _graph_extras(built)
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


__all__ = ["ExportedBundle", "export_bundle"]
