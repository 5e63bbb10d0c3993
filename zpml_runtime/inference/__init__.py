"""Strict inference: config, strict decode, eval wrapper, fallbacks and monitoring.

Names follow the seed documents (``zeroproofml.inference``); see ``docs/inference.md``.
"""

from __future__ import annotations

from .config import InferenceConfig
from .fallbacks import (
    CENSOR_ABOVE,
    CENSOR_BELOW,
    CENSOR_IN_RANGE,
    CENSOR_UNKNOWN,
    decode_strict_censored_3way,
    fill_bottom_with_sentinel,
    reject_on_bottom,
    reject_on_gap,
    route_to_analytic_solver,
)
from .monitor import StrictInferenceMonitor
from .result import PROVENANCE_CODES, StrictInferenceResult
from .strict import numerical_hazard_mask, strict_inference
from .wrapper import SCMInferenceWrapper, split_model_outputs

__all__ = [
    "CENSOR_ABOVE",
    "CENSOR_BELOW",
    "CENSOR_IN_RANGE",
    "CENSOR_UNKNOWN",
    "PROVENANCE_CODES",
    "InferenceConfig",
    "SCMInferenceWrapper",
    "StrictInferenceMonitor",
    "StrictInferenceResult",
    "decode_strict_censored_3way",
    "fill_bottom_with_sentinel",
    "numerical_hazard_mask",
    "reject_on_bottom",
    "reject_on_gap",
    "route_to_analytic_solver",
    "split_model_outputs",
    "strict_inference",
]
