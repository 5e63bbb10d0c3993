"""Argument checks and masked reductions shared by the loss terms (internal).

Every check here is on Python metadata (types, shapes, numbers): none reads a
tensor value, so the losses never synchronise with the device.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError

Tensor = torch.Tensor


def check_tensor(x: Any, *, name: str, func: str) -> Tensor:
    """Return ``x`` if it is a floating torch tensor, else raise naming ``name``."""
    if not isinstance(x, torch.Tensor):
        raise UnsupportedInputError(
            f"{func}: {name} must be a torch.Tensor, got {type(x).__name__}; "
            f"convert with torch.as_tensor(...)"
        )
    if not x.is_floating_point():
        raise UnsupportedInputError(
            f"{func}: {name} has dtype {x.dtype}; losses need floating tensors "
            f"(cast with .float() or .double())"
        )
    return x


def check_same_shape(a: Tensor, b: Tensor, *, names: tuple[str, str], func: str) -> None:
    """Raise :class:`ShapeMismatchError` unless ``a`` and ``b`` have exactly one shape."""
    if a.shape != b.shape:
        hint = ""
        if a.dim() == b.dim() + 1 and a.shape[-1] == 1 and a.shape[:-1] == b.shape:
            hint = f"; add the output axis with {names[1]}.unsqueeze(-1) or squeeze {names[0]}"
        elif b.dim() == a.dim() + 1 and b.shape[-1] == 1 and b.shape[:-1] == a.shape:
            hint = f"; squeeze the last axis of {names[1]} or unsqueeze {names[0]}"
        raise ShapeMismatchError(
            f"{func}: {names[1]} has shape {tuple(b.shape)} but {names[0]} has shape "
            f"{tuple(a.shape)}; expected {tuple(a.shape)} (no broadcasting, so a [B] vs "
            f"[B, 1] mix-up cannot silently become [B, B]){hint}"
        )


def as_targets(y: Any, like: Tensor, *, name: str, func: str) -> Tensor:
    """Targets as a tensor with the dtype/device of ``like`` (shape checked by the caller)."""
    if not isinstance(y, torch.Tensor):
        try:
            import numpy as np

            if isinstance(y, np.ndarray):
                y = torch.from_numpy(y)
        except ImportError:  # pragma: no cover
            pass
    y = check_tensor(y, name=name, func=func)
    if y.dtype != like.dtype or y.device != like.device:
        y = y.to(device=like.device, dtype=like.dtype)
    return y


def check_tuples(
    P: Any, Q: Any, Y_n: Any, Y_d: Any, *, func: str
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Check predictions ``(P, Q)`` and targets ``(Y_n, Y_d)``: tensors of one shape (no broadcasting).

    Targets are cast to the dtype and device of ``P``; a mismatch raises
    :class:`~zpml_runtime.errors.ShapeMismatchError` naming ``func`` and both shapes.
    """
    P = check_tensor(P, name="P", func=func)
    Q = check_tensor(Q, name="Q", func=func)
    check_same_shape(P, Q, names=("P", "Q"), func=func)
    Y_n = as_targets(Y_n, P, name="Y_n", func=func)
    Y_d = as_targets(Y_d, P, name="Y_d", func=func)
    check_same_shape(P, Y_n, names=("P", "Y_n"), func=func)
    check_same_shape(P, Y_d, names=("P", "Y_d"), func=func)
    return P, Q, Y_n, Y_d


def check_nonneg_number(value: Any, *, name: str, func: str) -> float:
    """A finite number ``>= 0`` (bool refused) as float, else :class:`InvalidConfigError`."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.requires_grad:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidConfigError(
            f"{func}: {name} must be a finite number >= 0, got {type(value).__name__} {value!r}"
        )
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidConfigError(f"{func}: {name} must be a finite number >= 0, got {value!r}")
    return value


def check_tau(tau: Any, like: Tensor, *, name: str, func: str) -> float | Tensor:
    """A threshold: a finite number ``>= 0`` or a 1-d tensor of per-output thresholds.

    A tensor must have one entry per output (``like.shape[-1]``); it is not
    value-checked (that would synchronise), the caller owns its values.
    """
    if isinstance(tau, torch.Tensor) and tau.dim() >= 1:
        if tau.dim() != 1 or like.dim() == 0 or tau.shape[0] != like.shape[-1]:
            raise ShapeMismatchError(
                f"{func}: {name} has shape {tuple(tau.shape)}; a per-output threshold "
                f"needs shape ({like.shape[-1] if like.dim() else 1},) to match the last "
                f"axis of Q {tuple(like.shape)}, or pass one number"
            )
        return tau.detach().to(device=like.device, dtype=like.dtype)
    value = check_nonneg_number(tau, name=name, func=func)
    # the threshold as deployment applies it: the smallest value of Q's dtype >= tau, so
    # ``|Q| < t`` in that dtype is the exact comparison (zpml_core.arrays.effective_threshold)
    from zpml_core.arrays import dtype_name, effective_threshold

    return effective_threshold(value, dtype_name(like), f"{func}: {name}")


def align_mask(mask: Any, like: Tensor, *, name: str, func: str) -> Tensor:
    """A boolean mask of ``like``'s shape, or of a leading part of it (row mask), expanded."""
    if not isinstance(mask, torch.Tensor):
        raise UnsupportedInputError(
            f"{func}: {name} must be a boolean torch.Tensor, got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise UnsupportedInputError(
            f"{func}: {name} has dtype {mask.dtype}; pass a boolean mask (rows to include) "
            f"or use weight= for real-valued weights"
        )
    return _expand(mask, like, name=name, func=func)


