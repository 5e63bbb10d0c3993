"""Typed errors raised by :mod:`zpml_runtime`.

Every error derives from :class:`ZeroProofRuntimeError` (itself a
:class:`zpml_core.errors.ZeroProofError`, the base shared with the compiler) and also from the
builtin a caller would naturally catch (``ValueError`` for bad values,
``TypeError`` for bad types), so ``except ValueError`` keeps working.
Messages say what failed, which argument or field is the culprit, and how to
fix it.
"""

from __future__ import annotations

from zpml_core.errors import (
    InvalidConfigError,
    ShapeMismatchError,
    ThresholdUnderflowError,
    UnsupportedInputError,
    ZeroProofError,
    ZeroProofRuntimeError,
)

__all__ = [
    "AnalyticSolverError",
    "ArtifactIntegrityError",
    "CalibrationError",
    "HallOfFameError",
    "InvalidConfigError",
    "ModelOutputError",
    "SentinelCollisionError",
    "SymbolicRegressionError",
    "TemplateError",
    "ShapeMismatchError",
    "ThresholdUnderflowError",
    "UnsupportedInputError",
    "ZeroProofError",
    "ZeroProofRuntimeError",
]


class ModelOutputError(ZeroProofRuntimeError, TypeError):
    """A wrapped model returned something other than ``(P, Q)`` or ``(P, Q, V)``."""


class AnalyticSolverError(ZeroProofRuntimeError, ValueError):
    """An analytic fallback solver returned non-finite values or a wrongly shaped result."""


class SentinelCollisionError(ZeroProofRuntimeError, ValueError):
    """A sentinel value is not representable or collides with an accepted decoded value."""


class CalibrationError(ZeroProofRuntimeError, ValueError):
    """A calibration request cannot be satisfied by the data (e.g. no threshold meets the target)."""


class TemplateError(InvalidConfigError):
    """The template expression is not rational, or its symbols/parameters are inconsistent."""


class ArtifactIntegrityError(ZeroProofRuntimeError, ValueError):
    """An artifact is missing, was changed after the run, or the contract itself is malformed."""


class SymbolicRegressionError(ZeroProofRuntimeError, ValueError):
    """A symbolic-regression result cannot be used as asked (e.g. an entry that did not compile)."""


class HallOfFameError(SymbolicRegressionError):
    """A hall-of-fame file is unreadable or malformed; the message names the file and line."""
