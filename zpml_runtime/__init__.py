"""zpml_runtime: strict inference, deployment, calibration and monitoring.

Subpackages: :mod:`zpml_runtime.inference` (strict decoding, wrapper,
fallbacks, monitor), :mod:`zpml_runtime.bundle` (ONNX bundles and their
report), :mod:`zpml_runtime.metrics` (tau calibration),
:mod:`zpml_runtime.projective` (gauge policies), :mod:`zpml_runtime.logging`
(JSONL events) and the ``zpml`` command (:mod:`zpml_runtime.cli`).
"""

from zpml_core.version import __version__

__all__ = ["__version__"]
