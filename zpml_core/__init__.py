"""zpml_core: the contract at the bottom, shared by the compiler and the runtime.

What "bottom" means is decided here and only here (``docs/semantics.md``
section 3): thresholds and the dtype table (:mod:`zpml_core.arrays`),
:class:`InferenceConfig`, the strict output names and provenance codes
(:mod:`zpml_core.result`), the decode kernels (:mod:`zpml_core.kernels`),
:func:`strict_inference` and the one error base :class:`ZeroProofError`.
Layering: ``zpml_core`` <- ``zpml_symbolic`` <- ``zpml_runtime``; this package
imports neither of the other two.
"""

from typing import TYPE_CHECKING

from zpml_core._lazy import lazy_exports
from zpml_core.errors import (
    InvalidConfigError,
    ShapeMismatchError,
    ThresholdUnderflowError,
    UnsupportedInputError,
    ZeroProofError,
    ZeroProofRuntimeError,
)
from zpml_core.version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from zpml_core.config import InferenceConfig, check_threshold
    from zpml_core.outputs import PROVENANCE_CODES, STRICT_OUTPUT_NAMES
    from zpml_core.resolution import EffectiveThresholds, ResolvedThresholds, resolve_thresholds
    from zpml_core.result import StrictInferenceResult
    from zpml_core.strict import numerical_hazard_mask, strict_inference

#: names imported on first use: they need numpy/torch, the error classes do not
#: (so ``zpml_symbolic``'s front end can share the error base without importing torch).
_LAZY = {
    "InferenceConfig": "zpml_core.config",
    "check_threshold": "zpml_core.config",
    "PROVENANCE_CODES": "zpml_core.outputs",
    "STRICT_OUTPUT_NAMES": "zpml_core.outputs",
    "EffectiveThresholds": "zpml_core.resolution",
    "ResolvedThresholds": "zpml_core.resolution",
    "resolve_thresholds": "zpml_core.resolution",
    "StrictInferenceResult": "zpml_core.result",
    "numerical_hazard_mask": "zpml_core.strict",
    "strict_inference": "zpml_core.strict",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "PROVENANCE_CODES",
    "__version__",
    "STRICT_OUTPUT_NAMES",
    "EffectiveThresholds",
    "InferenceConfig",
    "InvalidConfigError",
    "ResolvedThresholds",
    "ShapeMismatchError",
    "StrictInferenceResult",
    "ThresholdUnderflowError",
    "UnsupportedInputError",
    "ZeroProofError",
    "ZeroProofRuntimeError",
    "check_threshold",
    "numerical_hazard_mask",
    "resolve_thresholds",
    "strict_inference",
]
