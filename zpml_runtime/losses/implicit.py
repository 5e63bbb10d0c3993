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

from typing import Any

import torch

from ._common import (
    as_targets,
    check_nonneg_number,
    check_same_shape,
    check_tensor,
    combine,
    reduce_mean,
    sanitize,
    tiny,
    unit_scale,
)

__all__ = ["implicit_loss", "implicit_residual"]

Tensor = torch.Tensor


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
    of a plain weighted squared cross-product (it then also shrinks the tuple).
    """
    p, q = unit_scale(P, Q)
    yn, yd = unit_scale(Y_n.detach(), Y_d.detach())
    r = p * yd - q * yn
    qd = q * yd
    pn = p * yn
    den = qd * qd + pn * pn
    if detach_scale:
        den = den.detach()
    return r * r / (den + gamma).clamp_min(tiny(den.dtype))


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
) -> Tensor:
    """Mean implicit loss between predictions ``(P, Q)`` and targets ``(Y_n, Y_d)``.

    All four share one shape (no broadcasting; a mismatch raises
    :class:`~zpml_runtime.errors.ShapeMismatchError`); targets are cast to the
    dtype and device of ``P``. ``mask`` (bool, full shape or one entry per
    row) selects the entries to include, ``weight`` (non-negative, same
    shapes) weights them; excluded entries get an exact zero gradient even if
    they hold NaN/inf. Returns a 0-d tensor (0 when nothing is included).
    No Python loops and no device synchronisation.
    """
    func = "implicit_loss"
    P = check_tensor(P, name="P", func=func)
    Q = check_tensor(Q, name="Q", func=func)
    check_same_shape(P, Q, names=("P", "Q"), func=func)
    Y_n = as_targets(Y_n, P, name="Y_n", func=func)
    Y_d = as_targets(Y_d, P, name="Y_d", func=func)
    check_same_shape(P, Y_n, names=("P", "Y_n"), func=func)
    check_same_shape(P, Y_d, names=("P", "Y_d"), func=func)
    gamma = check_nonneg_number(gamma, name="gamma", func=func)
    m, w = combine(None, mask, weight, P, func=func)
    if m is not None:
        P, Q = sanitize(P, m), sanitize(Q, m)
        Y_n, Y_d = sanitize(Y_n, m), sanitize(Y_d, m)
    E = implicit_residual(P, Q, Y_n, Y_d, gamma, detach_scale=bool(detach_scale))
    return reduce_mean(E, m, w)
