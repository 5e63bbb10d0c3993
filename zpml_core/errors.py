"""The one error base shared by every zpml package, and the errors of the core layer.

``ZeroProofError`` is the base of every error a user can trigger anywhere in
``zpml_core``, ``zpml_symbolic`` and ``zpml_runtime``, so ``except
zpml_symbolic.ZeroProofError`` catches compiler and runtime errors alike.
Every concrete error also derives from the builtin a caller would naturally
catch (``ValueError`` for bad values, ``TypeError`` for bad types).
"""

from __future__ import annotations

__all__ = [
    "InvalidConfigError",
    "ShapeMismatchError",
    "ThresholdUnderflowError",
    "UnsupportedInputError",
    "ZeroProofError",
    "ZeroProofRuntimeError",
]


class ZeroProofError(Exception):
    """Base class of every error raised by zpml (core, compiler and runtime)."""


class ZeroProofRuntimeError(ZeroProofError):
    """Base class of the errors raised at evaluation/deployment time (core and ``zpml_runtime``)."""


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
