"""Planar-arm differential IK: kinematics, DLS fallback and stratified data sets.

The building blocks of :mod:`zpml_runtime.reference_robotics_deployment`.
"""

from zpml_runtime.robotics.arm import DLS_TEMPLATES, IK_TEMPLATES, DLSSolver, PlanarArm
from zpml_runtime.robotics.dataset import (
    BUCKET_EDGES,
    BUCKET_LABELS,
    IKDataset,
    IKDatasetConfig,
    bucket_of,
    generate_ik_dataset,
)

__all__ = [
    "BUCKET_EDGES",
    "BUCKET_LABELS",
    "DLSSolver",
    "DLS_TEMPLATES",
    "IKDataset",
    "IKDatasetConfig",
    "IK_TEMPLATES",
    "PlanarArm",
    "bucket_of",
    "generate_ik_dataset",
]
