"""Projective training losses (seed names; see ``docs/losses.md``).

``implicit_loss`` is also importable from :mod:`zpml_runtime.losses.implicit`
(seed path ``zeroproofml.losses.implicit.implicit_loss``).
"""

from __future__ import annotations

from .combined import SCMTrainingLoss
from .config import LossConfig
from .coverage import coverage, rejection_loss, soft_coverage_loss
from .implicit import cross_product_loss, implicit_loss, implicit_residual, relative_weight
from .terms import censored_loss, margin_loss, sign_consistency_loss

__all__ = [
    "LossConfig",
    "SCMTrainingLoss",
    "censored_loss",
    "coverage",
    "cross_product_loss",
    "implicit_loss",
    "implicit_residual",
    "margin_loss",
    "rejection_loss",
    "relative_weight",
    "sign_consistency_loss",
    "soft_coverage_loss",
]
