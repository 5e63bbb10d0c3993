"""Shared pieces of the projective layers: policy/gauge attributes and input checks."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from .gradient_policy import GradientPolicy, apply_gradient_policy, check_tau
from .projective import GaugePolicy, ProjectiveNormalize

__all__ = ["ProjectiveLayer", "check_degree", "check_input", "check_positive_int"]


def check_positive_int(value: Any, name: str, layer: str, *, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, else a typed error naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidConfigError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_degree(value: Any, name: str, layer: str) -> int:
    """A polynomial degree: an int ``>= 0``."""
    return check_positive_int(value, name, layer, minimum=0)


def check_input(
    layer: str, x: Any, *, dtype: torch.dtype, last_dim: int | None = None
) -> torch.Tensor:
    """Check ``x`` is a floating tensor of ``dtype`` (and ``[..., last_dim]``)."""
    if not isinstance(x, torch.Tensor):
        raise UnsupportedInputError(f"{layer} expects a torch.Tensor input, got {type(x).__name__}")
    if x.dtype != dtype:
        raise UnsupportedInputError(
            f"{layer} expects input dtype {dtype} (the dtype of its parameters), got {x.dtype}; "
            f"convert the input with x.to({dtype}) or the layer with layer.to({x.dtype})"
            if x.is_floating_point()
            else f"{layer} expects a floating input of dtype {dtype}, got {x.dtype}; "
            f"convert it with x.to({dtype})"
        )
    if last_dim is not None and (x.dim() == 0 or x.shape[-1] != last_dim):
        raise ShapeMismatchError(
            f"{layer} expects input of shape [..., {last_dim}], got {list(x.shape)}"
        )
    return x


class ProjectiveLayer(nn.Module):
    """Base of the layers: ``gradient_policy``, ``tau_train``, ``gauge`` and ``clamp_value``.

    Subclasses compute raw ``(P, Q[, V])`` and return :meth:`finish` of them:
    the gauge renormalisation (``UNIT_L2_PROJECTIVE``/``ANGULAR_UNIT_CIRCLE``:
    detached, :class:`ProjectiveNormalize`) and then the gradient policy,
    evaluated on the renormalised tuple under ``tau_train``.
    """

    #: True when the layer's Q can be exactly 0 (it can emit bottom).
    can_reach_bottom: bool = True
    #: gauges a layer accepts (class-level; the angular head accepts only its own)
    _gauges: tuple[GaugePolicy, ...] = (
        GaugePolicy.CANONICAL_DENOMINATOR,
        GaugePolicy.UNIT_L2_PROJECTIVE,
    )

    def __init__(
        self,
        *,
        gradient_policy: GradientPolicy | str = GradientPolicy.PASSTHROUGH,
        tau_train: float = 0.0,
        gauge: GaugePolicy | str = GaugePolicy.CANONICAL_DENOMINATOR,
        clamp_value: float = 1.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.gradient_policy = GradientPolicy.parse(gradient_policy)
        self.tau_train = check_tau(tau_train)
        self.gauge = GaugePolicy.parse(gauge)
        if self.gauge not in self._gauges:
            options = ", ".join(repr(g.value) for g in self._gauges)
            raise InvalidConfigError(
                f"{name}: gauge {self.gauge.value!r} is not supported; use one of {options}"
            )
        if (
            isinstance(clamp_value, bool)
            or not isinstance(clamp_value, int | float)
            or not math.isfinite(clamp_value)
            or clamp_value <= 0
        ):
            raise InvalidConfigError(
                f"{name}: clamp_value must be a finite number > 0, got {clamp_value!r}"
            )
        self.clamp_value = float(clamp_value)
        self._normalize = (
            None
            if self.gauge is GaugePolicy.CANONICAL_DENOMINATOR
            or self.gauge is GaugePolicy.ANGULAR_UNIT_CIRCLE
            else ProjectiveNormalize(self.gauge)
        )

    def finish(
        self, P: torch.Tensor, Q: torch.Tensor, V: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Apply the gauge renormalisation, then the gradient policy."""
        if self._normalize is not None:
            P, Q = self._normalize(P, Q)
        if self.gradient_policy is GradientPolicy.PASSTHROUGH:
            return (P, Q) if V is None else (P, Q, V)
        return apply_gradient_policy(
            P,
            Q,
            V,
            policy=self.gradient_policy,
            tau=self.tau_train,
            clamp_value=self.clamp_value,
        )

    def _policy_repr(self) -> str:
        return (
            f"gradient_policy={self.gradient_policy.value!r}, tau_train={self.tau_train}, "
            f"gauge={self.gauge.value!r}"
        )
