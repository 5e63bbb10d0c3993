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
from .arrays import Backend, backend_of, check_float, effective_threshold
from .config import InferenceConfig, check_threshold
from .errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from .result import StrictInferenceResult

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
    backend = _check_pair(P, Q)
    P, Q = _promote(P, Q, backend)
    P, Q = _align(P, Q, backend)
    t_infer, t_train = _thresholds(cfg, check_float(Q, name="Q"))
    factors = _split_factors(validity_factors, backend, P)
    taus = _factor_taus(validity_taus, len(factors))
    if backend == "numpy":
        return _finish_numpy(P, Q, t_infer, t_train, factors, taus)
    return _finish_torch(P, Q, t_infer, t_train, factors, taus)


def numerical_hazard_mask(Q: Any, *, threshold: float) -> Any:
    """Monitor-only mask of finite denominators with ``Q == 0`` or ``|Q| < threshold`` (never a fault)."""
    backend = backend_of(Q, name="Q")
    t = effective_threshold(
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


def _check_pair(P: Any, Q: Any) -> Backend:
    backend = backend_of(P, name="P")
    if backend_of(Q, name="Q") != backend:
        raise UnsupportedInputError(
            f"P and Q must use the same backend, got P: {type(P).__name__}, Q: {type(Q).__name__}"
        )
    check_float(P, name="P")
    check_float(Q, name="Q")
    if backend == "torch":
        _refuse_meta(P, "P")
        _refuse_meta(Q, "Q")
    if backend == "torch" and P.device != Q.device:
        raise UnsupportedInputError(
            f"P is on {P.device} but Q is on {Q.device}; move both to one device"
        )
    return backend


def _refuse_meta(x: torch.Tensor, name: str) -> None:
    """A ``meta`` tensor has a shape but no values: the masks cannot be decided."""
    if x.device.type == "meta":
        raise UnsupportedInputError(
            f"{name} is on the 'meta' device (a shape without values); strict inference "
            "decides its masks from the values: compute it on a real device (e.g. 'cpu')"
        )


def _promote(P: Any, Q: Any, backend: Backend) -> tuple[Any, Any]:
    if P.dtype == Q.dtype:
        return P, Q
    if backend == "torch":
        dt = torch.promote_types(P.dtype, Q.dtype)
        return P.to(dt), Q.to(dt)
    nt = np.result_type(P.dtype, Q.dtype)
    return P.astype(nt), Q.astype(nt)


def _align(P: Any, Q: Any, backend: Backend) -> tuple[Any, Any]:
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


def _split_factors(factors: Any, backend: Backend, P: Any) -> tuple[Any, ...]:
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
            _refuse_meta(v, name)
        if backend == "torch" and v.device != P.device:
            raise UnsupportedInputError(f"{name} is on {v.device} but P/Q are on {P.device}")
        _factor_view_shape(tuple(v.shape), out, name)
    return items


def _factor_view_shape(vs: tuple[int, ...], out: tuple[int, ...], name: str) -> bool:
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


def _factor_taus(validity_taus: float | Sequence[float], k: int) -> tuple[float, ...]:
    if isinstance(validity_taus, Sequence) and not isinstance(validity_taus, str | bytes):
        if len(validity_taus) != k:
            raise InvalidConfigError(
                f"validity_taus has {len(validity_taus)} entries but there are {k} validity factors"
            )
        return tuple(check_threshold(t, f"validity_taus[{i}]") for i, t in enumerate(validity_taus))
    tau = check_threshold(validity_taus, "validity_taus")
    return (tau,) * k


def _factor_thresholds(factors: tuple[Any, ...], taus: tuple[float, ...]) -> list[float]:
    return [
        effective_threshold(
            tau, check_float(v, name=f"validity_factors[{i}]"), f"validity_taus[{i}]"
        )
        for i, (v, tau) in enumerate(zip(factors, taus, strict=True))
    ]


# --------------------------------------------------------------------------- backends


def _use_functional() -> bool:
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())


def _functorch_wrapped(*tensors: torch.Tensor) -> bool:
    """True under ``torch.func`` transforms (``grad``, ``jacrev``, ...): use plain autograd ops."""
    is_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    if is_wrapped is None:  # pragma: no cover - very old/new torch: stay on the safe path
        return True
    return any(is_wrapped(t) for t in tensors)


