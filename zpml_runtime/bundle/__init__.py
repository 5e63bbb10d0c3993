"""ONNX bundles: export, validation, onnxruntime loading, smoke test, report."""

from zpml_core._lazy import lazy_exports
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

# the functions load torch and onnx: exported lazily, so that reading a bundle's errors or
# running `zpml inspect` does not pay for them
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ExportedBundle": "zpml_runtime.bundle.export",
        "export_bundle": "zpml_runtime.bundle.export",
        "BundleResult": "zpml_runtime.bundle.runtime",
        "OnnxRuntimeBundle": "zpml_runtime.bundle.runtime",
        "SmokeTestReport": "zpml_runtime.bundle.runtime",
        "load_onnx_runtime_bundle": "zpml_runtime.bundle.runtime",
        "run_bundle_reference_smoke_test": "zpml_runtime.bundle.runtime",
        "ValidatedBundle": "zpml_runtime.bundle.validate",
        "validate_bundle": "zpml_runtime.bundle.validate",
    },
    globals(),
)

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
