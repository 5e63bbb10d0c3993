"""Typed errors of the trainer (all subclass :class:`~zpml_runtime.errors.ZeroProofRuntimeError`).

Configuration mistakes raise :class:`~zpml_runtime.errors.InvalidConfigError`
and target/output shape mismatches :class:`~zpml_runtime.errors.ShapeMismatchError`
(both from :mod:`zpml_runtime.errors`); the classes here cover what only a
training run can detect.
"""

from __future__ import annotations

from ..errors import InvalidConfigError, UnsupportedInputError, ZeroProofRuntimeError

__all__ = [
    "BottomUnreachableError",
    "CheckpointMismatchError",
    "HeadFitError",
    "InvalidTargetError",
    "LossValueError",
    "TrainingError",
    "UnknownConfigFieldError",
]


class TrainingError(ZeroProofRuntimeError):
    """Base class of the errors a training run raises."""


class LossValueError(TrainingError, ValueError):
    """The loss returned a non-scalar or non-finite value (names the epoch and step)."""


class BottomUnreachableError(TrainingError, ValueError):
    """Targets with ``Y_d = 0`` (bottom, +-inf) but a layer whose ``Q`` can never be 0."""


class CheckpointMismatchError(TrainingError, InvalidConfigError):
    """A checkpoint was written under a different training configuration (config hash differs)."""


class UnknownConfigFieldError(InvalidConfigError, TypeError):
    """``TrainingConfig`` got a keyword it does not know (typo) or a positional argument."""


class InvalidTargetError(ZeroProofRuntimeError, ValueError):
    """A target value contradicts its status label, or a label is unknown."""


class HeadFitError(TrainingError, UnsupportedInputError):
    """The model has no head :func:`fit_head` can fit (or the named one does not produce the outputs)."""
