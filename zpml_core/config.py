"""``InferenceConfig``: the frozen thresholds of strict inference."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

from .errors import InvalidConfigError
from .resolution import check_order, effective_pair
from .thresholds import to_threshold

__all__ = ["InferenceConfig", "check_threshold"]

PROVENANCE_MODES: tuple[str, ...] = ("stable", "experimental")
PROVENANCE_REPRESENTATIONS: tuple[str, ...] = ("split_masks", "bottom_provenance", "both")


def check_threshold(value: Any, field: str) -> float:
    """Validate a threshold and return the smallest float64 ``>= value`` (exactly).

    Accepts ints, floats, ``Fraction``, ``Decimal``, numpy scalars (``longdouble``
    included) and decimal strings; see :func:`zpml_core.thresholds.to_threshold`.
    Raises :class:`InvalidConfigError` for bad values and
    :class:`~zpml_core.errors.ThresholdUnderflowError` for a positive value that
    float64 cannot hold (it is never silently turned into ``0.0``).
    """
    return to_threshold(value, field)


@dataclasses.dataclass(frozen=True, kw_only=True)
class InferenceConfig:
    """Thresholds and provenance options of strict inference.

    Attributes:
        tau_infer: bottom threshold: finite ``Q`` with ``|Q| < tau_infer`` (or ``Q == 0``)
            is a semantic bottom. ``0.0`` means exact zeros only. Exact zeros are
            bottom for every value: no setting fails open. Any exact real value is
            accepted (``Fraction``, ``Decimal``, ``numpy.longdouble``, decimal strings)
            and stored as the smallest float64 ``>= tau_infer`` (rounded up, never to
            nearest); a positive value below ``2**-1074`` raises
            :class:`~zpml_core.errors.ThresholdUnderflowError`.
        tau_train: optional training threshold ``>= tau_infer``; finite, non-bottom
            samples with ``tau_infer <= |Q| < tau_train`` are flagged in ``gap_mask``.
            ``None`` disables the gap mask (all ``False``).
        provenance: ``"stable"`` (default) or ``"experimental"`` (accepted for
            seed v0.5.1 compatibility). Both give identical eager results: every
            result carries ``fault_mask``, ``semantic_bottom_mask`` and
            ``bottom_provenance``.
        provenance_representation: ``"split_masks"`` (default), ``"bottom_provenance"``
            or ``"both"``: which representation exported artifacts and reports
            declare. It is metadata; eager results always carry both.
        numerical_hazard_threshold: optional, monitor-only: finite denominators with
            ``|Q|`` below it are counted as numerical hazards by the monitor. It
            never changes ``bottom_mask`` or ``fault_mask``.
        provenance_fault_threshold: deprecated alias of ``numerical_hazard_threshold``
            (emits ``DeprecationWarning``; never classifies ``fault_mask``).

    A positive threshold below the smallest positive value of the evaluation
    dtype raises :class:`~zpml_core.errors.ThresholdUnderflowError` when it is
    applied (see :meth:`thresholds_for`).
    """

    tau_infer: float
    tau_train: float | None = None
    provenance: str = "stable"
    provenance_representation: str = "split_masks"
    numerical_hazard_threshold: float | None = None
    provenance_fault_threshold: dataclasses.InitVar[float | None] = None

    def __post_init__(self, provenance_fault_threshold: float | None) -> None:
        set_ = object.__setattr__
        set_(self, "tau_infer", check_threshold(self.tau_infer, "tau_infer"))
        if self.tau_train is not None:
            tau_train = check_threshold(self.tau_train, "tau_train")
            check_order(self.tau_infer, tau_train)
            set_(self, "tau_train", tau_train)
        if self.provenance not in PROVENANCE_MODES:
            raise InvalidConfigError(
                f"provenance={self.provenance!r} is not one of {PROVENANCE_MODES}"
            )
        if self.provenance_representation not in PROVENANCE_REPRESENTATIONS:
            raise InvalidConfigError(
                f"provenance_representation={self.provenance_representation!r} is not one of "
                f"{PROVENANCE_REPRESENTATIONS}"
            )
        hazard = self.numerical_hazard_threshold
        if provenance_fault_threshold is not None:
            warnings.warn(
                "InferenceConfig(provenance_fault_threshold=...) is deprecated; use "
                "numerical_hazard_threshold (monitor-only, never classifies fault_mask)",
                DeprecationWarning,
                stacklevel=3,
            )
            alias = check_threshold(provenance_fault_threshold, "provenance_fault_threshold")
            if (
                hazard is not None
                and check_threshold(hazard, "numerical_hazard_threshold") != alias
            ):
                raise InvalidConfigError(
                    "numerical_hazard_threshold and its deprecated alias provenance_fault_threshold "
                    f"disagree ({hazard!r} vs {alias!r}); pass only numerical_hazard_threshold"
                )
            hazard = alias
        if hazard is not None:
            hazard = check_threshold(hazard, "numerical_hazard_threshold")
        set_(self, "numerical_hazard_threshold", hazard)

    def thresholds_for(self, dtype: str) -> tuple[float, float | None]:
        """Exact comparison thresholds ``(t_infer, t_train)`` for a float dtype name.

        ``|Q| < t_infer`` evaluated in ``dtype`` equals the real comparison
        ``|Q| < tau_infer`` (``Q == 0`` when ``tau_infer == 0``); ``t_train`` likewise,
        never below ``t_infer``. Raises ``ThresholdUnderflowError`` for a positive
        threshold that ``dtype`` cannot represent.
        """
        return effective_pair(self.tau_infer, self.tau_train, dtype)

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready dictionary of the configuration (for bundle metadata and logs)."""
        return {
            "tau_infer": self.tau_infer,
            "tau_train": self.tau_train,
            "provenance": self.provenance,
            "provenance_representation": self.provenance_representation,
            "numerical_hazard_threshold": self.numerical_hazard_threshold,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> InferenceConfig:
        """Rebuild a config from :meth:`to_metadata` output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(metadata) - known)
        if unknown:
            raise InvalidConfigError(
                f"unknown InferenceConfig metadata keys {unknown}; expected a subset of {sorted(known)}"
            )
        if "tau_infer" not in metadata:
            raise InvalidConfigError(
                "InferenceConfig metadata is missing the required key 'tau_infer'"
            )
        return cls(**dict(metadata))
