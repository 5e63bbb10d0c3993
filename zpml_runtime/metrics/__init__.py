"""Calibration metrics (``zeroproofml.metrics`` in the seeds)."""

from __future__ import annotations

from .certified import CertifiedTauCeiling, FactorCeiling, certified_tau_ceiling
from .tau_sweep import (
    TauInferSweep,
    TauRecommendation,
    recommend_tau_infer,
    tau_infer_sweep_from_q_abs,
    write_tau_infer_sweep,
)

__all__ = [
    "CertifiedTauCeiling",
    "FactorCeiling",
    "TauInferSweep",
    "TauRecommendation",
    "certified_tau_ceiling",
    "recommend_tau_infer",
    "tau_infer_sweep_from_q_abs",
    "write_tau_infer_sweep",
]
