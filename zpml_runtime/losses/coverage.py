"""Coverage (fraction of samples strict inference accepts) and its differentiable surrogate."""

from __future__ import annotations

import math
from typing import Any

import torch

from zpml_runtime.errors import InvalidConfigError

from ._common import check_tau, check_tensor, combine, reduce_mean, sanitize, tiny

__all__ = ["coverage", "rejection_loss", "soft_coverage_loss"]

Tensor = torch.Tensor


def coverage(Q: Tensor, tau: Any, *, mask: Tensor | None = None) -> Tensor:
    """Fraction of included entries with a finite ``Q != 0`` and ``|Q| >= tau`` (a float tensor).

    This is the acceptance rule of strict inference on ``Q`` alone (an exact
    zero is rejected whatever ``tau``). Not differentiable (the result is
    detached); NaN when ``mask`` includes nothing. No device synchronisation.
    """
    func = "coverage"
    Q = check_tensor(Q, name="Q", func=func).detach()
    t = check_tau(tau, Q, name="tau", func=func)
    m, _ = combine(None, mask, None, Q, func=func)
    accepted = torch.isfinite(Q) & (Q != 0) & (Q.abs() >= t)
    if m is not None:
        accepted = accepted & m
        return accepted.sum(dtype=Q.dtype) / m.sum(dtype=Q.dtype)
    return accepted.to(Q.dtype).mean()


def soft_coverage_loss(
    Q: Tensor,
    tau: Any,
    *,
    target_coverage: float = 0.95,
    temperature: float = 1.0,
    mask: Tensor | None = None,
    weight: Tensor | None = None,
) -> Tensor:
    """Differentiable push of the coverage up to ``target_coverage``.

    Each entry is softly accepted with ``a = sigmoid((log|Q| - log tau) / temperature)``
    (``temperature`` in natural-log units: ``1.0`` means a factor ``e`` in ``|Q|``
    moves ``a`` from 0.27 to 0.73), the soft coverage is the (weighted) mean of
    ``a`` and the loss is ``relu(target_coverage - soft_coverage)**2``: zero once
    the target is met, so it never pushes a model that already covers enough.
    Working in ``log|Q|`` makes it act the same way at ``tau = 1e-6`` as at ``1e-2``.
    """
    func = "soft_coverage_loss"
    Q = check_tensor(Q, name="Q", func=func)
    t = check_tau(tau, Q, name="tau", func=func)
    if (
        isinstance(target_coverage, bool)
        or not isinstance(target_coverage, int | float)
        or not 0.0 <= float(target_coverage) <= 1.0
    ):
        raise InvalidConfigError(
            f"{func}: target_coverage must be a number in [0, 1], got {target_coverage!r}"
        )
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise InvalidConfigError(
            f"{func}: temperature must be a finite number > 0, got {temperature!r}"
        )
    m, w = combine(None, mask, weight, Q, func=func)
    Q = sanitize(Q, m, fill=1.0)
    floor = tiny(Q.dtype)
    log_tau = torch.log(torch.as_tensor(t, dtype=Q.dtype, device=Q.device).clamp_min(floor))
    a = torch.sigmoid((torch.log(Q.abs().clamp_min(floor)) - log_tau) / float(temperature))
    soft = reduce_mean(a, m, w)
    gap = torch.relu(float(target_coverage) - soft)
    return gap * gap


#: The seeds' name for the same surrogate (a loss on the rejected fraction).
rejection_loss = soft_coverage_loss
