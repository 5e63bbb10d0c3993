"""Backend detection, dtype checks and exact threshold rounding (internal).

Thresholds are applied *exactly*: ``|Q| < tau`` is decided as a comparison of
real numbers. For a floating dtype this equals ``|Q| < ceil_dtype(tau)``,
where ``ceil_dtype(tau)`` is the smallest value of the dtype that is
``>= tau``. A threshold of ``0`` is replaced by the smallest positive
subnormal, so that ``|Q| < threshold`` is exactly ``Q == 0``.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Literal

import numpy as np
import torch

from .errors import ThresholdUnderflowError, UnsupportedInputError

Backend = Literal["torch", "numpy"]

SUPPORTED_FLOAT_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")

SMALLEST_SUBNORMAL: dict[str, float] = {
    "float16": math.ldexp(1.0, -24),
    "bfloat16": math.ldexp(1.0, -133),
    "float32": math.ldexp(1.0, -149),
    "float64": math.ldexp(1.0, -1074),
}

_TORCH_FLOAT = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
# (precision p in bits incl. the implicit bit, largest finite value)
_FORMAT: dict[str, tuple[int, float]] = {
    "float16": (11, 65504.0),
    "bfloat16": (8, math.ldexp(2.0 - math.ldexp(1.0, -7), 127)),
    "float32": (24, math.ldexp(2.0 - math.ldexp(1.0, -23), 127)),
    "float64": (53, sys.float_info.max),
}


def backend_of(x: Any, *, name: str) -> Backend:
    """Return ``"torch"`` or ``"numpy"`` for an array argument, or raise naming ``name``."""
    if isinstance(x, torch.Tensor):
        return "torch"
    if isinstance(x, np.ndarray):
        return "numpy"
    raise UnsupportedInputError(
        f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(x).__name__}; "
        f"wrap Python numbers or lists with torch.as_tensor(...) or numpy.asarray(...)"
    )


def dtype_name(x: Any) -> str:
    """Name of the dtype of a tensor or array (``'float32'``, ``'bfloat16'``, ...)."""
    if isinstance(x, torch.Tensor):
        return str(x.dtype).removeprefix("torch.")
    return np.dtype(x.dtype).name


def check_float(x: Any, *, name: str) -> str:
    """Return the dtype name of ``x`` or raise if it is not a supported float dtype."""
    dt = dtype_name(x)
    if dt not in SUPPORTED_FLOAT_DTYPES:
        raise UnsupportedInputError(
            f"{name} has dtype {dt}; strict inference needs a floating dtype among "
            f"{', '.join(SUPPORTED_FLOAT_DTYPES)} (cast integers explicitly, e.g. x.to(torch.float32))"
        )
    return dt


def to_torch_dtype(name: str) -> torch.dtype:
    """Torch dtype for a supported float dtype name."""
    return _TORCH_FLOAT[name]


def effective_threshold(tau: float, dtype: str, field: str) -> float:
    """Smallest ``dtype`` value ``>= tau`` (at least the smallest subnormal), as a Python float.

    Comparing ``|Q| < effective_threshold(tau, dtype, ...)`` in ``dtype`` is the exact
    real comparison ``|Q| < tau``; with ``tau == 0`` it is ``Q == 0``. Pure Python
    (no tensors), so it traces under ``torch.compile``.

    Raises:
        ThresholdUnderflowError: if ``0 < tau`` is below the smallest positive value
            of ``dtype`` (it would round to zero or to the smallest subnormal).
    """
    smallest = SMALLEST_SUBNORMAL[dtype]
    if tau == 0.0:
        return smallest
    if tau < smallest:
        raise ThresholdUnderflowError(
            f"{field}={tau!r} is positive but below the smallest positive {dtype} value "
            f"({smallest:.6g}); in {dtype} it would round to 0 and the guard would silently "
            f"only catch exact zeros. Use {field} >= {smallest:.6g}, pass {field}=0.0 to ask "
            f"for exact-zero-only semantics explicitly, or evaluate in a wider dtype."
        )
    precision, largest = _FORMAT[dtype]
    if precision == 53:
        return tau  # a Python float already is a float64 value
    _, exponent = math.frexp(tau)  # tau in [2**(exponent-1), 2**exponent)
    ulp_exp = max(exponent - precision, math.frexp(smallest)[1] - 1)
    value = math.ldexp(math.ceil(math.ldexp(tau, -ulp_exp)), ulp_exp)  # exact scaling
    return value if value <= largest else math.inf
