"""Auxiliary loss terms: denominator margin, orientation at singular targets, censoring.

Each returns a 0-d tensor, takes an optional boolean ``mask`` (rows to
include; full shape or one entry per row) and non-negative ``weight``, and is
differentiable. Excluded entries get an exact zero gradient.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import (
    abs_away_from_zero,
    as_targets,
    check_nonneg_number,
    check_same_shape,
    check_tau,
    check_tensor,
    check_tuples,
    combine,
    reduce_mean,
    sanitize,
    tiny,
    unit_scale,
)
from .implicit import implicit_residual

__all__ = ["censored_loss", "margin_loss", "sign_consistency_loss"]

Tensor = torch.Tensor


def margin_loss(
    Q: Tensor,
    tau_train: Any,
    *,
    mask: Tensor | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """Hinge ``mean(max(0, tau_train - |Q|)**2)``: push ``|Q|`` above ``tau_train``.

    Use it on rows whose target is finite (``mask=targets.finite_mask``) so the
    trained denominator keeps a safety margin over the inference threshold.
    ``tau_train`` is a finite number ``>= 0`` or one threshold per output
    (a 1-d tensor of length ``Q.shape[-1]``). It acts on the raw ``Q``, i.e.
    in the gauge the model outputs (the gauge strict inference thresholds).
    """
    func = "margin_loss"
    Q = check_tensor(Q, name="Q", func=func)
    tau = check_tau(tau_train, Q, name="tau_train", func=func)
    m, w = combine(None, mask, weight, Q, func=func)
    Q = sanitize(Q, m, fill=float("inf"))  # excluded rows: no hinge, zero gradient
    h = torch.relu(tau - abs_away_from_zero(Q))
    return reduce_mean(h * h, m, w)


def sign_consistency_loss(
    P: Tensor,
    Q: Tensor,
    Y_n: Any,
    Y_d: Any,
    *,
    mask: Tensor | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """Orientation at singular targets: the decoded ``P/Q`` must approach ``sign(Y_n) * inf``.

    On rows with target ``(s, 0)``, ``s = +-1`` (by default every row with
    ``Y_d == 0`` and ``Y_n != 0``; ``mask`` narrows it, e.g. to
    ``targets.oriented_mask``), the loss is ``relu(-s * 2 P Q / (P**2 + Q**2))``
    in ``[0, 1]``: zero when ``P/Q`` has the sign ``s`` (or is exactly bottom,
    ``Q = 0``), largest (1) at ``P/Q = -s``. It depends on the projective point
    only, so it holds in every gauge (``(P, Q)`` and ``(-P, -Q)`` decode to the
    same value, which a cosine to ``(s, 0)`` would not respect), and its
    gradient does not vanish on the wrong side next to the pole.
    """
    func = "sign_consistency_loss"
    P, Q, Y_n, Y_d = check_tuples(P, Q, Y_n, Y_d, func=func)
    singular = (Y_d == 0) & (Y_n != 0)
    m, w = combine(singular, mask, weight, P, func=func)
    P, Q = sanitize(P, m), sanitize(Q, m)
    p, q = unit_scale(P, Q)
    s = torch.sign(sanitize(Y_n, m))
    val = torch.relu(-2.0 * s * p * q / (p * p + q * q).clamp_min(tiny(p.dtype)))
    return reduce_mean(val, m, w)


def censored_loss(
    P: Tensor,
    Q: Tensor,
    Y_n: Any,
    Y_d: Any,
    *,
    direction: Any,
    gamma: float = 1e-9,
    mask: Tensor | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """One-sided implicit loss for censored targets (the bound is ``Y_n / Y_d``).

    ``direction`` is ``+1`` (censored above: the true value is ``>=`` the
    bound) or ``-1`` (censored below), a number or a tensor of the targets'
    shape. Entries on the correct side of the bound cost nothing; entries on
    the wrong side cost the :func:`implicit_loss` residual to the bound. The
    side is decided without dividing: ``sign((P Y_d - Q Y_n) Q Y_d) = sign(P/Q - bound)``.
    """
    func = "censored_loss"
    P, Q, Y_n, Y_d = check_tuples(P, Q, Y_n, Y_d, func=func)
    gamma = check_nonneg_number(gamma, name="gamma", func=func)
    if isinstance(direction, torch.Tensor):
        d = as_targets(direction, P, name="direction", func=func)
        check_same_shape(P, d, names=("P", "direction"), func=func)
    elif direction in (1, -1) and not isinstance(direction, bool):
        d = torch.full((), float(direction), dtype=P.dtype, device=P.device)
    else:
        from zpml_runtime.errors import InvalidConfigError

        raise InvalidConfigError(
            f"{func}: direction must be +1 (censored above), -1 (censored below) or a "
            f"tensor of those, got {direction!r}"
        )
    m, w = combine(None, mask, weight, P, func=func)
    if m is not None:
        P, Q = sanitize(P, m), sanitize(Q, m)
        Y_n, Y_d = sanitize(Y_n, m), sanitize(Y_d, m)
    E = implicit_residual(P, Q, Y_n, Y_d, gamma)
    p, q = unit_scale(P.detach(), Q.detach())
    yn, yd = unit_scale(Y_n.detach(), Y_d.detach())
    wrong = d * torch.sign(p * yd - q * yn) * torch.sign(q) * torch.sign(yd) < 0
    return reduce_mean(torch.where(wrong, E, torch.zeros_like(E)), m, w)
