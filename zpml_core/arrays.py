"""Backend detection, dtype checks and exact threshold rounding (internal).

Thresholds are applied *exactly*: ``|Q| < tau`` is decided as a comparison of
real numbers. For a floating dtype this equals ``|Q| < ceil_dtype(tau)``,
where ``ceil_dtype(tau)`` is the smallest value of the dtype that is
``>= tau`` (:mod:`zpml_core.thresholds`). A threshold of ``0`` stays ``0.0``
and means ``Q == 0`` (tested with an equality).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from .errors import UnsupportedInputError
from .thresholds import ceil_to_dtype, smallest_normal

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


def effective_threshold(tau: Any, dtype: str, field: str) -> float:
    """Smallest ``dtype`` value ``>= tau`` as a Python float; ``0.0`` for ``tau == 0``.

    Comparing ``|Q| < effective_threshold(tau, dtype, ...)`` in ``dtype`` is the exact
    real comparison ``|Q| < tau``. ``0.0`` means "exact zeros only": the kernels
    then test ``Q == 0`` (an equality, never ``|Q| < smallest subnormal``, which
    flush-to-zero/denormals-are-zero modes would turn into ``|Q| < 0``). A
    positive threshold is always OR-ed with ``Q == 0`` when it is below the
    smallest *normal* value of the dtype, so exact zeros stay bottom under
    FTZ/DAZ too (see :func:`needs_zero_test`). Pure Python (no tensors), so it
    traces under ``torch.compile``. See :mod:`zpml_core.thresholds`.

    Raises:
        ThresholdUnderflowError: if ``0 < tau`` is below the smallest positive value
            of ``dtype`` (it would round to zero).
    """
    return ceil_to_dtype(tau, dtype, field)


def needs_zero_test(t: float, dtype: str) -> bool:
    """Whether the semantic test for effective threshold ``t`` must OR in ``v == 0``.

    True for ``t == 0`` (the whole test is ``v == 0``) and for a positive ``t``
    below the smallest normal value of ``dtype``: under denormals-are-zero a
    subnormal ``t`` reads as 0 and ``|v| < t`` would accept ``v == 0``. A normal
    ``t`` already catches every zero (and, under DAZ, every subnormal ``v``).
    """
    return t < smallest_normal(dtype)
