"""Settings and result paths of the reference robotics deployment."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Literal

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.robotics.arm import IKArm, PlanarArm
from zpml_runtime.robotics.arm3 import PlanarArm3

__all__ = [
    "BUNDLE_ID",
    "DEFAULT_OUTPUT_DIR",
    "SCENARIOS",
    "VARIANTS",
    "ReferenceRoboticsArtifacts",
    "ReferenceRoboticsDeploymentConfig",
]

DEFAULT_OUTPUT_DIR = "results/reference_deploy_robotics"
BUNDLE_ID = "robotics_rr_ik_v1"
#: ``"2link"``: planar 2-link arm, position task; ``"3link"``: planar 3-link arm, position + orientation
SCENARIOS: tuple[str, ...] = ("2link", "3link")
#: ``"generic"``: rational head on the angle features fitted from data; ``"template"``: the 2-link
#: inverse-Jacobian formula with learnable link lengths ("known physics")
VARIANTS: tuple[str, ...] = ("generic", "template")


def _check_int(name: str, v: Any, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InvalidConfigError(
            f"ReferenceRoboticsDeploymentConfig.{name} must be an integer >= {minimum}, got {v!r}"
        )


@dataclasses.dataclass(frozen=True)
class ReferenceRoboticsDeploymentConfig:
    """Settings of one reference run (defaults: the documented ``--epochs 2 --n-samples 6000``)."""

    device: str = "cpu"
    #: Adam epochs of the symbolic template (deployed with ``variant="template"``, else compared)
    epochs: int = 2
    n_samples: int = 6000
    seed: int = 0
    output_dir: str | os.PathLike[str] = DEFAULT_OUTPUT_DIR
    overwrite: bool = False
    scenario: Literal["2link", "3link"] = "2link"
    #: ``"inverse"``: exact inverse-Jacobian labels (bottom at det J = 0); ``"dls"``: damped least squares
    label_mode: Literal["inverse", "dls"] = "inverse"
    #: the deployed model: ``"generic"`` (default) or ``"template"`` (2-link only)
    variant: Literal["generic", "template"] = "generic"
    batch_size: int = 32
    #: the template's Adam learning rate (cosine-decayed to 0); ``None``: 0.1 with inverse labels,
    #: 0.01 with DLS labels (that template is more nonlinear in its coefficients)
    learning_rate: float | None = None
    #: width of the plain-MLP baseline
    hidden: int = 64
    #: L-BFGS iterations of the plain-MLP baseline (0 leaves it out)
    baseline_iterations: int = 500
    exact_singular_share: float = 0.02
    near_singular_share: float = 0.2
    damping: float = 1e-2
    max_unsafe_accept_rate: float = 0.0
    accuracy_tolerance: float = 1e-2
    gap_tolerance: float = 1e-3
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "n_samples", "batch_size", "hidden"):
            _check_int(name, getattr(self, name), 1)
        _check_int("baseline_iterations", self.baseline_iterations, 0)
        _check_int("seed", self.seed, 0)
        if self.scenario not in SCENARIOS:
            raise InvalidConfigError(
                f"scenario must be one of {list(SCENARIOS)}, got {self.scenario!r}"
            )
        if self.label_mode not in ("inverse", "dls"):
            raise InvalidConfigError(
                f"label_mode must be 'inverse' or 'dls', got {self.label_mode!r}"
            )
        if self.variant not in VARIANTS:
            raise InvalidConfigError(
                f"variant must be one of {list(VARIANTS)}, got {self.variant!r}"
            )
        if self.variant == "template" and self.scenario != "2link":
            raise InvalidConfigError(
                f"variant 'template' is the 2-link inverse-Jacobian formula; scenario {self.scenario!r} "
                "needs variant 'generic'"
            )
        if not isinstance(self.device, str) or (
            self.device != "cpu" and not self.device.startswith("cuda")
        ):
            raise InvalidConfigError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        lr = self.learning_rate
        if lr is not None and (
            isinstance(lr, bool)
            or not isinstance(lr, int | float)
            or not math.isfinite(lr)
            or lr <= 0
        ):
            raise InvalidConfigError(
                f"learning_rate must be a finite number > 0 or None, got {lr!r}"
            )

    @property
    def effective_learning_rate(self) -> float:
        """``learning_rate``, or the label mode's default when it is ``None``."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 0.1 if self.label_mode == "inverse" else 0.01

    @property
    def has_template(self) -> bool:
        """The symbolic template exists for this scenario (2-link only)."""
        return self.scenario == "2link"

    def make_arm(self) -> IKArm:
        """The scenario's arm with its default (unequal) link lengths."""
        return PlanarArm() if self.scenario == "2link" else PlanarArm3()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (paths as strings)."""
        d = dataclasses.asdict(self)
        d["output_dir"] = str(self.output_dir)
        return d


@dataclasses.dataclass(frozen=True)
class ReferenceRoboticsArtifacts:
    """Paths of everything a run wrote, plus its headline numbers."""

    output_dir: Path
    bundle_dir: Path
    bundle_model_path: Path
    inference_summary_path: Path
    strict_inference_audit_path: Path
    output_contract_path: Path
    validation_report_paths: tuple[Path, ...]
    training_log_path: Path
    loss_curve_path: Path
    events_path: Path
    calibration_dir: Path
    summary: dict[str, Any]
