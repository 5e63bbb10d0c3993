"""The reference robotics deployment: fit/train -> calibrate -> bundle -> strict inference -> fallback -> report.

Differential IK of a planar arm (:mod:`zpml_runtime.robotics`) whose inverse
Jacobian has a real singularity (``det J = l1*l2*sin(theta2) = 0``). The steps
live in :mod:`zpml_runtime.robotics` (``pipeline``, ``generic``, ``training``,
``calibration``, ``deploy``, ``compare``, ``artifacts``, ``cli``); this module is
the documented entry point. Run it as::

    python -m zpml_runtime.reference_robotics_deployment --device cpu --epochs 2 --n-samples 6000
    python scripts/reference_robotics_deployment.py --device cpu --epochs 2 --n-samples 6000

or from Python::

    from zpml_runtime.reference_robotics_deployment import (
        ReferenceRoboticsDeploymentConfig, run_reference_robotics_deployment)
    artifacts = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(device="cpu", epochs=2, n_samples=6000))
    print(artifacts.bundle_model_path)

Every artifact is listed with its sha256 in ``output_contract.json``;
:func:`load_reference_robotics_artifacts` verifies them before reading. See
``docs/robotics.md``.
"""

from __future__ import annotations

from zpml_runtime.robotics.artifacts import load_reference_robotics_artifacts
from zpml_runtime.robotics.cli import main
from zpml_runtime.robotics.config import (
    BUNDLE_ID,
    DEFAULT_OUTPUT_DIR,
    ReferenceRoboticsArtifacts,
    ReferenceRoboticsDeploymentConfig,
)
from zpml_runtime.robotics.deploy import SMOKE_RTOL
from zpml_runtime.robotics.pipeline import run_reference_robotics_deployment
from zpml_runtime.robotics.training import dls_training_loss, ik_training_loss

__all__ = [
    "BUNDLE_ID",
    "DEFAULT_OUTPUT_DIR",
    "SMOKE_RTOL",
    "ReferenceRoboticsArtifacts",
    "ReferenceRoboticsDeploymentConfig",
    "dls_training_loss",
    "ik_training_loss",
    "load_reference_robotics_artifacts",
    "main",
    "run_reference_robotics_deployment",
]

if __name__ == "__main__":
    raise SystemExit(main())
