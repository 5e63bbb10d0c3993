"""Choosing ``tau_infer`` and ``tau_train`` for the IK model by a stated rule.

Rule (never "a quantile of |Q|"): on the near-singular rows of the held-out
calibration split (``|det J| < 1e-2``), a row is *unsafe to accept* when its
label is bottom (an exact singularity) or the model's decoded prediction there
is off by more than ``accuracy_tolerance`` (relative error). ``tau_infer`` is
the **smallest** swept threshold whose unsafe-accept rate is
``<= max_unsafe_accept_rate``; ``tau_train`` (the edge of the gap region) is
the smallest swept threshold that meets the same target with the stricter
tolerance ``gap_tolerance``. When no swept threshold meets the target, the
smallest one with the lowest unsafe-accept rate is taken and
``target_met`` says so (the summary reports it). Both are read off
:func:`~zpml_runtime.metrics.tau_infer_sweep_from_q_abs` curves, which are
written next to the other artifacts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from zpml_runtime.errors import CalibrationError, InvalidConfigError
from zpml_runtime.metrics import tau_infer_sweep_from_q_abs
from zpml_runtime.metrics.tau_sweep import TauInferSweep

__all__ = ["DEFAULT_TAUS", "TauChoice", "calibrate_model", "choose_thresholds"]

#: candidate thresholds: 0 and half-decades from 1e-16 to 1e-1
DEFAULT_TAUS: tuple[float, ...] = (0.0,) + tuple(
    float(f"{m}e{e}") for e in range(-16, 0) for m in (1, 3)
)


@dataclasses.dataclass(frozen=True)
class TauChoice:
    """The chosen thresholds, the rule's inputs and the sweeps they were read from."""

    tau_infer: float
    tau_train: float
    rule: str
    max_unsafe_accept_rate: float
    accuracy_tolerance: float
    gap_tolerance: float
    infer_sweep: TauInferSweep
    train_sweep: TauInferSweep
    target_met: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the sweeps as their own ``to_dict``)."""
        return {
            "tau_infer": self.tau_infer,
            "tau_train": self.tau_train,
            "rule": self.rule,
            "max_unsafe_accept_rate": self.max_unsafe_accept_rate,
            "accuracy_tolerance": self.accuracy_tolerance,
            "gap_tolerance": self.gap_tolerance,
            "target_met": self.target_met,
            "infer_sweep": self.infer_sweep.to_dict(),
            "train_sweep": self.train_sweep.to_dict(),
        }


def _smallest_meeting(curves: TauInferSweep, target: float) -> tuple[float, bool]:
    rates = [1.0 if r is None else r for r in curves.unsafe_accept_rate]
    for tau, rate, raw in zip(curves.taus, rates, curves.unsafe_accept_rate, strict=True):
        if raw is None or rate <= target:
            return tau, True
    best = min(rates)
    return curves.taus[rates.index(best)], False


def choose_thresholds(
    q_abs: np.ndarray,
    rel_err: np.ndarray,
    label_bottom: np.ndarray,
    near_singular: np.ndarray,
    *,
    max_unsafe_accept_rate: float = 0.0,
    accuracy_tolerance: float = 1e-2,
    gap_tolerance: float = 1e-3,
    taus: tuple[float, ...] = DEFAULT_TAUS,
) -> TauChoice:
    """Apply the rule of the module docstring to held-out ``|Q|`` (per row: the min over outputs).

    ``rel_err`` is the decoded prediction's relative error per row (NaN/Inf where
    the model does not give a finite value), ``label_bottom`` the rows labelled
    bottom and ``near_singular`` the rows the rule is measured on.
    """
    for name, v in (
        ("max_unsafe_accept_rate", max_unsafe_accept_rate),
        ("accuracy_tolerance", accuracy_tolerance),
        ("gap_tolerance", gap_tolerance),
    ):
        if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise InvalidConfigError(f"{name} must be a finite number >= 0, got {v!r}")
    if gap_tolerance > accuracy_tolerance:
        raise InvalidConfigError(
            f"gap_tolerance ({gap_tolerance}) must not exceed accuracy_tolerance ({accuracy_tolerance})"
        )
    near = np.asarray(near_singular, dtype=bool)
    if not near.any():
        raise CalibrationError(
            "no near-singular rows in the calibration split: nothing to calibrate on"
        )
    q = np.asarray(q_abs, dtype=np.float64)[near]
    err = np.asarray(rel_err, dtype=np.float64)[near]
    bottom = np.asarray(label_bottom, dtype=bool)[near]
    with np.errstate(invalid="ignore"):
        safe_infer = ~bottom & (err <= accuracy_tolerance)
        safe_train = ~bottom & (err <= gap_tolerance)
    infer = tau_infer_sweep_from_q_abs(q_abs=q, is_in_range=safe_infer, taus=list(taus))
    train = tau_infer_sweep_from_q_abs(q_abs=q, is_in_range=safe_train, taus=list(taus))
    tau_infer, met_infer = _smallest_meeting(infer, max_unsafe_accept_rate)
    tau_gap, met_train = _smallest_meeting(train, max_unsafe_accept_rate)
    tau_train = max(tau_infer, tau_gap)
    rule = (
        f"tau_infer: smallest swept tau with unsafe-accept rate <= {max_unsafe_accept_rate} on the "
        f"near-singular (|det J| < 1e-2) rows of the calibration split, unsafe = bottom label or relative error > {accuracy_tolerance}; "
        f"tau_train: the same with relative error > {gap_tolerance} (never below tau_infer)"
    )
    return TauChoice(
        tau_infer=tau_infer,
        tau_train=tau_train,
        rule=rule,
        max_unsafe_accept_rate=float(max_unsafe_accept_rate),
        accuracy_tolerance=float(accuracy_tolerance),
        gap_tolerance=float(gap_tolerance),
        infer_sweep=infer,
        train_sweep=train,
        target_met=met_infer and met_train,
    )


def calibrate_model(model: Any, calib: Any, **rule: Any) -> TauChoice:
    """:func:`choose_thresholds` for a ``(P, Q, ...)`` model on an :class:`~zpml_runtime.robotics.IKDataset` split.

    ``|Q|`` per row is the minimum over the outputs; ``rule`` are the keyword
    arguments of :func:`choose_thresholds`.
    """
    import torch

    from zpml_runtime.robotics.evaluation import prediction_errors

    with torch.no_grad():
        P, Q, *_ = model(torch.as_tensor(calib.inputs, dtype=torch.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            pred = (P / Q).cpu().numpy()
        q_abs = Q.abs().reshape(Q.shape[0], -1).amin(dim=1).cpu().numpy()
    _, rel = prediction_errors(pred, calib.targets)
    return choose_thresholds(q_abs, rel, calib.status == 1, calib.bucket < 5, **rule)
