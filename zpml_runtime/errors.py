"""Typed errors raised by :mod:`zpml_runtime`.

Every error derives from :class:`ZeroProofRuntimeError` and also from the
builtin a caller would naturally catch (``ValueError`` for bad values,
``TypeError`` for bad types), so ``except ValueError`` keeps working.
Messages say what failed, which argument or field is the culprit, and how to
fix it.
"""

from __future__ import annotations

__all__ = [
    "AnalyticSolverError",
    "CalibrationError",
    "InvalidConfigError",
    "ModelOutputError",
    "SentinelCollisionError",
    "ShapeMismatchError",
    "ThresholdUnderflowError",
    "UnsupportedInputError",
    "ZeroProofRuntimeError",
]


class ZeroProofRuntimeError(Exception):
    """Base class of every error raised by ``zpml_runtime``."""


class InvalidConfigError(ZeroProofRuntimeError, ValueError):
    """A configuration value or keyword argument is invalid (non-finite, negative, unknown)."""


class ThresholdUnderflowError(InvalidConfigError):
    """A positive threshold is below the smallest positive value of the evaluation dtype.

    Such a threshold would round to zero (or to the smallest subnormal) and
    silently turn the guard ``|Q| < tau`` into an exact-zero test. It is
    refused instead; use ``0.0`` to ask for exact-zero-only semantics.
    """


class UnsupportedInputError(ZeroProofRuntimeError, TypeError):
    """An input has an unsupported type or dtype (e.g. an integer tensor, a list, mixed backends)."""


class ShapeMismatchError(ZeroProofRuntimeError, ValueError):
    """Input shapes cannot be aligned under the documented broadcasting rules."""


class ModelOutputError(ZeroProofRuntimeError, TypeError):
    """A wrapped model returned something other than ``(P, Q)`` or ``(P, Q, V)``."""


class AnalyticSolverError(ZeroProofRuntimeError, ValueError):
    """An analytic fallback solver returned non-finite values or a wrongly shaped result."""


class SentinelCollisionError(ZeroProofRuntimeError, ValueError):
    """A sentinel value is not representable or collides with an accepted decoded value."""


class CalibrationError(ZeroProofRuntimeError, ValueError):
    """A calibration request cannot be satisfied by the data (e.g. no threshold meets the target)."""
