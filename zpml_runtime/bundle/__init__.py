"""ONNX bundles: export, validation, onnxruntime loading, smoke test, report."""

from zpml_runtime.bundle.export import ExportedBundle, export_bundle
from zpml_runtime.bundle.format import BundleError, BundleSmokeTestError, BundleValidationError
from zpml_runtime.bundle.runtime import (
    BundleResult,
    OnnxRuntimeBundle,
    SmokeTestReport,
    load_onnx_runtime_bundle,
    run_bundle_reference_smoke_test,
)
from zpml_runtime.bundle.validate import ValidatedBundle, validate_bundle
from zpml_runtime.bundle.verify import UnverifiedBundleWarning

__all__ = [
    "BundleError",
    "BundleResult",
    "BundleSmokeTestError",
    "BundleValidationError",
    "ExportedBundle",
    "OnnxRuntimeBundle",
    "SmokeTestReport",
    "UnverifiedBundleWarning",
    "ValidatedBundle",
    "export_bundle",
    "load_onnx_runtime_bundle",
    "run_bundle_reference_smoke_test",
    "validate_bundle",
]
