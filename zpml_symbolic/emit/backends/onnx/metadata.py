"""The ``zpml.*`` metadata of an emitted model: JSON helpers and the readers of the
metadata and of the thresholds baked into the graph."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import onnx
from onnx import numpy_helper

from zpml_symbolic.emit.backends.onnx.graph import METADATA_PREFIX, T_FACTOR, T_INFER, T_TRAIN
from zpml_symbolic.errors import EmitError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from zpml_core.config import InferenceConfig
    from zpml_core.resolution import EffectiveThresholds
    from zpml_symbolic.emit.lowering.gauge import OutputGauge
    from zpml_symbolic.emit.lowering.plan import Plan

__all__ = [
    "check_baked_thresholds",
    "json_default",
    "json_float",
    "model_metadata",
    "package_version",
    "read_baked_thresholds",
    "read_metadata",
    "thresholds_json",
]


def package_version() -> str:
    import zpml_symbolic  # late: this module is imported while the package initialises

    return str(getattr(zpml_symbolic, "__version__", "unknown"))


def json_float(v: float | None) -> float | str | None:
    """JSON-safe float: non-finite values (e.g. a huge tau in float32) become ``"inf"``, ``"-inf"``, ``"nan"``."""
    if v is None or math.isfinite(v):
        return v
    return repr(v)


def json_default(obj: object) -> int | str:
    """Integers of other libraries (e.g. python-flint ``fmpz`` exponents) as ints, else text."""
    if isinstance(obj, numbers.Integral):
        return int(obj)
    index = getattr(obj, "__index__", None)
    if callable(index):
        return int(index())
    return str(obj)


def thresholds_json(
    t_infer: float, t_train: float | None, t_factors: Sequence[float]
) -> dict[str, Any]:
    return {
        "t_infer": json_float(t_infer),
        "t_train": json_float(t_train),
        "t_factors": [json_float(t) for t in t_factors],
    }


def model_metadata(
    plan: Plan,
    prefixes: Sequence[str],
    schemas: Sequence[Any],
    output_names: Sequence[str],
    *,
    version: str,
    dtype: str,
    narrow: str | None,
    wide: str,
    cfg: InferenceConfig,
    taus_k: list[tuple[float, ...]],
    effective: EffectiveThresholds | None,
    coefficients: Mapping[str, float],
    param_inits: Mapping[str, str],
    gauges: Sequence[OutputGauge],
    tile_rows: int | None,
) -> dict[str, str]:
    """The ``zpml.*`` metadata of a model from ``to_onnx`` (keys without the prefix,
    JSON-encoded values); ``effective`` is ``None`` for the quotient-only graph."""
    strict = effective is not None
    n_expr = len(plan.frus)
    metadata: dict[str, str] = {"version": version, "dtype": dtype}
    if narrow is not None:
        metadata["compute_dtype"] = wide
    if n_expr == 1:
        fru = plan.frus[0]
        metadata |= {
            "expression": str(fru.expression),
            "numerator": str(fru.numerator),
            "denominator": str(fru.denominator),
        }
    metadata |= {
        "gauge": "canonical_denominator",
        "variables": json.dumps(list(plan.variables)),
        "parameters": json.dumps(list(plan.parameters)),
        "coefficients": json.dumps({n: json_float(v) for n, v in coefficients.items()}),
    }
    if any(param_inits[n] != n for n in plan.parameters):
        metadata["parameter_initializers"] = json.dumps(dict(param_inits))
    if any(gz.pq or any(gz.v) for gz in gauges):
        metadata["gauge_exponents"] = json.dumps([gz.to_metadata() for gz in gauges])
    if effective is not None:
        metadata |= {
            "tau_infer": json.dumps(cfg.tau_infer),
            "tau_train": json.dumps(cfg.tau_train),
            "validity_taus": json.dumps(
                list(taus_k[0]) if n_expr == 1 else [list(t) for t in taus_k]
            ),
            "effective_thresholds": json.dumps(effective.to_metadata()),
            "inference_config": json.dumps(cfg.to_metadata()),
        }
    metadata |= {
        "outputs": "strict" if strict else "quotient",
        "output_names": json.dumps(list(output_names)),
        "tile_rows": json.dumps(tile_rows),
    }
    if strict and n_expr == 1:
        metadata["schema"] = json.dumps(schemas[0].to_metadata(), default=json_default)
    if n_expr > 1:
        metadata["expressions"] = json.dumps(
            [
                {
                    "expression": str(f.expression),
                    "numerator": str(f.numerator),
                    "denominator": str(f.denominator),
                    "output_prefix": prefixes[k],
                    "output_names": [n for n in output_names if n.startswith(prefixes[k])],
                    **({"schema": schemas[k].to_metadata()} if strict else {}),
                }
                for k, f in enumerate(plan.frus)
            ],
            default=json_default,
        )
    return metadata


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """The ``zpml.*`` metadata of ``model``, JSON values decoded (keys without the prefix)."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            key = prop.key.removeprefix(METADATA_PREFIX)
            try:
                out[key] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[key] = prop.value
    return out


def read_baked_thresholds(model: onnx.ModelProto) -> dict[str, Any]:
    """The thresholds the GRAPH compares against, read from its initializers (or
    Constant nodes) ``zpml_t_infer``, ``zpml_t_train``, ``zpml_t_factor_{i}``.

    Returns ``{"t_infer": float, "t_train": float | None, "t_factors": [float, ...]}``
    with infinities as ``"inf"``, the layout of the ``zpml.effective_thresholds``
    metadata, so ``read_baked_thresholds(m) == read_metadata(m)["effective_thresholds"]``
    checks that both records agree.
    """
    found: dict[str, float] = {}
    for tensor in model.graph.initializer:
        if tensor.name.startswith("zpml_t_"):
            found[tensor.name] = float(numpy_helper.to_array(tensor).reshape(()))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0].startswith("zpml_t_"):
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                found[node.output[0]] = float(numpy_helper.to_array(attr.t).reshape(()))
    if T_INFER not in found:
        raise EmitError(
            f"the graph has no threshold constant {T_INFER!r}; is it a zpml_symbolic model?"
        )
    factors: list[float] = []
    while T_FACTOR.format(len(factors)) in found:
        factors.append(found[T_FACTOR.format(len(factors))])
    return thresholds_json(found[T_INFER], found.get(T_TRAIN), factors)


def check_baked_thresholds(model: onnx.ModelProto) -> None:
    """Raise :class:`EmitError` unless the graph's thresholds equal the metadata's."""
    baked = read_baked_thresholds(model)
    recorded = read_metadata(model).get("effective_thresholds")
    if baked != recorded:
        raise EmitError(
            f"thresholds baked into the graph {baked} differ from the metadata "
            f"zpml.effective_thresholds {recorded}; the model was edited after export"
        )
