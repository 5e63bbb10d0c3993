"""Argument checks of :func:`~zpml_core.strict.strict_inference`: backends, devices,
dtype promotion and the shape rules of ``P``, ``Q`` and the validity factors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .arrays import Backend, backend_of, check_float
from .errors import ShapeMismatchError, UnsupportedInputError

__all__ = ["align", "check_pair", "factor_view_shape", "promote", "split_factors"]


def check_pair(P: Any, Q: Any) -> Backend:
    backend = backend_of(P, name="P")
    if backend_of(Q, name="Q") != backend:
        raise UnsupportedInputError(
            f"P and Q must use the same backend, got P: {type(P).__name__}, Q: {type(Q).__name__}"
        )
    check_float(P, name="P")
    check_float(Q, name="Q")
    if backend == "torch":
        refuse_meta(P, "P")
        refuse_meta(Q, "Q")
    if backend == "torch" and P.device != Q.device:
        raise UnsupportedInputError(
            f"P is on {P.device} but Q is on {Q.device}; move both to one device"
        )
    return backend


def refuse_meta(x: torch.Tensor, name: str) -> None:
    """A ``meta`` tensor has a shape but no values: the masks cannot be decided."""
    if x.device.type == "meta":
        raise UnsupportedInputError(
            f"{name} is on the 'meta' device (a shape without values); strict inference "
            "decides its masks from the values: compute it on a real device (e.g. 'cpu')"
        )


def promote(P: Any, Q: Any, backend: Backend) -> tuple[Any, Any]:
    if P.dtype == Q.dtype:
        return P, Q
    if backend == "torch":
        dt = torch.promote_types(P.dtype, Q.dtype)
        return P.to(dt), Q.to(dt)
    nt = np.result_type(P.dtype, Q.dtype)
    return P.astype(nt), Q.astype(nt)


def align(P: Any, Q: Any, backend: Backend) -> tuple[Any, Any]:
    ps, qs = tuple(P.shape), tuple(Q.shape)
    if ps == qs:
        return P, Q
    given = qs
    if len(ps) >= 1 and qs == ps[:-1]:
        Q = Q[..., None]
        qs = (*qs, 1)
    try:
        out = tuple(np.broadcast_shapes(ps, qs))
    except ValueError:
        out = None
    if out is None or (out != ps and out != qs):
        raise ShapeMismatchError(
            f"cannot align P {ps} with Q {given}: use "
            f"Q.shape == P.shape, Q.shape == P.shape[:-1] (one denominator per sample), or "
            f"shapes that broadcast to the shape of P or of Q"
        )
    if backend == "torch":
        P, Q = torch.broadcast_tensors(P, Q)
    else:
        P, Q = np.broadcast_arrays(P, Q)
    return P, Q


def split_factors(factors: Any, backend: Backend, P: Any) -> tuple[Any, ...]:
    if factors is None:
        return ()
    items: tuple[Any, ...]  # tensors or arrays, checked against the backend below
    if isinstance(factors, torch.Tensor | np.ndarray):
        if factors.ndim == 0:
            raise ShapeMismatchError(
                "validity_factors given as one tensor/array needs shape [..., k] "
                "(last axis = factor index), got a 0-d value"
            )
        items = tuple(factors[..., i] for i in range(factors.shape[-1]))
    elif isinstance(factors, Sequence) and not isinstance(factors, str | bytes):
        items = tuple(factors)
    else:
        raise UnsupportedInputError(
            "validity_factors must be a tensor/array of shape [..., k] or a sequence of "
            f"tensors/arrays, got {type(factors).__name__}"
        )
    out = tuple(P.shape)
    for i, v in enumerate(items):
        name = f"validity_factors[{i}]"
        if backend_of(v, name=name) != backend:
            raise UnsupportedInputError(f"{name} is a {type(v).__name__} but P/Q use {backend}")
        check_float(v, name=name)
        if backend == "torch":
            refuse_meta(v, name)
        if backend == "torch" and v.device != P.device:
            raise UnsupportedInputError(f"{name} is on {v.device} but P/Q are on {P.device}")
        factor_view_shape(tuple(v.shape), out, name)
    return items


def factor_view_shape(vs: tuple[int, ...], out: tuple[int, ...], name: str) -> bool:
    """Check a factor's shape against ``out``; True when it must be read as ``V[..., None]``."""
    if vs == out:
        return False
    if len(out) >= 1 and vs == out[:-1]:
        return True
    if len(vs) == len(out):
        try:
            if tuple(np.broadcast_shapes(vs, out)) == out:
                return False
        except ValueError:
            pass
    raise ShapeMismatchError(
        f"{name} has shape {vs}, which does not fit the output shape {out}: use {out}, "
        f"{out[:-1]} (one value per sample) or a same-rank shape that broadcasts to {out}"
    )
