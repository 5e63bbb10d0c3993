"""``LossConfig``: the weights and constants of :class:`~zpml_runtime.losses.SCMTrainingLoss`."""

from __future__ import annotations

import dataclasses
import math

from zpml_core.config import check_threshold
from zpml_core.resolution import check_order
from zpml_runtime.errors import InvalidConfigError

__all__ = ["LossConfig"]

_WEIGHTS = ("implicit", "margin", "sign", "rejection", "censored", "validity")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights of each term (``>= 0``; ``0`` switches a term off and skips its work) and constants.

    * ``implicit``: :func:`implicit_loss` on finite and singular (bottom) targets.
    * ``margin``: :func:`margin_loss` with the step's ``tau_train`` on finite targets.
    * ``sign``: :func:`sign_consistency_loss` on oriented singular targets
      (``SemanticTargets.oriented_mask``; plain ``(Y_n, Y_d)`` tuples carry no
      orientation, since ``lift_targets`` maps NaN and ``+inf`` alike).
    * ``rejection``: :func:`soft_coverage_loss` at ``tau_train`` on finite targets.
    * ``censored``: :func:`censored_loss` on censored targets.
    * ``validity``: hinge ``relu(tau_train - |V|)**2`` on the validity factors of
      rows with finite targets (acts only when ``V`` has learnable parameters).
    * ``gamma``, ``detach_scale``, ``weighting``, ``weight_cap``, ``weight_power``: passed to
      :func:`implicit_loss` (``weighting="relative"`` weights rows by
      :func:`~zpml_runtime.losses.relative_weight` of their targets).
    * ``target_coverage``, ``temperature``: passed to :func:`soft_coverage_loss`.
    * ``tau_train``: used when the call gives none (the trainer always gives one).
    * ``tau_infer``: if set, a call with ``tau_train < tau_infer`` is refused
      (docs/semantics.md: ``tau_infer <= tau_train``).
    """

    implicit: float = 1.0
    margin: float = 0.1
    sign: float = 0.1
    rejection: float = 0.0
    censored: float = 1.0
    validity: float = 0.1
    gamma: float = 1e-9
    detach_scale: bool = False
    weighting: str = "uniform"
    weight_cap: float = 30.0
    weight_power: float = 1.0
    target_coverage: float = 0.95
    temperature: float = 1.0
    tau_train: float = 1e-4
    tau_infer: float | None = None

    def __post_init__(self) -> None:
        for name in (*_WEIGHTS, "gamma"):
            _nonneg(name, getattr(self, name))
        # thresholds: the one validator of InferenceConfig (exact, rounded up, field named)
        object.__setattr__(
            self, "tau_train", check_threshold(self.tau_train, "LossConfig.tau_train")
        )
        if self.tau_infer is not None:
            object.__setattr__(
                self, "tau_infer", check_threshold(self.tau_infer, "LossConfig.tau_infer")
            )
            check_order(self.tau_infer, self.tau_train, owner="LossConfig: ")
        if not isinstance(self.detach_scale, bool):
            raise InvalidConfigError(
                f"LossConfig.detach_scale must be a bool, got {self.detach_scale!r}"
            )
        if self.weighting not in ("uniform", "relative"):
            raise InvalidConfigError(
                f"LossConfig.weighting must be 'uniform' or 'relative', got {self.weighting!r}"
            )
        _nonneg("weight_cap", self.weight_cap)
        if self.weight_cap < 2:
            raise InvalidConfigError(f"LossConfig.weight_cap must be >= 2, got {self.weight_cap!r}")
        _nonneg("weight_power", self.weight_power)
        if not 0 < self.weight_power <= 2:
            raise InvalidConfigError(
                f"LossConfig.weight_power must be in (0, 2], got {self.weight_power!r}"
            )
        c = self.target_coverage
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0.0 <= c <= 1.0:
            raise InvalidConfigError(f"LossConfig.target_coverage must be in [0, 1], got {c!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise InvalidConfigError(f"LossConfig.temperature must be finite and > 0, got {t!r}")

    def weights(self) -> dict[str, float]:
        """The term weights by name."""
        return {name: float(getattr(self, name)) for name in _WEIGHTS}


def _nonneg(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidConfigError(f"LossConfig.{name} must be a finite number >= 0, got {value!r}")
