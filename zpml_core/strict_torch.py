"""The torch path of :func:`~zpml_core.strict.strict_inference`: eager masks merged in
place, the functional path for ``torch.compile``/tracing/``torch.func``, and the
``_StrictQuotient`` autograd function (masks and ``P/Q`` in one no-grad pass)."""

from __future__ import annotations

from typing import Any

import torch

from . import kernels as K
from .result import StrictInferenceResult
from .strict_shapes import factor_view_shape

__all__ = ["finish_torch"]


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


def finish_torch(
    P: torch.Tensor,
    Q: torch.Tensor,
    t: float,
    tr: float | None,
    factors: tuple[torch.Tensor, ...],
    thresholds: tuple[float, ...],
    *,
    functional: bool,
) -> StrictInferenceResult:
    """The strict result of torch ``P, Q`` (aligned) at effective thresholds ``t``, ``tr``
    and ``thresholds`` (one per factor, in the factor's dtype). ``functional``: out-of-place
    ops only (``torch.compile``, tracing), no custom autograd function."""
    needs_grad = torch.is_grad_enabled() and (P.requires_grad or Q.requires_grad)
    if needs_grad and not functional and not _functorch_wrapped(P, Q):
        outs = _StrictQuotient.apply(P, Q, t, tr, factors, thresholds)
        decoded, bottom, gap, fault, semantic = outs[:5]
        k = len(factors)
        ff, fs = tuple(outs[5 : 5 + k]), tuple(outs[5 + k :])
    elif needs_grad:
        with torch.no_grad():
            masks = _torch_masks(
                P.detach(), Q.detach(), t, tr, factors, thresholds, functional=functional
            )
        bottom = masks[1]
        # Double where: bottom entries divide 0 by 1, so no NaN/Inf enters the backward pass.
        safe = torch.where(bottom, 0.0, P) / torch.where(bottom, 1.0, Q)
        decoded = torch.where(bottom, float("nan"), safe)
        _, _, gap, fault, semantic, ff, fs = masks
    else:
        masks = _torch_masks(P, Q, t, tr, factors, thresholds, functional=functional)
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
        d, bottom, gap, fault, semantic, ff, fs = _torch_masks(
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
    thresholds: tuple[float, ...],
    *,
    functional: bool,
) -> tuple[Any, ...]:
    """``(d, bottom, gap, fault, semantic, factor_faults, factor_semantics)`` for torch inputs.

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
        if factor_view_shape(vs, out_shape, ""):
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
