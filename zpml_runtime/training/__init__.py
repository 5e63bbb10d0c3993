"""Training: targets, ``SCMTrainer`` and ``TrainingConfig`` (see ``docs/training.md``).

Seed names (``zeroproofml.training``): ``SCMTrainer``, ``TrainingConfig`` and
``targets.lift_targets`` / ``targets.lift_semantic_targets``. ``GradientPolicy``
is re-exported from :mod:`zpml_runtime.layers`.
"""

from __future__ import annotations

from ..layers.gradient_policy import GradientPolicy
from . import targets
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .config import HASHED_FIELDS, HEAD_FIT_FIELDS, TrainingConfig, UnknownConfigFieldError
from .errors import BottomUnreachableError, CheckpointMismatchError, LossValueError, TrainingError
from .head_fit import HeadFitError, HeadFitResult, find_head, fit_head
from .targets import SemanticTargets, lift_semantic_targets, lift_targets
from .trainer import SCMTrainer

__all__ = [
    "CHECKPOINT_FORMAT",
    "HASHED_FIELDS",
    "HEAD_FIT_FIELDS",
    "BottomUnreachableError",
    "CheckpointMismatchError",
    "GradientPolicy",
    "HeadFitError",
    "HeadFitResult",
    "LossValueError",
    "SCMTrainer",
    "SemanticTargets",
    "TrainingConfig",
    "TrainingError",
    "UnknownConfigFieldError",
    "find_head",
    "fit_head",
    "lift_semantic_targets",
    "lift_targets",
    "load_checkpoint",
    "save_checkpoint",
    "targets",
]
