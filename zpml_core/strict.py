"""``strict_inference``: strict SCM decoding of ``(P, Q)`` with provenance masks.

Implements docs/semantics.md section 3 exactly, for torch tensors and numpy arrays
of dtype float16, bfloat16, float32 or float64.

Shape rules (``out`` is the shape of every merged mask and of ``decoded``):

1. ``Q.shape == P.shape``: elementwise.
2. ``Q.shape == P.shape[:-1]``: one denominator per sample shared by the last
   axis of ``P`` (``P (B, O)`` with ``Q (B,)``): ``Q`` is read as ``Q[..., None]``.
   This rule wins over plain broadcasting, so ``P (B, B)`` with ``Q (B,)`` is
   per-sample, not per-column.
3. Otherwise numpy broadcasting, but only when the broadcast shape equals
   ``P.shape`` or ``Q.shape`` (``P (B, O)`` with ``Q (B, 1)`` or ``Q ()``);
   shapes such as ``P (B,)`` with ``Q (B, 1)``, which would silently build a
   ``(B, B)`` outer product, are refused with ``ShapeMismatchError``.

Validity factors ``V_i`` keep their own shapes in the per-factor outputs; for
the merged masks each factor must have shape ``out``, ``out[:-1]`` (read as
``V_i[..., None]``) or the same rank as ``out`` and broadcast to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import kernels as K
from .arrays import backend_of, check_float
from .config import InferenceConfig, check_threshold
from .errors import UnsupportedInputError
from .resolution import effective_factors, factor_taus
from .result import StrictInferenceResult
from .strict_shapes import align, check_pair, factor_view_shape, promote, split_factors
from .strict_torch import finish_torch
from .thresholds import ceil_to_dtype

__all__ = ["numerical_hazard_mask", "strict_inference"]

_DEFAULT_CONFIG = InferenceConfig(tau_infer=0.0)


def strict_inference(
    P: Any,
    Q: Any,
    *,
    config: InferenceConfig | None = None,
    validity_factors: Any = None,
    validity_taus: float | Sequence[float] = 0.0,
) -> StrictInferenceResult:
    """Decode ``P/Q`` strictly and return ``decoded`` with bottom, gap and provenance masks.

    Args:
        P: numerators, a torch tensor or numpy array (float16/bfloat16/float32/float64).
        Q: denominators, same backend; shape rules in the module docstring.
        config: thresholds; ``None`` means ``InferenceConfig(tau_infer=0.0)`` (exact zeros only).
        validity_factors: optional validity factor values ``V_i`` of a compiled FRU: one
            tensor/array of shape ``[..., k]`` (last axis = factor index) or a sequence of
            ``k`` tensors/arrays.
        validity_taus: per-factor thresholds ``tau_i``: one number for all factors or a
            length-``k`` sequence. Default ``0.0``: exact zeros only.

    Returns:
        A :class:`StrictInferenceResult`; ``decoded, bottom_mask, gap_mask = result``.
        Under autograd, gradients through ``decoded`` are finite everywhere and zero at
        bottom entries.

    Raises:
        UnsupportedInputError: non-array inputs, mixed backends/devices, ``meta`` tensors,
            non-float dtypes.
        ShapeMismatchError: shapes outside the documented rules.
        InvalidConfigError: bad ``validity_taus`` (``ThresholdUnderflowError`` for a
            positive threshold the evaluation dtype cannot represent).
    """
    cfg = _DEFAULT_CONFIG if config is None else config
    if not isinstance(cfg, InferenceConfig):
        raise UnsupportedInputError(
            f"config must be an InferenceConfig or None, got {type(cfg).__name__}"
        )
    P = np.asarray(P) if isinstance(P, np.generic) else P  # numpy scalars -> 0-d arrays
    Q = np.asarray(Q) if isinstance(Q, np.generic) else Q
    backend = check_pair(P, Q)
    P, Q = promote(P, Q, backend)
    P, Q = align(P, Q, backend)
    t_infer, t_train = _thresholds(cfg, check_float(Q, name="Q"))
    factors = split_factors(validity_factors, backend, P)
    taus = factor_taus(validity_taus, len(factors))
    dtypes = [check_float(v, name=f"validity_factors[{i}]") for i, v in enumerate(factors)]
    thresholds = effective_factors(taus, dtypes)  # each factor's threshold in its own dtype
    if backend == "numpy":
        return _finish_numpy(P, Q, t_infer, t_train, factors, thresholds)
    return finish_torch(P, Q, t_infer, t_train, factors, thresholds, functional=_use_functional())


def numerical_hazard_mask(Q: Any, *, threshold: float) -> Any:
    """Monitor-only mask of finite denominators with ``Q == 0`` or ``|Q| < threshold`` (never a fault)."""
    backend = backend_of(Q, name="Q")
    t = ceil_to_dtype(
        check_threshold(threshold, "threshold"), check_float(Q, name="Q"), "threshold"
    )
    if backend == "torch":
        return K.below_functional(Q, torch.abs(Q), t)
    with np.errstate(all="ignore"):
        return K.numpy_below(Q, np.abs(Q), t)


# --------------------------------------------------------------------------- checks

_THRESHOLD_CACHE: dict[tuple[InferenceConfig, str], tuple[float, float | None]] = {}


def _thresholds(cfg: InferenceConfig, dtype: str) -> tuple[float, float | None]:
    """``cfg.thresholds_for(dtype)``, memoised in eager mode (configs are frozen and hashable)."""
    if torch.compiler.is_compiling():
        return cfg.thresholds_for(dtype)
    key = (cfg, dtype)
    cached = _THRESHOLD_CACHE.get(key)
    if cached is None:
        cached = cfg.thresholds_for(dtype)  # raises before caching on refusal
        if len(_THRESHOLD_CACHE) > 1024:
            _THRESHOLD_CACHE.clear()
        _THRESHOLD_CACHE[key] = cached
    return cached


def _use_functional() -> bool:
    """Out-of-place ops only: under ``torch.compile`` or tracing."""
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())


def _finish_numpy(
    P: np.ndarray,
    Q: np.ndarray,
    t: float,
    tr: float | None,
    factors: tuple[np.ndarray, ...],
    thresholds: tuple[float, ...],
) -> StrictInferenceResult:
    d, fault, semantic, below_train = K.numpy_core(P, Q, t, tr)
    ff, fs = [], []
    for v, tv in zip(factors, thresholds, strict=True):
        f_i, s_i = K.numpy_factor(v, tv)
        ff.append(f_i)
        fs.append(s_i)
        if factor_view_shape(tuple(v.shape), tuple(fault.shape), ""):
            f_i, s_i = f_i[..., None], s_i[..., None]
        fault = fault | f_i
        semantic = semantic | s_i
    fault, semantic = np.asarray(fault), np.asarray(semantic)  # 0-d inputs give numpy scalars
    bottom = np.asarray(fault | semantic)
    if below_train is None:
        gap = np.zeros_like(bottom)
    else:
        gap = np.asarray(np.greater(below_train, bottom, out=below_train))  # below_train & ~bottom
    np.copyto(d, np.asarray(math.nan, dtype=d.dtype), where=bottom)  # d is a private buffer
    decoded = np.asarray(d)
    return StrictInferenceResult(
        decoded,
        bottom,
        gap,
        fault,
        semantic,
        factor_values=factors,
        factor_fault_masks=tuple(ff),
        factor_semantic_masks=tuple(fs),
    )
