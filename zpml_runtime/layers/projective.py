"""Projective gauge: ``GaugePolicy`` metadata and detached renormalisation of ``(P, Q)``.

``(P, Q)`` and ``(c*P, c*Q)`` decode to the same value but give different
``|Q|``, so a threshold on ``|Q|`` only means something for a declared gauge
(docs/semantics.md section 4). ``ProjectiveNormalize`` implements the seeds'
detached renormalisation ``(N, D) <- (N, D) / sg(sqrt(N**2 + D**2) + gamma)``.
"""

from __future__ import annotations

import enum
import math

import torch
from torch import nn

from ..errors import InvalidConfigError, UnsupportedInputError

__all__ = ["GaugePolicy", "ProjectiveNormalize"]


class GaugePolicy(enum.StrEnum):
    """Magnitude convention of a projective head or bundle (JSON-serialisable string values).

    * ``CANONICAL_DENOMINATOR``: keep ``(P, Q)`` as produced (compatibility default).
    * ``UNIT_L2_PROJECTIVE``: thresholds act on ``(P, Q) / sqrt(P**2 + Q**2)``.
    * ``ANGULAR_UNIT_CIRCLE``: unit-circle tuples of angular heads; normalised like
      ``UNIT_L2_PROJECTIVE`` (orientation/wrap rules stay with the head).
    """

    CANONICAL_DENOMINATOR = "canonical_denominator"
    UNIT_L2_PROJECTIVE = "unit_l2_projective"
    ANGULAR_UNIT_CIRCLE = "angular_unit_circle"

    @classmethod
    def parse(cls, value: GaugePolicy | str) -> GaugePolicy:
        """Accept a member or its string value (as stored in metadata)."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            options = ", ".join(repr(m.value) for m in cls)
            raise InvalidConfigError(
                f"unknown gauge policy {value!r}; expected one of {options}"
            ) from None


class ProjectiveNormalize(nn.Module):
    """Detached renormalisation of projective tuples under a :class:`GaugePolicy`.

    ``normalize(P, Q)`` returns ``(P_hat, Q_hat)``:

    * ``CANONICAL_DENOMINATOR``: ``(P, Q)`` unchanged;
    * ``UNIT_L2_PROJECTIVE`` / ``ANGULAR_UNIT_CIRCLE``: ``(P, Q) / sg(||(P, Q)|| + gamma)``.

    The norm is computed without overflow (scaled by ``max(|P|, |Q|)``) and is
    detached: gradients flow through ``P`` and ``Q`` only, not through the norm.
    The tuple ``(0, 0)`` stays ``(0, 0)`` (a semantic bottom), and non-finite
    entries stay non-finite (a fault), so normalising never hides a bottom.
    """

    def __init__(
        self, policy: GaugePolicy | str = GaugePolicy.UNIT_L2_PROJECTIVE, *, gamma: float = 0.0
    ) -> None:
        super().__init__()
        self.policy = GaugePolicy.parse(policy)
        if (
            isinstance(gamma, bool)
            or not isinstance(gamma, int | float)
            or not math.isfinite(gamma)
            or gamma < 0
        ):
            raise InvalidConfigError(f"gamma must be a finite number >= 0, got {gamma!r}")
        self.gamma = float(gamma)

    def forward(self, P: torch.Tensor, Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the renormalised ``(P_hat, Q_hat)``."""
        if not isinstance(P, torch.Tensor) or not isinstance(Q, torch.Tensor):
            raise UnsupportedInputError(
                f"ProjectiveNormalize expects torch tensors, got {type(P).__name__} and {type(Q).__name__}"
            )
        if self.policy is GaugePolicy.CANONICAL_DENOMINATOR:
            return P, Q
        with torch.no_grad():
            scale = torch.maximum(P.abs(), Q.abs())  # NaN propagates: faults stay faults
            scale = torch.where(scale == 0, torch.ones_like(scale), scale)
            radius = torch.hypot(P / scale, Q / scale)  # in [1, sqrt(2)]: no overflow
            if self.gamma:
                radius = radius + self.gamma / scale
            radius = torch.where(radius == 0, torch.ones_like(radius), radius)
        return (P / scale) / radius, (Q / scale) / radius

    def extra_repr(self) -> str:
        return f"policy={self.policy.value!r}, gamma={self.gamma}"
