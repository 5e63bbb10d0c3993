"""ONNX bundles: export, validation, onnxruntime loading, smoke test, report."""

from zpml_runtime.bundle.errors import (
    BundleBusyError,
    BundleError,
    BundleMetadataError,
    BundlePathError,
    BundleSmokeTestError,
    BundleValidationError,
    InputBoxError,
    NotARegularFileError,
    NotNpyFileError,
    NpyContentError,
    SigningKeyFileError,
    UnverifiedBundleWarning,
    UserFileError,
)
from zpml_runtime.bundle.export import ExportedBundle, export_bundle
from zpml_runtime.bundle.runtime import (
    BundleResult,
    OnnxRuntimeBundle,
    SmokeTestReport,
    load_onnx_runtime_bundle,
    run_bundle_reference_smoke_test,
)
from zpml_runtime.bundle.validate import ValidatedBundle, validate_bundle

__all__ = [
    "BundleBusyError",
    "BundleError",
    "BundleMetadataError",
    "BundlePathError",
    "BundleResult",
    "BundleSmokeTestError",
    "BundleValidationError",
    "ExportedBundle",
    "InputBoxError",
    "NotARegularFileError",
    "NotNpyFileError",
    "NpyContentError",
    "OnnxRuntimeBundle",
    "SigningKeyFileError",
    "SmokeTestReport",
    "UnverifiedBundleWarning",
    "UserFileError",
    "ValidatedBundle",
    "export_bundle",
    "load_onnx_runtime_bundle",
    "run_bundle_reference_smoke_test",
    "validate_bundle",
]
