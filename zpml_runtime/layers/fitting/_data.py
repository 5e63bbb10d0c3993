"""Input checks and target lifting for :func:`~zpml_runtime.layers.fit_rational`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError

__all__ = [
    "as_array",
    "check_domain",
    "check_nonneg_float",
    "lift",
    "power_of_two_scale",
    "target_scale",
]


def as_array(value: Any, name: str) -> np.ndarray:
    """``value`` (tensor, array or sequence of numbers) as a float64 numpy array."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise UnsupportedInputError(
                f"fit_rational: {name} is complex ({value.dtype}); it must be real"
            )
        return value.detach().cpu().to(torch.float64).numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged sequences
        raise UnsupportedInputError(f"fit_rational: {name} must be numbers: {e}") from e
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise UnsupportedInputError(
            f"fit_rational: {name} must be a real tensor, array or sequence of numbers, got dtype {arr.dtype}"
        )
    return arr.astype(np.float64)


def lift(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lift and unit-scale: finite ``t -> (t, 1)``, ``+inf``/NaN ``-> (1, 0)``, ``-inf -> (-1, 0)``.

    The rule of :func:`zpml_runtime.training.targets.lift_targets`; both tuples
    are then divided by ``max(|y_n|, |y_d|)`` (the scaling of the implicit loss).
    """
    from ...training.targets import lift_targets  # late import: training imports layers

    yn, yd = lift_targets(y)
    scale = np.maximum(np.abs(yn), np.abs(yd))
    return yn / scale, yd / scale


def target_scale(y: np.ndarray) -> np.ndarray:
    """Per output column: the median ``|y|`` of the finite targets, rounded to a power of two.

    Dividing the targets by it makes the fit scale invariant: the relative error
    ``|r - y| / max(|y|, s)`` treats values below the typical size ``s`` as
    absolute, whatever the units (1 for an all-zero column).
    """
    cols = y.reshape(y.shape[0], -1)
    out = np.ones(cols.shape[1])
    for j in range(cols.shape[1]):
        a = np.abs(cols[:, j][np.isfinite(cols[:, j])])
        med = float(np.median(a)) if a.size else 0.0
        if med == 0 and a.size:
            med = float(a.max())
        if med > 0 and np.isfinite(med):
            out[j] = float(np.exp2(np.round(np.log2(med))))
    return out


def check_domain(domain: Any, x: np.ndarray) -> tuple[float, float]:
    """``(lo, hi)`` from ``domain`` or the data range (a constant ``x`` is widened by 1)."""
    if domain is None:
        lo, hi = float(x.min()), float(x.max())
        if lo == hi:
            lo, hi = lo - 1.0, hi + 1.0
        return lo, hi
    try:
        lo, hi = (float(v) for v in domain)
    except (TypeError, ValueError):
        raise InvalidConfigError(
            f"fit_rational: domain must be a pair (lo, hi), got {domain!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidConfigError(
            f"fit_rational: domain must satisfy lo < hi with finite ends, got {domain!r}"
        )
    return lo, hi


def check_nonneg_float(value: Any, name: str) -> float:
    """A finite float ``>= 0``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidConfigError(
            f"fit_rational: {name} must be a finite number >= 0, got {value!r}"
        )
    return float(value)


def check_weights(weights: Any, n: int) -> np.ndarray:
    """Per-row weights ``[N]``: finite, ``>= 0``, not all zero (default all ones)."""
    if weights is None:
        return np.ones(n)
    w = as_array(weights, "weights").reshape(-1)
    if w.shape[0] != n:
        raise ShapeMismatchError(
            f"fit_rational: weights needs one entry per row ({n}), got {w.shape[0]}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise InvalidConfigError("fit_rational: weights must be finite, >= 0 and not all zero")
    return w


def power_of_two_scale(values: np.ndarray) -> np.ndarray:
    """Per column: ``2**e`` with ``max|column| / 2**e`` in ``(1/2, 1]`` (1 for a zero column).

    Dividing by a power of two is exact, so coefficients fitted on scaled
    features convert back to the raw features without rounding.
    """
    top = np.abs(values).max(axis=0)
    e = np.where(top > 0, np.ceil(np.log2(np.where(top > 0, top, 1.0))), 0.0)
    return np.exp2(e)