def _fill_bottoms(d: torch.Tensor, bottom: torch.Tensor) -> bool:
    """Write NaN into the private buffer ``d`` at bottom entries; False if there were none.

    ``masked_fill_`` is a scalar loop on CPU (several times the cost of an
    arithmetic pass); the test "is any entry bottom" is one ``max`` over the
    mask's bytes, so large CPU batches without bottoms skip the fill.
    """
    if not K.any_set(bottom):
        return False
    K.fill_nan(d, bottom)
    return True


def _finish_torch(
    P: torch.Tensor,
    Q: torch.Tensor,
    t: float,
    tr: float | None,
    factors: tuple[torch.Tensor, ...],
    taus: tuple[float, ...],
) -> StrictInferenceResult:
    functional = _use_functional()
    needs_grad = torch.is_grad_enabled() and (P.requires_grad or Q.requires_grad)
    if needs_grad and not functional and not _functorch_wrapped(P, Q):
        thresholds = tuple(_factor_thresholds(factors, taus))
        outs = _StrictQuotient.apply(P, Q, t, tr, factors, thresholds)
        decoded, bottom, gap, fault, semantic = outs[:5]
        k = len(factors)
        ff, fs = tuple(outs[5 : 5 + k]), tuple(outs[5 + k :])
    elif needs_grad:
        with torch.no_grad():
            masks = _torch_masks(P.detach(), Q.detach(), t, tr, factors, taus, functional)
        bottom = masks[1]
        # Double where: bottom entries divide 0 by 1, so no NaN/Inf enters the backward pass.
        safe = torch.where(bottom, 0.0, P) / torch.where(bottom, 1.0, Q)
        decoded = torch.where(bottom, float("nan"), safe)
        _, _, gap, fault, semantic, ff, fs = masks
    else:
        masks = _torch_masks(P, Q, t, tr, factors, taus, functional)
        d, bottom, gap, fault, semantic, ff, fs = masks
        if functional:
            decoded = torch.where(bottom, float("nan"), d)
        else:
            _fill_bottoms(d, bottom)  # d is a private buffer
            decoded = d
    return StrictInferenceResult(
        decoded,
        bottom,
        gap,
        fault,
        semantic,
        factor_values=factors,
        factor_fault_masks=ff,
        factor_semantic_masks=fs,
    )


class _StrictQuotient(torch.autograd.Function):
    """Eager strict decode under autograd: masks and ``P/Q`` in one no-grad pass.

    ``forward`` runs the eager mask kernels once and returns ``(decoded, bottom,
    gap, fault, semantic, *factor_faults, *factor_semantics)``; only ``decoded``
    is differentiable. ``backward`` is the gradient of
    ``where(bottom, nan, where(bottom, 0, P) / where(bottom, 1, Q))`` written out
    with PyTorch's own division formulas, ``gP = g / Q`` and
    ``gQ = -g * ((P / Q) / Q)``, reusing the forward quotient, with exact zeros
    at bottom entries (only filled when some entry is bottom). Under
    ``create_graph=True`` it evaluates those formulas with differentiable ops
    on the saved ``P`` and ``Q``, so higher derivatives are those of the
    ``where`` expression.
    """

    @staticmethod
    def forward(
        ctx: Any,
        P: torch.Tensor,
        Q: torch.Tensor,
        t: float,
        tr: float | None,
        factors: tuple[torch.Tensor, ...],
        thresholds: tuple[float, ...],
    ) -> tuple[torch.Tensor, ...]:
        d, bottom, gap, fault, semantic, ff, fs = _torch_masks_at(
            P, Q, t, tr, factors, thresholds, functional=False
        )
        any_bottom = _fill_bottoms(d, bottom)
        masks = (bottom, gap, fault, semantic, *ff, *fs)
        ctx.mark_non_differentiable(*masks)
        ctx.save_for_backward(P, Q, bottom)
        # A detached alias shares the version counter but holds no reference to the
        # output's grad_fn (no cycle); backward recomputes P/Q if it was modified in place.
        ctx.quotient = d.detach()
        ctx.quotient_version = d._version
        ctx.any_bottom = any_bottom
        return (d, *masks)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        P, Q, bottom = ctx.saved_tensors
        need_p, need_q = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        none = (None, None, None, None)
        if torch.is_grad_enabled():  # create_graph=True: differentiable formulas
            g0 = torch.where(bottom, 0.0, g)
            qs = torch.where(bottom, 1.0, Q)
            gp = torch.where(bottom, 0.0, g0 / qs) if need_p else None
            gq = None
            if need_q:
                ps = torch.where(bottom, 0.0, P)
                gq = torch.where(bottom, 0.0, -g0 * ((ps / qs) / qs))
            return (gp, gq, *none)
        gp = torch.div(g, Q) if need_p else None
        gq = None
        if need_q:
            d = ctx.quotient
            if d._version != ctx.quotient_version:  # decoded was modified in place
                d = torch.div(P, Q)
            gq = torch.div(d, Q).mul_(g).neg_()
        if ctx.any_bottom:
            for grad in (gp, gq):
                if grad is not None:
                    grad.masked_fill_(bottom, 0.0)
        return (gp, gq, *none)


