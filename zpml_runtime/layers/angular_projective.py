"""``AngularProjectiveHead``: unit-circle tuples ``(cos theta, sin theta)`` (seed 004)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InvalidConfigError
from ._base import ProjectiveLayer, check_input, check_positive_int
from .gradient_policy import GradientPolicy
from .projective import GaugePolicy

__all__ = ["AngularProjectiveHead"]


class AngularProjectiveHead(ProjectiveLayer):
    """``theta = theta_scale * Linear(h)``; returns ``(P, Q) = (cos theta, sin theta)``.

    Input ``[..., input_dim]``, outputs ``[..., output_dim]`` each. The tuple
    has unit norm, so the projective scale gauge is gone (gauge
    ``ANGULAR_UNIT_CIRCLE``) and ``|Q| < tau`` means ``theta`` is within about
    ``tau`` of a multiple of pi. ``Q = sin(theta)`` is exactly 0 at
    ``theta = 0``, so the head can emit bottom (``can_reach_bottom = True``).
    The decoded value is ``cot(theta)``.
    """

    can_reach_bottom = True
    _gauges = (GaugePolicy.ANGULAR_UNIT_CIRCLE,)

    def __init__(
        self,
        input_dim: int,
        output_dim: int = 1,
        *,
        theta_scale: float = 1.0,
        bias: bool = True,
        gradient_policy: GradientPolicy | str = GradientPolicy.PASSTHROUGH,
        tau_train: float = 0.0,
        clamp_value: float = 1.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(
            gradient_policy=gradient_policy,
            tau_train=tau_train,
            gauge=GaugePolicy.ANGULAR_UNIT_CIRCLE,
            clamp_value=clamp_value,
        )
        name = type(self).__name__
        self.input_dim = check_positive_int(input_dim, "input_dim", name)
        self.output_dim = check_positive_int(output_dim, "output_dim", name)
        if (
            isinstance(theta_scale, bool)
            or not isinstance(theta_scale, int | float)
            or not math.isfinite(theta_scale)
            or theta_scale == 0
        ):
            raise InvalidConfigError(
                f"{name}: theta_scale must be a finite nonzero number, got {theta_scale!r}"
            )
        self.theta_scale = float(theta_scale)
        self.linear = nn.Linear(self.input_dim, self.output_dim, bias=bias, dtype=dtype)

    def theta(self, h: torch.Tensor) -> torch.Tensor:
        """The angle ``theta_scale * Linear(h)``, shape ``[..., output_dim]``."""
        check_input(type(self).__name__, h, dtype=self.linear.weight.dtype, last_dim=self.input_dim)
        theta = self.linear(h)
        return theta if self.theta_scale == 1.0 else theta * self.theta_scale

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(cos theta, sin theta)``, each ``[..., output_dim]``."""
        theta = self.theta(h)
        return self.finish(torch.cos(theta), torch.sin(theta))

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, output_dim={self.output_dim}, "
            f"theta_scale={self.theta_scale}, {self._policy_repr()}"
        )
