"""The implicit (cross-product) loss on projective tuples.

For a prediction ``(P, Q)`` and a target ``(Y_n, Y_d)`` the residual is

    E = (P*Y_d - Q*Y_n)**2 / (Q**2 * Y_d**2 + P**2 * Y_n**2 + gamma)

It is zero exactly when the tuples are proportional (the same projective
point), never divides by ``Q`` and so has a finite gradient at ``Q = 0`` and
at ``P = Q = 0``. For a finite target ``y`` it reads ``(v - y)**2 / (1 + v**2 y**2)``
with ``v = P/Q``; for a bottom target ``(1, 0)`` it is ``Q**2 / P**2``.

Both tuples are first divided by their (detached) max-norm, so the loss is
exactly invariant under ``(P, Q) -> c*(P, Q)`` and ``(Y_n, Y_d) -> c*(Y_n, Y_d)``
for every ``c != 0``, ``gamma`` acts at unit scale only (a guard for ``0/0``),
and squares cannot overflow for huge targets or outputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zpml_runtime.errors import InvalidConfigError

from ._common import (
    align_weight,
    check_nonneg_number,
    check_tuples,
    combine,
    reduce_mean,
    sanitize,
    tiny,
    unit_scale,
)

__all__ = [
    "RELATIVE_WEIGHT_CAP",
    "WEIGHTINGS",
    "cross_product_loss",
    "implicit_loss",
    "implicit_residual",
    "relative_weight",
]

Tensor = torch.Tensor

#: row weightings of :func:`implicit_loss`
WEIGHTINGS = ("uniform", "relative")
#: default cap of ``1 / |sin cos|`` in :func:`relative_weight` (at least 2: rows differ by at most 15x at power 1)
RELATIVE_WEIGHT_CAP = 30.0


class _ImplicitResidual(torch.autograd.Function):
    """Fused forward/backward of ``E`` for unit-scaled targets (targets get no gradient).

    One autograd node instead of about twenty, with the analytic gradient
    ``dE/dp = 2 (r y_d - E p y_n**2) / D``, ``dE/dq = -2 (r y_n + E q y_d**2) / D``
    (the ``E`` terms dropped under ``detach_scale``), divided by the detached scale
    ``s`` (floored at ``sqrt(tiny)`` of the dtype, so the gradient of outputs of
    subnormal size stays finite; at ``P = Q = 0`` it is exactly 0).
    """

    @staticmethod
    def forward(
        ctx: Any, P: Tensor, Q: Tensor, yn: Tensor, yd: Tensor, gamma: float, detach: bool
    ) -> Tensor:
        floor = tiny(P.dtype)
        s = torch.maximum(P.abs(), Q.abs()).add_(floor)
        p = P / s
        q = Q / s
        r = torch.addcmul(p * yd, q, yn, value=-1.0)
        qd = q * yd
        pn = p * yn
        D = torch.addcmul(qd * qd, pn, pn).add_(gamma).clamp_min_(floor)
        E = (r * r).div_(D)
        # gradient scale 1/s, floored so outputs of subnormal size cannot overflow it
        ctx.save_for_backward(s.clamp_min_(math.sqrt(floor)), r, D, E, pn, qd, yn, yd)
        ctx.detach = detach
        return E

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        s, r, D, E, pn, qd, yn, yd = ctx.saved_tensors
        a = (2.0 * g) / D
        if ctx.detach:
            gp = r * yd
            gq = r * yn
        else:
            gp = (r * yd).sub_((E * pn).mul_(yn))
            gq = (r * yn).add_((E * qd).mul_(yd))
        return gp.mul_(a).div_(s), gq.mul_(a).div_(s).neg_(), None, None, None, None


def implicit_residual(
    P: Tensor,
    Q: Tensor,
    Y_n: Tensor,
    Y_d: Tensor,
    gamma: float = 1e-9,
    *,
    detach_scale: bool = False,
) -> Tensor:
    """Elementwise ``E`` of :func:`implicit_loss` (no checks, no reduction).

    ``detach_scale=True`` stops the gradient through the normaliser
    ``Q**2 Y_d**2 + P**2 Y_n**2``: the value is unchanged, the gradient is that
    of a plain weighted squared cross-product (which also shrinks the tuple).
    The targets receive no gradient.
    """
    yn, yd = unit_scale(Y_n.detach(), Y_d.detach())
    out: Tensor = _ImplicitResidual.apply(P, Q, yn, yd, float(gamma), bool(detach_scale))
    return out


def relative_weight(
    Y_n: Tensor, Y_d: Tensor, cap: float = RELATIVE_WEIGHT_CAP, power: float = 1.0
) -> Tensor:
    """Per-entry weight ``min(1 / |sin(phi) cos(phi)|, cap) ** power`` of the target angle ``phi``.

    ``(Y_n, Y_d)`` is read as the direction ``(cos phi, sin phi)`` (up to scale),
    so a finite target ``y = Y_n / Y_d = cot(phi)`` has ``1 / |sin cos| = |y| + 1/|y|``.
    The implicit residual is (within a factor 2) the squared angle error
    ``d**2`` between prediction and target, and ``d / |sin(phi) cos(phi)|`` is
    the relative error of the value (and of its reciprocal). So ``power=2``
    turns the residual into the squared relative error; ``power=1`` (default)
    into the product of angle and relative error, halfway between the two.
    The weight is smallest at ``|y| = 1``, grows for large targets (near
    poles) and small ones (near zeros), symmetric under ``y -> 1/y``;
    ``cap`` (``>= 2``) bounds ``1 / |sin cos|``, and applies to bottom
    targets (``Y_d = 0``), zeros (``Y_n = 0``) and the null tuple ``(0, 0)``.
    No gradient flows into the weight.
    """
    func = "relative_weight"
    cap = check_nonneg_number(cap, name="cap", func=func)
    if cap < 2.0:
        raise InvalidConfigError(
            f"{func}: cap must be >= 2 (the smallest weight, at |y| = 1), got {cap!r}"
        )
    power = check_nonneg_number(power, name="power", func=func)
    if not 0.0 < power <= 2.0:
        raise InvalidConfigError(f"{func}: power must be in (0, 2], got {power!r}")
    yn, yd = unit_scale(Y_n.detach(), Y_d.detach())
    num = yn * yn + yd * yd
    den = (yn * yd).abs()
    capped = den * cap <= num  # also every den == 0 row
    w = torch.where(
        capped, torch.full_like(num, cap), num / torch.where(capped, torch.ones_like(den), den)
    )
    return w if power == 1.0 else w.pow(power)


def implicit_loss(
    P: Tensor,
    Q: Tensor,
    Y_n: Any,
    Y_d: Any,
    gamma: float = 1e-9,
    *,
    detach_scale: bool = False,
    mask: Tensor | None = None,
    weight: Tensor | None = None,
    weighting: str = "uniform",
    weight_cap: float = RELATIVE_WEIGHT_CAP,
    weight_power: float = 1.0,
) -> Tensor:
    """Mean implicit loss between predictions ``(P, Q)`` and targets ``(Y_n, Y_d)``.

    All four share one shape (no broadcasting; a mismatch raises
    :class:`~zpml_runtime.errors.ShapeMismatchError`); targets are cast to the
    dtype and device of ``P``. ``mask`` (bool, full shape or one entry per
    row) selects the entries to include, ``weight`` (non-negative, same
    shapes) weights them; excluded entries get an exact zero gradient even if
    they hold NaN/inf. Returns a 0-d tensor (0 when nothing is included).
    No Python loops and no device synchronisation.

    ``weighting``: ``"uniform"`` (default) averages the residual, a uniform
    error in the angle of the projective point; ``"relative"`` multiplies each
    entry by :func:`relative_weight` of its target (``weight_cap``,
    ``weight_power``), which moves it towards the relative error of the value
    (and of its reciprocal) and places poles and zeros more precisely (see
    ``docs/losses.md``). It combines with ``weight`` by multiplication; the
    result is a weighted mean.
    """
    func = "implicit_loss"
    P, Q, Y_n, Y_d = check_tuples(P, Q, Y_n, Y_d, func=func)
    gamma = check_nonneg_number(gamma, name="gamma", func=func)
    if weighting not in WEIGHTINGS:
        raise InvalidConfigError(
            f"{func}: weighting must be one of {WEIGHTINGS}, got {weighting!r}"
        )
    if weighting == "relative":
        rel = relative_weight(Y_n, Y_d, weight_cap, weight_power)
        if weight is not None:
            rel = rel * align_weight(weight, P, func=func)
        weight = rel
    m, w = combine(None, mask, weight, P, func=func)
    if m is not None:
        P, Q = sanitize(P, m), sanitize(Q, m)
        Y_n, Y_d = sanitize(Y_n, m), sanitize(Y_d, m)
    E = implicit_residual(P, Q, Y_n, Y_d, gamma, detach_scale=bool(detach_scale))
    return reduce_mean(E, m, w)


def cross_product_loss(
    P: Tensor,
    Q: Tensor,
    Y_n: Any,
    Y_d: Any,
    *,
    mask: Tensor | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared cross product ``(P*y_d - Q*y_n)**2`` with ``(y_n, y_d)`` the targets at unit max-norm.

    The gauge-keeping sibling of :func:`implicit_loss`: only the *targets* are
    normalised, so the loss depends on the scale of ``(P, Q)``. Use it when the
    model fixes its own gauge (a template whose ``Q`` has no free scale, e.g.
    ``Q = s2``): the fit is then an ordinary least-squares problem in the
    numerator coefficients and converges much faster than the scale-invariant
    loss, whose minimiser is only defined up to ``(P, Q) -> c*(P, Q)``. Bottom
    targets ``(+-1, 0)`` contribute ``Q**2``; the null tuple ``(0, 0)`` contributes 0.
    Same shape, ``mask`` and ``weight`` rules as :func:`implicit_loss`.
    """
    func = "cross_product_loss"
    P, Q, Y_n, Y_d = check_tuples(P, Q, Y_n, Y_d, func=func)
    m, w = combine(None, mask, weight, P, func=func)
    if m is not None:
        P, Q = sanitize(P, m), sanitize(Q, m)
        Y_n, Y_d = sanitize(Y_n, m), sanitize(Y_d, m)
    yn, yd = unit_scale(Y_n.detach(), Y_d.detach())
    r = torch.addcmul(P * yd, Q, yn, value=-1.0)
    return reduce_mean(r * r, m, w)
