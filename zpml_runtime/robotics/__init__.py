"""Planar-arm differential IK: kinematics, data, models and the steps of the reference deployment.

* :mod:`~zpml_runtime.robotics.arm`, :mod:`~zpml_runtime.robotics.arm3`: the 2-link
  (position) and 3-link (position + orientation) arms, DLS fallback;
* :mod:`~zpml_runtime.robotics.dataset`: seeded data sets stratified by ``|det J|``;
* :mod:`~zpml_runtime.robotics.generic`: the generic rational head fitted from data,
  :mod:`~zpml_runtime.robotics.singular_set`: its singular set, exactly;
* :mod:`~zpml_runtime.robotics.training` (the symbolic template),
  :mod:`~zpml_runtime.robotics.baselines` (plain MLP);
* :mod:`~zpml_runtime.robotics.calibration`, :mod:`~zpml_runtime.robotics.deploy`,
  :mod:`~zpml_runtime.robotics.compare`, :mod:`~zpml_runtime.robotics.artifacts`,
  :mod:`~zpml_runtime.robotics.contract`: the remaining steps;
  :mod:`~zpml_runtime.robotics.fit_step` fits the models of a run and
  :mod:`~zpml_runtime.robotics.run_records` builds its summary and audit records;
  :mod:`~zpml_runtime.robotics.pipeline` runs the steps (:mod:`zpml_runtime.reference_robotics_deployment`).
"""

from zpml_runtime.robotics.arm import DLS_TEMPLATES, IK_TEMPLATES, DLSSolver, IKArm, PlanarArm
from zpml_runtime.robotics.arm3 import PlanarArm3
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
    "IKArm",
    "IKDataset",
    "IKDatasetConfig",
    "IK_TEMPLATES",
    "PlanarArm",
    "PlanarArm3",
    "bucket_of",
    "generate_ik_dataset",
]
