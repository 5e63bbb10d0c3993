"""What ``export_bundle`` needs from a model: the ONNX graph and the metadata parts.

A compiled FRU (a strict evaluator, compiled module, or an ``SCMInferenceWrapper``
around one) goes through the direct ONNX emitter; a module of several
expressions becomes one graph with ``[batch, k]`` strict outputs; any other
wrapped model is traced (:mod:`.traced`). :func:`resolve_model` returns a
:class:`ResolvedModel` with the graph and everything the metadata records
about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import onnx
import torch

from zpml_core.config import InferenceConfig
from zpml_runtime.bundle.errors import BundleError

if TYPE_CHECKING:
    from zpml_symbolic.emit.backends.onnx.artifact import OnnxArtifact


@dataclass(slots=True)
class ResolvedModel:
    """A model turned into an ONNX graph, with what the bundle metadata records about it."""

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
    #: what the ONNX back end built (compiled models; ``None`` for traced ones)
    artifact: OnnxArtifact | None = None


def _taus_tuple(value: float | Sequence[float], k: int) -> tuple[float, ...]:
    if isinstance(value, int | float):
        return (float(value),) * k
    items = tuple(float(v) for v in value)
    if len(items) != k:
        raise BundleError(
            f"validity_taus has {len(items)} entries but the model has {k} validity factors"
        )
    return items


def resolve_model(
    model: Any,
    config: InferenceConfig | None,
    validity_taus: Any,
    dtype: str,
    opset: int | None,
    example: Any,
    output_names: Sequence[str] | None = None,
) -> ResolvedModel:
    """Turn the supported model kinds into an ONNX graph plus what metadata needs."""
    from zpml_runtime.bundle.traced import DEFAULT_PREFIX as TRACED_PREFIX
    from zpml_runtime.inference.wrapper import SCMInferenceWrapper

    try:
        from zpml_symbolic.emit.backends.onnx import DEFAULT_TILE_ROWS, emit_onnx_artifact
        from zpml_symbolic.emit.backends.strict import StrictEvaluator
        from zpml_symbolic.emit.backends.torch_emit import RationalModule
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
        art = emit_onnx_artifact(
            inner,
            config=config,
            validity_taus=taus,
            dtype=dtype,
            opset=opset,
            prefix=prefix,
            tile_rows=DEFAULT_TILE_ROWS,
        )
        onnx_model = art.model
        return ResolvedModel(
            onnx_model,
            config,
            taus,
            inner.variables,
            inner.coefficient_values(),
            fru,
            fru.structural_validity_output_schema(prefix=prefix),
            "compiled_fru",
            extra=graph_extras(art),
            emitter=_emitter_options(onnx_model, prefix, DEFAULT_TILE_ROWS),
            artifact=art,
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
        return ResolvedModel(
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


def graph_extras(art: OnnxArtifact) -> dict[str, Any]:
    """Metadata a compiled graph needs beyond the defaults: its power-of-two gauge
    (``gauge_exponents``, only when regauged) and non-default parameter initializer names
    (as the emitter records them in the graph)."""
    out: dict[str, Any] = {}
    if art.regauged:
        out["gauge_exponents"] = [g.to_metadata() for g in art.gauges]
    names = _initializer_names(art)
    if names:
        out["parameter_initializers"] = names
    return out


def _initializer_names(art: OnnxArtifact) -> dict[str, str]:
    """Each parameter's initializer name, when one differs from the parameter's (else {})."""
    inits = art.parameter_initializers
    if any(inits[n] != n for n in art.parameters):
        return dict(inits)
    return {}


def _resolve_compiled_multi(
    inner: Any,
    config: InferenceConfig,
    validity_taus: Any,
    dtype: str,
    opset: int | None,
    prefix: str,
    output_names: Sequence[str] | None,
) -> ResolvedModel:
    """A module of several expressions: one graph with ``[batch, k]`` strict outputs."""
    from zpml_runtime.bundle.multi import check_output_names, stack_expression_outputs
    from zpml_symbolic.emit.backends.onnx import (
        DEFAULT_TILE_ROWS,
        emit_onnx_artifact,
        expression_prefixes,
    )

    frus = inner.frus
    n_out = len(frus)
    names = check_output_names(output_names, n_out)
    art = emit_onnx_artifact(
        inner,
        config=config,
        validity_taus=0.0 if validity_taus is None else validity_taus,
        dtype=dtype,
        opset=opset,
        prefix=prefix,
        tile_rows=DEFAULT_TILE_ROWS,
    )
    onnx_model = art.model
    per_expr_taus = art.per_expression_taus
    counts = [len(t) for t in per_expr_taus]
    stack_expression_outputs(onnx_model, expression_prefixes(n_out), counts, prefix)
    gauges = (
        [g.to_metadata() for g in art.gauges]
        if art.regauged
        else [{"PQ": 0, "V": [0] * c} for c in counts]
    )
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
    extra: dict[str, Any] = {}
    if _initializer_names(art):
        extra["parameter_initializers"] = _initializer_names(art)
    return ResolvedModel(
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
        artifact=art,
    )


def _json_ready(value: Any) -> Any:
    """Plain JSON types (python-flint integers and other numbers become ints/strings)."""
    import json

    from zpml_symbolic.emit.backends.onnx.metadata import json_default as _json_default

    return json.loads(json.dumps(value, default=_json_default))


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


__all__ = ["ResolvedModel", "fru_metadata", "graph_extras", "resolve_model"]