def _torch_masks(
    P: torch.Tensor,
    Q: torch.Tensor,
    t: float,
    tr: float | None,
    factors: tuple[torch.Tensor, ...],
    taus: tuple[float, ...],
    functional: bool,
) -> tuple[Any, ...]:
    """``(d, bottom, gap, fault, semantic, factor_faults, factor_semantics)`` for torch inputs."""
    thresholds = tuple(_factor_thresholds(factors, taus))
    return _torch_masks_at(P, Q, t, tr, factors, thresholds, functional=functional)


def _torch_masks_at(
    P: torch.Tensor,
    Q: torch.Tensor,
    t: float,
    tr: float | None,
    factors: tuple[torch.Tensor, ...],
    thresholds: tuple[float, ...],
    *,
    functional: bool,
) -> tuple[Any, ...]:
    """:func:`_torch_masks` with the factor thresholds already resolved.

    Eager mode merges each factor's masks into the core masks in place
    (``logical_or_`` on private bool buffers, no allocation) and reuses one float
    scratch buffer per factor shape for the factor kernels.
    """
    core = K.torch_core_functional if functional else K.torch_core_fast
    d, fault, semantic, below_train = core(P, Q, t, tr)
    out_shape = tuple(fault.shape)
    ff, fs = [], []
    scratch: dict[tuple[tuple[int, ...], torch.dtype], torch.Tensor] = {}
    values = [v.detach() for v in factors]
    finite = [False] * len(values) if functional else _proven_finite(values)
    for v, tv, fin in zip(values, thresholds, finite, strict=True):
        vs = tuple(v.shape)
        if functional:
            f_i, s_i = K.torch_factor_functional(v, tv)
        else:
            buf = scratch.get((vs, v.dtype))
            if buf is None:
                buf = scratch[(vs, v.dtype)] = torch.empty(vs, dtype=v.dtype, device=v.device)
            f_i, s_i = K.torch_factor_fast(v, tv, buf, finite=fin)
        ff.append(f_i)
        fs.append(s_i)
        if _factor_view_shape(vs, out_shape, ""):
            f_i, s_i = f_i[..., None], s_i[..., None]
        if functional or tuple(fault.shape) != out_shape:
            fault = fault | f_i
            semantic = semantic | s_i
        else:
            if not fin:  # a proven-finite factor has no fault to merge
                fault.logical_or_(f_i)  # private buffers of the output shape
            semantic.logical_or_(s_i)
    bottom = fault | semantic if functional or K.any_set(fault) else semantic.clone()
    if below_train is None:
        gap = torch.zeros_like(bottom)
    elif functional:
        gap = below_train & ~bottom
    else:
        gap = torch.gt(below_train, bottom, out=below_train)  # below_train & ~bottom
    return d, bottom, gap, fault, semantic, tuple(ff), tuple(fs)


def _proven_finite(values: list[torch.Tensor]) -> list[bool]:
    """Per factor, whether every entry is proven finite (:func:`K.all_finite`), tested
    two factors per pass where their shapes allow; False means "not proven"."""
    out = [False] * len(values)
    for i in range(0, len(values) - 1, 2):
        if K.all_finite(values[i], values[i + 1]):
            out[i] = out[i + 1] = True
    if len(values) % 2:
        out[-1] = K.all_finite(values[-1])
    return out


def _finish_numpy(
    P: np.ndarray,
    Q: np.ndarray,
    t: float,
    tr: float | None,
    factors: tuple[np.ndarray, ...],
    taus: tuple[float, ...],
) -> StrictInferenceResult:
    thresholds = _factor_thresholds(factors, taus)
    d, fault, semantic, below_train = K.numpy_core(P, Q, t, tr)
    ff, fs = [], []
    for v, tv in zip(factors, thresholds, strict=True):
        f_i, s_i = K.numpy_factor(v, tv)
        ff.append(f_i)
        fs.append(s_i)
        if _factor_view_shape(tuple(v.shape), tuple(fault.shape), ""):
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