def align_weight(weight: Any, like: Tensor, *, func: str) -> Tensor:
    """Non-negative real weights of ``like``'s shape (or a leading part of it), expanded."""
    w = check_tensor(weight, name="weight", func=func)
    w = w.detach().to(device=like.device, dtype=like.dtype)
    return _expand(w, like, name="weight", func=func)


def _expand(t: Tensor, like: Tensor, *, name: str, func: str) -> Tensor:
    shape, lshape = tuple(t.shape), tuple(like.shape)
    if lshape[: len(shape)] != shape:
        raise ShapeMismatchError(
            f"{func}: {name} has shape {shape}; expected {lshape} or its leading "
            f"dimensions {lshape[:1]} (one entry per row)"
        )
    if t.device != like.device:
        t = t.to(like.device)
    return t.reshape(shape + (1,) * (len(lshape) - len(shape))).expand(lshape)


def combine(
    mask: Tensor | None, extra: Any, weight: Any, like: Tensor, *, func: str
) -> tuple[Tensor | None, Tensor | None]:
    """Merge an internal mask with the user's ``mask``/``weight`` arguments."""
    if extra is not None:
        m = align_mask(extra, like, name="mask", func=func)
        mask = m if mask is None else mask & m
    w = None if weight is None else align_weight(weight, like, func=func)
    return mask, w


def sanitize(x: Tensor, mask: Tensor | None, fill: float = 0.0) -> Tensor:
    """``x`` with excluded entries replaced by ``fill``, so their gradient is exactly 0.

    Excluded rows may hold NaN/inf (missing inputs, faulted predictions); a
    plain ``where`` on the *result* would still back-propagate ``0 * NaN``.
    """
    if mask is None:
        return x
    return torch.where(mask, x, torch.full((), fill, dtype=x.dtype, device=x.device))


def reduce_mean(values: Tensor, mask: Tensor | None, weight: Tensor | None) -> Tensor:
    """Mean of ``values`` over included entries (0 when nothing is included); no sync."""
    if mask is None and weight is None:
        return values.mean() if values.numel() else values.sum()
    if mask is not None:
        values = torch.where(
            mask, values, torch.zeros((), dtype=values.dtype, device=values.device)
        )
    if weight is None:
        count = mask.sum(dtype=values.dtype)  # type: ignore[union-attr]
        return values.sum() / count.clamp_min(1.0)
    if mask is not None:
        weight = torch.where(
            mask, weight, torch.zeros((), dtype=weight.dtype, device=weight.device)
        )
    total = weight.sum()
    return (values * weight).sum() / torch.where(total > 0, total, torch.ones_like(total))


def unit_scale(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``(a, b) / sg(max(|a|, |b|) + tiny)`` per element (the null tuple stays ``(0, 0)``).

    Scaling by a power-free max keeps squares in range for huge tuples
    (``1e30`` in float32) and leaves every scale-invariant quantity unchanged.
    """
    s = torch.maximum(a.detach().abs(), b.detach().abs()).add_(tiny(a.dtype))
    return a / s, b / s


def tiny(dtype: torch.dtype) -> float:
    """Smallest positive normal number of ``dtype``."""
    return float(torch.finfo(dtype).tiny)


def abs_away_from_zero(x: Tensor) -> Tensor:
    """``|x|`` whose gradient at ``x == 0`` is ``+1`` (``abs`` gives 0 there).

    A hinge on ``|Q|`` must push an exact zero away from zero; with
    ``torch.abs`` the gradient at ``Q = 0`` vanishes and the hinge is inert
    exactly where it matters most.
    """
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return x * torch.where(x.detach() >= 0, one, -one)
