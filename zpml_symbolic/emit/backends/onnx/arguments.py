"""Arguments of the ONNX back end: checks of dtype, opset, tiling, outputs, config and
thresholds (reported as :class:`~zpml_symbolic.errors.InvalidArgumentError`), the
source's plan, output prefixes and parameter initializer names."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import onnx
import sympy as sp

from zpml_core.config import InferenceConfig
from zpml_core.errors import InvalidConfigError
from zpml_core.resolution import factor_taus
from zpml_symbolic.emit.backends.onnx.graph import DEFAULT_OPSET, DTYPES, MIN_OPSET
from zpml_symbolic.emit.lowering.plan import (
    Plan,
    coefficient_values,
    make_plan,
    split_expression_taus,
)
from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.flatten.coerce import as_frus

if TYPE_CHECKING:  # pragma: no cover - annotations only (importing it loads torch)
    from zpml_symbolic.emit.backends.torch_emit import RationalModule

__all__ = [
    "DEFAULT_TILE_ROWS",
    "OUTPUTS",
    "QUOTIENT_NAME",
    "check_compute_dtype",
    "check_config",
    "check_dtype",
    "check_opset",
    "check_outputs",
    "check_tile_rows",
    "checked_factor_taus",
    "expression_prefixes",
    "expression_taus",
    "parameter_initializers",
    "resolve_source",
]


def check_dtype(dtype: object) -> str:
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise InvalidArgumentError(
            f"dtype must be 'float32' or 'float64' (a string), got {dtype!r}"
        )
    return dtype


def check_compute_dtype(compute_dtype: object, dtype: str) -> str:
    """The dtype the graph computes in: ``dtype``, or the wider ``compute_dtype``."""
    if compute_dtype is None:
        return dtype
    if not isinstance(compute_dtype, str) or compute_dtype not in DTYPES:
        raise InvalidArgumentError(
            f"compute_dtype must be None, 'float32' or 'float64' (a string), got "
            f"{compute_dtype!r}; e.g. compute_dtype='float64' for SI-sized inputs in float32"
        )
    return compute_dtype if np.dtype(compute_dtype).itemsize > np.dtype(dtype).itemsize else dtype


def check_opset(opset: object) -> int:
    if opset is None:
        return DEFAULT_OPSET
    highest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= highest:
        raise InvalidArgumentError(
            f"opset must be an integer between {MIN_OPSET} and {highest} (this onnx release), "
            f"got {opset!r}; the default is {DEFAULT_OPSET}"
        )
    return opset


#: default rows per tile of the Scan in :func:`to_onnx` (256 KiB per float32 value)
DEFAULT_TILE_ROWS = 65536


def check_tile_rows(tile_rows: object) -> int | None:
    if tile_rows is None:
        return None
    if isinstance(tile_rows, bool) or not isinstance(tile_rows, int) or not 1 <= tile_rows < 2**62:
        raise InvalidArgumentError(
            f"tile_rows must be a positive int (below 2**62) or None (no tiling), got {tile_rows!r}"
        )
    return tile_rows


#: the single output of ``to_onnx(..., outputs="quotient")``
QUOTIENT_NAME = "quotient"
OUTPUTS = ("strict", "quotient")


def check_outputs(outputs: object, config: object, validity_taus: object) -> bool:
    """True for the strict outputs; the quotient-only graph takes no thresholds."""
    if not isinstance(outputs, str) or outputs not in OUTPUTS:
        raise InvalidArgumentError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    if outputs == "quotient" and (config is not None or not _is_zero(validity_taus)):
        raise InvalidArgumentError(
            "outputs='quotient' computes P/Q without masks; config= and validity_taus= do "
            "not apply (leave them at their defaults)"
        )
    return outputs == "strict"


def _is_zero(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def check_config(config: object) -> InferenceConfig:
    """``config``, or ``InferenceConfig(tau_infer=0.0)`` for ``None``."""
    if config is None:
        return InferenceConfig(tau_infer=0.0)
    if not isinstance(config, InferenceConfig):
        raise InvalidArgumentError(
            f"config must be a zpml_core.InferenceConfig (also zpml_runtime.inference.InferenceConfig) or None, got {type(config).__name__}"
        )
    return config


def expression_taus(validity_taus: object, counts: Sequence[int]) -> list[tuple[float, ...]]:
    """Per-expression factor thresholds: one number for all, or one entry per expression."""
    if len(counts) == 1:
        return [checked_factor_taus(validity_taus, counts[0])]
    split = split_expression_taus(validity_taus, counts)
    return [checked_factor_taus(t, k) for t, k in zip(split, counts, strict=True)]


def checked_factor_taus(validity_taus: object, k: int) -> tuple[float, ...]:
    """:func:`zpml_core.resolution.factor_taus` for ``k`` factors of one expression, its
    errors reported as :class:`InvalidArgumentError` (the runtime's error kept as the cause)."""
    try:
        return factor_taus(
            validity_taus,
            k,
            counted=f"the expression has {k} retained validity factors; pass one number for "
            f"all or exactly {k}",
        )
    except InvalidConfigError as e:
        raise InvalidArgumentError(str(e)) from e


def resolve_source(
    obj: object,
    parameters: Sequence[sp.Symbol | str],
    init: Mapping[Any, float] | None,
    variables: Sequence[str | sp.Symbol] | None,
) -> tuple[Plan, dict[str, float]]:
    """The plan and coefficient values of ``to_onnx``'s first argument."""
    if _is_rational_module(obj):
        if tuple(parameters) or init is not None or variables is not None:
            raise InvalidArgumentError(
                "to_onnx(module) takes the module's plan and current coefficient values; "
                "do not pass parameters=, init= or variables="
            )
        plan, coefficients = obj.plan, obj.coefficient_values()
    else:
        frus, _ = as_frus(obj, parameters=parameters)
        plan = make_plan(frus, variables=variables)
        coefficients = coefficient_values(plan, init)
    return plan, coefficients


def _is_rational_module(obj: object) -> TypeGuard[RationalModule]:
    """``isinstance(obj, RationalModule)`` without importing torch: an object can only be
    a ``RationalModule`` when its module (which imports torch) is loaded."""
    module = sys.modules.get("zpml_symbolic.emit.backends.torch_emit")
    return module is not None and isinstance(obj, module.RationalModule)


def expression_prefixes(n: int) -> tuple[str, ...]:
    """Output-name prefix of each expression: ``""`` for one, ``"e0_"``, ``"e1_"``, ... for several."""
    return ("",) if n == 1 else tuple(f"e{k}_" for k in range(n))


def parameter_initializers(parameters: Sequence[str], reserved: set[str]) -> dict[str, str]:
    """Initializer name of each parameter: the name itself when it is a plain ASCII
    identifier the graph does not use, else ``param_{i}`` (unique)."""
    taken = set(reserved) | {p for p in parameters if _plain(p, reserved)}
    out: dict[str, str] = {}
    for i, p in enumerate(parameters):
        if _plain(p, reserved):
            out[p] = p
            continue
        name, n = f"param_{i}", 0
        while name in taken:
            n += 1
            name = f"param_{i}_{n}"
        taken.add(name)
        out[p] = name
    return out


def _plain(name: str, reserved: set[str]) -> bool:
    return (
        name.isidentifier()
        and name.isascii()
        and not name.startswith(("zpml_", "param_", "_"))
        and name not in reserved
    )
