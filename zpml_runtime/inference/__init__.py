"""Strict inference: config, strict decode, eval wrapper, fallbacks and monitoring.

Names follow the seed documents (``zeroproofml.inference``); see ``docs/inference.md``.
"""

from __future__ import annotations

from zpml_core._lazy import lazy_exports
from zpml_core.config import InferenceConfig
from zpml_core.result import PROVENANCE_CODES, STRICT_OUTPUT_NAMES, StrictInferenceResult
from zpml_core.strict import numerical_hazard_mask, strict_inference

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
from .wrapper import SCMInferenceWrapper, split_model_outputs

#: Bundle functions live in :mod:`zpml_runtime.bundle`; they are also importable
#: from here (seed call shape ``zeroproofml.inference.export_bundle``), lazily,
#: because the bundle package itself imports this one.
_BUNDLE_NAMES = {
    name: "zpml_runtime.bundle"
    for name in (
        "export_bundle",
        "validate_bundle",
        "load_onnx_runtime_bundle",
        "run_bundle_reference_smoke_test",
    )
}

__getattr__, __dir__ = lazy_exports(__name__, _BUNDLE_NAMES, globals())


__all__ = [
    "CENSOR_ABOVE",
    "CENSOR_BELOW",
    "CENSOR_IN_RANGE",
    "CENSOR_UNKNOWN",
    "PROVENANCE_CODES",
    "STRICT_OUTPUT_NAMES",
    "InferenceConfig",
    "SCMInferenceWrapper",
    "StrictInferenceMonitor",
    "StrictInferenceResult",
    "decode_strict_censored_3way",
    "export_bundle",
    "fill_bottom_with_sentinel",
    "load_onnx_runtime_bundle",
    "numerical_hazard_mask",
    "reject_on_bottom",
    "reject_on_gap",
    "route_to_analytic_solver",
    "run_bundle_reference_smoke_test",
    "split_model_outputs",
    "strict_inference",
    "validate_bundle",
]
