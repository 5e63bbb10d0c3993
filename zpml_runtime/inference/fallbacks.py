"""Deployment fallbacks: reject, route to an analytic solver, sentinels, 3-way censoring.

All helpers accept torch tensors or numpy arrays (one backend per call) and
fail closed: a decoded entry that is non-finite is treated like a bottom even
if the mask says otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from zpml_core.arrays import Backend, backend_of
from zpml_core.config import InferenceConfig
from zpml_core.strict import strict_inference

from ..errors import (
    AnalyticSolverError,
    InvalidConfigError,
    SentinelCollisionError,
    ShapeMismatchError,
    UnsupportedInputError,
)

__all__ = [
    "CENSOR_ABOVE",
    "CENSOR_BELOW",
    "CENSOR_IN_RANGE",
    "CENSOR_UNKNOWN",
    "decode_strict_censored_3way",
    "fill_bottom_with_sentinel",
    "reject_on_bottom",
    "reject_on_gap",
    "route_to_analytic_solver",
]

_LOG = logging.getLogger("zpml_runtime.inference")

#: Class ids of :func:`decode_strict_censored_3way`.
CENSOR_BELOW, CENSOR_IN_RANGE, CENSOR_ABOVE, CENSOR_UNKNOWN = 0, 1, 2, -1


# --------------------------------------------------------------------------- helpers


def _check_decoded(decoded: Any) -> Backend:
    backend = backend_of(decoded, name="decoded")
    if backend == "torch":
        floating = decoded.dtype.is_floating_point
    else:
        floating = np.issubdtype(decoded.dtype, np.floating) or decoded.dtype.name == "bfloat16"
    if not floating:
        raise UnsupportedInputError(f"decoded must be a floating array, got dtype {decoded.dtype}")
    return backend


def _mask_for(decoded: Any, mask: Any, name: str, backend: Backend) -> Any:
    """Check ``mask`` (bool, same backend) and broadcast it to ``decoded.shape``."""
    if backend_of(mask, name=name) != backend:
        raise UnsupportedInputError(f"{name} is a {type(mask).__name__} but decoded uses {backend}")
    is_bool = mask.dtype == torch.bool if backend == "torch" else mask.dtype == np.bool_
    if not is_bool:
        raise UnsupportedInputError(f"{name} must be a boolean mask, got dtype {mask.dtype}")
    ds, ms = tuple(decoded.shape), tuple(mask.shape)
    if ms != ds:
        if len(ds) >= 1 and ms == ds[:-1]:
            mask = mask[..., None]
            ms = (*ms, 1)
        try:
            ok = len(ms) == len(ds) and tuple(np.broadcast_shapes(ms, ds)) == ds
        except ValueError:
            ok = False
        if not ok:
            raise ShapeMismatchError(
                f"{name} has shape {tuple(mask.shape)} but decoded has shape {ds}; "
                f"use {ds} or {ds[:-1]} (one flag per sample)"
            )
    if backend == "torch":
        return mask.expand(ds)
    return np.broadcast_to(mask, ds)


def _not_finite(decoded: Any, backend: Backend) -> Any:
    if backend == "torch":
        return ~torch.isfinite(decoded)
    return ~np.isfinite(decoded)


def _fill(decoded: Any, reject: Any, fill_value: float, backend: Backend) -> Any:
    if backend == "torch":
        return torch.where(
            reject, torch.full((), fill_value, dtype=decoded.dtype, device=decoded.device), decoded
        )
    return np.where(reject, np.asarray(fill_value, dtype=decoded.dtype), decoded)


def _emit(event_logger: Any, event: dict[str, Any]) -> None:
    _LOG.info("%s: %s", event["event"], {k: v for k, v in event.items() if k != "routed_indices"})
    if event_logger is None:
        return
    log = getattr(event_logger, "log", None)
    if callable(log):
        log(event)
    elif callable(event_logger):
        event_logger(event)
    else:
        raise UnsupportedInputError(
            f"event_logger must have a .log(event) method or be callable, got {type(event_logger).__name__}"
        )


# --------------------------------------------------------------------------- reject


def reject_on_bottom(
    decoded: Any, bottom_mask: Any, *, fill_value: float = math.nan
) -> tuple[Any, Any]:
    """Reject bottom samples: ``(decoded_safe, accept_mask)``.

    ``accept_mask = ~bottom_mask & isfinite(decoded)``; rejected entries of
    ``decoded_safe`` hold ``fill_value`` (NaN by default, so nothing is silently
    replaced). Masks of shape ``decoded.shape[:-1]`` apply per sample.
    """
    backend = _check_decoded(decoded)
    reject = _mask_for(decoded, bottom_mask, "bottom_mask", backend) | _not_finite(decoded, backend)
    return _fill(decoded, reject, fill_value, backend), ~reject


def reject_on_gap(
    decoded: Any, bottom_mask: Any, gap_mask: Any, *, fill_value: float = math.nan
) -> tuple[Any, Any]:
    """Conservative rejection of bottom *and* gap samples: ``(decoded_safe, accept_mask)``."""
    backend = _check_decoded(decoded)
    reject = (
        _mask_for(decoded, bottom_mask, "bottom_mask", backend)
        | _mask_for(decoded, gap_mask, "gap_mask", backend)
        | _not_finite(decoded, backend)
    )
    return _fill(decoded, reject, fill_value, backend), ~reject


def fill_bottom_with_sentinel(
    decoded: Any, bottom_mask: Any, *, sentinel: float
) -> tuple[Any, Any]:
    """Encode rejected entries with a finite ``sentinel`` for NaN-intolerant consumers.

    Returns ``(encoded, reject_mask)``; keep ``reject_mask`` next to the data, a
    sentinel alone is ambiguous. Refuses a sentinel that is not exactly
    representable in ``decoded.dtype`` or that equals an accepted value.
    """
    backend = _check_decoded(decoded)
    if (
        isinstance(sentinel, bool)
        or not isinstance(sentinel, int | float)
        or not math.isfinite(sentinel)
    ):
        raise SentinelCollisionError(f"sentinel must be a finite real number, got {sentinel!r}")
    if backend == "torch":
        stored = float(torch.tensor(float(sentinel), dtype=torch.float64).to(decoded.dtype))
    else:
        stored = float(np.asarray(float(sentinel), dtype=np.float64).astype(decoded.dtype))
    if stored != float(sentinel):
        raise SentinelCollisionError(
            f"sentinel={sentinel!r} is not exactly representable in {decoded.dtype} (it would be "
            f"stored as {stored!r}); pick a value such as -1.0 or a power of two"
        )
    reject = _mask_for(decoded, bottom_mask, "bottom_mask", backend) | _not_finite(decoded, backend)
    collide = (decoded == stored) & ~reject
    n = int(collide.sum())
    if n:
        first = tuple(
            int(i)
            for i in (collide.nonzero()[0] if backend == "torch" else np.argwhere(collide)[0])
        )
        raise SentinelCollisionError(
            f"sentinel={sentinel!r} equals {n} accepted decoded value(s) (first at index {first}); "
            "choose a value outside the model's output range"
        )
    return _fill(decoded, reject, float(sentinel), backend), reject


# --------------------------------------------------------------------------- analytic solver


def route_to_analytic_solver(
    decoded: Any,
    *,
    bottom_mask: Any,
    analytic_solver: Callable[[Any], Any],
    inputs: Any,
    gap_mask: Any = None,
    fault_mask: Any = None,
    event_logger: Any = None,
    max_logged_indices: int = 1000,
) -> tuple[Any, Any]:
    """Replace every routed sample (row) by the output of an analytic solver.

    A row (index along axis 0) is routed when any of its entries is bottom, in
    ``gap_mask`` (when given) or non-finite. ``analytic_solver`` is called once
    with ``inputs`` restricted to the routed rows (``inputs[route_mask]``; a
    tuple/list of arrays is restricted element by element) and must return
    ``(n_routed, *decoded.shape[1:])`` finite values; it is not called when no
    row is routed.

    Returns:
        ``(resolved, route_mask)``: a copy of ``decoded`` with routed rows
        replaced, and the per-row route mask of shape ``(B,)``.

    Every call is logged (``logging`` logger ``zpml_runtime.inference`` and
    ``event_logger``, e.g. a :class:`~zpml_runtime.logging.JsonlLogger`) with
    the counts and the routed row indices (up to ``max_logged_indices``).

    Raises:
        AnalyticSolverError: the solver's output has the wrong shape or non-finite values.
        ShapeMismatchError: ``inputs`` and ``decoded`` disagree on the batch size.
    """
    backend = _check_decoded(decoded)
    if decoded.ndim == 0:
        raise ShapeMismatchError("decoded must have a batch axis (axis 0), got a 0-d value")
    bottom = _mask_for(decoded, bottom_mask, "bottom_mask", backend)
    entry_route = bottom | _not_finite(decoded, backend)
    if gap_mask is not None:
        entry_route = entry_route | _mask_for(decoded, gap_mask, "gap_mask", backend)
    rows = _any_rows(entry_route, backend)
    batch = decoded.shape[0]
    _check_batch(inputs, batch)
    resolved = decoded.clone() if backend == "torch" else np.array(decoded, copy=True)
    routed = _row_indices(rows, backend)
    if routed:
        subset = _take_rows(inputs, rows)
        solution = _as_backend(analytic_solver(subset), decoded, backend)
        expected = (len(routed), *decoded.shape[1:])
        if tuple(solution.shape) != expected:
            raise AnalyticSolverError(
                f"analytic_solver returned shape {tuple(solution.shape)} for {len(routed)} routed "
                f"rows; expected {expected}"
            )
        bad = _not_finite(solution, backend)
        if bool(bad.any()):
            bad_rows = _any_rows(bad, backend)
            first = routed[_row_indices(bad_rows, backend)[0]]
            raise AnalyticSolverError(
                f"analytic_solver returned non-finite values for {len(_row_indices(bad_rows, backend))} "
                f"of {len(routed)} routed rows (first: input row {first}); a fallback must resolve "
                "every routed sample"
            )
        resolved[rows] = solution
    event = {
        "event": "route_to_analytic_solver",
        "n_rows": int(batch),
        "n_routed": len(routed),
        "route_rate": (len(routed) / batch) if batch else None,
        "n_bottom_rows": len(_row_indices(_any_rows(bottom, backend), backend)),
        "n_gap_rows": None
        if gap_mask is None
        else len(
            _row_indices(
                _any_rows(_mask_for(decoded, gap_mask, "gap_mask", backend), backend), backend
            )
        ),
        "n_fault_rows": None
        if fault_mask is None
        else len(
            _row_indices(
                _any_rows(_mask_for(decoded, fault_mask, "fault_mask", backend), backend), backend
            )
        ),
        "routed_indices": routed[:max_logged_indices],
        "routed_indices_truncated": len(routed) > max_logged_indices,
    }
    _emit(event_logger, event)
    return resolved, rows


def _any_rows(mask: Any, backend: Backend) -> Any:
    if mask.ndim <= 1:
        return mask.clone() if backend == "torch" else np.array(mask, copy=True)
    flat = mask.reshape(mask.shape[0], -1)
    return flat.any(dim=1) if backend == "torch" else flat.any(axis=1)


def _row_indices(rows: Any, backend: Backend) -> list[int]:
    if backend == "torch":
        return rows.nonzero().flatten().tolist()
    return np.flatnonzero(rows).tolist()


def _check_batch(inputs: Any, batch: int) -> None:
    items = inputs if isinstance(inputs, tuple | list) else (inputs,)
    for i, x in enumerate(items):
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) == 0 or shape[0] != batch:
            raise ShapeMismatchError(
                f"inputs{'' if items is not inputs else f'[{i}]'} must be an array with batch size "
                f"{batch} along axis 0, got {type(x).__name__} with shape {shape}"
            )


def _take_rows(inputs: Any, rows: Any) -> Any:
    def take(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x[torch.as_tensor(rows, device=x.device)]
        return np.asarray(x)[np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows)]

    if isinstance(inputs, tuple | list):
        return type(inputs)(take(x) for x in inputs)
    return take(inputs)


def _as_backend(solution: Any, like: Any, backend: Backend) -> Any:
    try:
        if backend == "torch":
            if isinstance(solution, np.ndarray):
                solution = torch.from_numpy(np.ascontiguousarray(solution))
            return torch.as_tensor(solution, dtype=like.dtype, device=like.device).detach()
        if isinstance(solution, torch.Tensor):
            solution = solution.detach().cpu().numpy()
        return np.asarray(solution, dtype=like.dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise AnalyticSolverError(
            f"analytic_solver returned {type(solution).__name__}, which cannot be converted to "
            f"a {backend} array of dtype {like.dtype}"
        ) from exc


# --------------------------------------------------------------------------- censoring


def decode_strict_censored_3way(
    P: Any, Q: Any, *, tau_infer: float, direction_logits: Any = None
) -> tuple[Any, Any, Any]:
    """Strict decode plus a three-way class: ``(decoded, bottom_mask, class_id)``.

    ``class_id`` (int64): ``CENSOR_IN_RANGE`` (1) for accepted samples; for bottoms
    ``CENSOR_BELOW`` (0) or ``CENSOR_ABOVE`` (2), or ``CENSOR_UNKNOWN`` (-1) when the
    direction cannot be determined.

    Direction of a bottom:

    * with ``direction_logits`` of shape ``decoded.shape``: ``> 0`` above, ``< 0``
      below, ``0``/NaN unknown; of shape ``decoded.shape + (2,)``: the larger of
      ``[below, above]`` logits wins, ties/NaN unknown. Logits are used for every
      bottom, faults included;
    * without: the payload orientation ``sign(P) * sign(Q)`` of a *semantic*
      bottom with finite nonzero ``P`` and nonzero ``Q``. Exact zeros and faults
      are unknown: the IEEE sign of a zero or of a non-finite payload is not
      trusted (use a direction head or an angular head to preserve orientation).
    """
    result = strict_inference(P, Q, config=InferenceConfig(tau_infer=tau_infer))
    decoded, bottom, _ = result
    backend: Backend = "torch" if isinstance(decoded, torch.Tensor) else "numpy"
    xp_sign = torch.sign if backend == "torch" else np.sign
    if direction_logits is None:
        Pb, Qb = _broadcast_like(P, Q, decoded, backend)
        with np.errstate(all="ignore"):
            orient = xp_sign(Pb) * xp_sign(Qb)  # 0 for zeros, NaN for NaN
        usable = result.semantic_bottom_mask & ~result.fault_mask
        direction = _where(usable, orient, 0.0, backend)
    else:
        direction = _direction_from_logits(direction_logits, decoded, backend)
    return decoded, bottom, _classes(bottom, direction, backend)


def _broadcast_like(P: Any, Q: Any, decoded: Any, backend: Backend) -> tuple[Any, Any]:
    if (
        tuple(Q.shape) != tuple(P.shape)
        and len(P.shape) >= 1
        and tuple(Q.shape) == tuple(P.shape)[:-1]
    ):
        Q = Q[..., None]
    if backend == "torch":
        return P.detach().expand(decoded.shape), Q.detach().expand(decoded.shape)
    return np.broadcast_to(P, decoded.shape), np.broadcast_to(Q, decoded.shape)


def _where(cond: Any, a: Any, b: float, backend: Backend) -> Any:
    if backend == "torch":
        return torch.where(cond, a, torch.full((), b, dtype=a.dtype, device=a.device))
    return np.where(cond, a, b)


def _direction_from_logits(logits: Any, decoded: Any, backend: Backend) -> Any:
    if backend_of(logits, name="direction_logits") != backend:
        raise UnsupportedInputError(f"direction_logits must be a {backend} array like P and Q")
    ds, ls = tuple(decoded.shape), tuple(logits.shape)
    if ls == ds:
        return logits.detach() if backend == "torch" else logits
    if ls == (*ds, 2):
        below, above = logits[..., 0], logits[..., 1]
        diff = above - below
        return diff.detach() if backend == "torch" else diff
    raise InvalidConfigError(
        f"direction_logits has shape {ls}; expected {ds} (signed logit: > 0 above) or "
        f"{(*ds, 2)} ([below, above] logits)"
    )


def _classes(bottom: Any, direction: Any, backend: Backend) -> Any:
    if backend == "torch":
        cls = torch.full(bottom.shape, CENSOR_IN_RANGE, dtype=torch.int64, device=bottom.device)
        cls = torch.where(bottom, CENSOR_UNKNOWN, cls)
        cls = torch.where(bottom & (direction > 0), CENSOR_ABOVE, cls)
        return torch.where(bottom & (direction < 0), CENSOR_BELOW, cls)
    out = np.full(bottom.shape, CENSOR_IN_RANGE, dtype=np.int64)
    out[bottom] = CENSOR_UNKNOWN
    with np.errstate(invalid="ignore"):
        out[bottom & (direction > 0)] = CENSOR_ABOVE
        out[bottom & (direction < 0)] = CENSOR_BELOW
    return out
