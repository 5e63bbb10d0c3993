"""``GradientPolicy``: what the backward pass does at samples that decode to bottom.

A sample of a projective tuple ``(P, Q[, V])`` *decodes to bottom under tau*
when ``P`` or ``Q`` is non-finite, ``Q == 0``, ``|Q| < tau``, or some validity
factor ``V_i`` is non-finite, zero or ``|V_i| < tau`` (the strict decode of
docs/semantics.md section 3 with ``tau_infer = tau_i = tau``). The forward values
are never changed; only the gradient that flows back through ``P``, ``Q``
and ``V`` is.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import torch

from ..errors import InvalidConfigError, UnsupportedInputError

__all__ = ["GradientPolicy", "apply_gradient_policy", "bottom_under_tau"]


class GradientPolicy(enum.StrEnum):
    """Gradient handling at samples that decode to bottom under a layer's ``tau_train``.

    * ``PASSTHROUGH``: plain autograd; nothing is inserted in the graph (zero cost).
    * ``PROJECT``: the gradient through ``P``, ``Q`` (and ``V``) of every sample that
      decodes to bottom is zero; other samples are untouched.
    * ``CLAMP``: as ``PROJECT``, and every remaining gradient entry of ``P``, ``Q``,
      ``V`` is made finite (NaN -> 0) and clamped to ``[-clamp_value, clamp_value]``.
    * ``REJECT``: all or nothing per call: if *any* sample of the batch decodes to
      bottom, the gradient through the layer is zero for the whole batch (the step
      that saw a singular sample does not move the layer); otherwise untouched.
    """

    PASSTHROUGH = "passthrough"
    PROJECT = "project"
    CLAMP = "clamp"
    REJECT = "reject"

    @classmethod
    def parse(cls, value: GradientPolicy | str) -> GradientPolicy:
        """Accept a member or its string value (case-insensitive)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        options = ", ".join(repr(m.value) for m in cls)
        raise InvalidConfigError(
            f"unknown gradient_policy {value!r}; expected a GradientPolicy or one of {options}"
        )


def check_tau(tau: Any, name: str = "tau_train") -> float:
    """Validate a finite threshold ``>= 0`` and return it as a float."""
    if (
        isinstance(tau, bool)
        or not isinstance(tau, int | float)
        or not math.isfinite(tau)
        or tau < 0
    ):
        raise InvalidConfigError(f"{name} must be a finite number >= 0, got {tau!r}")
    return float(tau)


def bottom_under_tau(
    P: torch.Tensor, Q: torch.Tensor, V: torch.Tensor | None = None, *, tau: float = 0.0
) -> torch.Tensor:
    """Boolean mask of the samples (shape of ``Q``) that decode to bottom under ``tau``.

    ``V`` has shape ``[*Q.shape, k]``. This is deployment's decision, not a copy
    of it: the mask is :func:`zpml_core.strict_inference`'s ``bottom_mask`` with
    ``tau_infer = tau`` for ``Q`` and every factor (docs/semantics.md section 3),
    so a sample is projected in training exactly when the deployed model would
    call it bottom at that threshold. Computed without autograd.
    """
    from zpml_core.config import InferenceConfig
    from zpml_core.strict import strict_inference

    with torch.no_grad():
        factors = None if V is None or V.shape[-1] == 0 else V.detach()
        result = strict_inference(
            P.detach(),
            Q.detach(),
            config=InferenceConfig(tau_infer=tau),
            validity_factors=factors,
            validity_taus=tau,
        )
    return result.bottom_mask


class _GateGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies by ``keep`` (and clamps for CLAMP)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, keep: torch.Tensor, clamp: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.clamp = clamp
        return t.view_as(t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (keep,) = ctx.saved_tensors
        if ctx.clamp > 0:
            grad = torch.nan_to_num(grad, nan=0.0).clamp(-ctx.clamp, ctx.clamp)
        return (
            torch.where(keep, grad, torch.zeros((), dtype=grad.dtype, device=grad.device)),
            None,
            None,
        )


def apply_gradient_policy(
    P: torch.Tensor,
    Q: torch.Tensor,
    V: torch.Tensor | None = None,
    *,
    policy: GradientPolicy | str = GradientPolicy.PROJECT,
    tau: float = 0.0,
    clamp_value: float = 1.0,
) -> tuple[torch.Tensor, ...]:
    """Return ``(P, Q)`` or ``(P, Q, V)`` with the gradient handled by ``policy``.

    Values are returned unchanged (views). With ``PASSTHROUGH``, or when autograd
    does not record, the inputs are returned as they are, at no cost.
    """
    policy = GradientPolicy.parse(policy)
    outs: tuple[torch.Tensor, ...] = (P, Q) if V is None else (P, Q, V)
    if policy is GradientPolicy.PASSTHROUGH or not torch.is_grad_enabled():
        return outs
    if not any(t.requires_grad for t in outs):
        return outs
    for name, t in zip("PQV", outs, strict=False):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise UnsupportedInputError(
                f"apply_gradient_policy expects floating torch tensors, got {name} as "
                f"{type(t).__name__ if not isinstance(t, torch.Tensor) else t.dtype}"
            )
    bad = bottom_under_tau(P, Q, V, tau=tau)
    if policy is GradientPolicy.REJECT:
        keep = ~bad.any().expand(bad.shape)
    else:
        keep = ~bad
    clamp = float(clamp_value) if policy is GradientPolicy.CLAMP else 0.0
    gated = []
    for t in outs:
        if not t.requires_grad:
            gated.append(t)
            continue
        k = keep if t.dim() == keep.dim() else keep.unsqueeze(-1)
        gated.append(_GateGrad.apply(t, k, clamp))
    return tuple(gated)
