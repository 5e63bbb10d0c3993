"""Seeded IK data sets for a planar arm (2-link or 3-link), stratified by ``|det J|``.

Buckets (edges ``0, 1e-5, 1e-4, 1e-3, 1e-2, inf``), plus a bucket of its own
for the **exactly** singular rows (``det J == 0`` in floating point, i.e.
``theta2 == 0``; ``theta2 = pi`` is not representable, ``sin(fl(pi)) = 1.2e-16``
lands in the first near-singular bucket). With inverse-Jacobian labels an
exactly singular row is labelled **bottom** (status ``"bottom"``, value NaN),
never a clamped number; with damped-least-squares labels every row is finite.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.robotics.arm import IKArm, PlanarArm

__all__ = [
    "BUCKET_EDGES",
    "BUCKET_LABELS",
    "IKDataset",
    "IKDatasetConfig",
    "bucket_of",
    "generate_ik_dataset",
]

#: ``|det J|`` bucket edges of the issue; bucket 0 is the exact singular set.
BUCKET_EDGES: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, math.inf)
BUCKET_LABELS: tuple[str, ...] = (
    "det=0",
    "(0,1e-5)",
    "[1e-5,1e-4)",
    "[1e-4,1e-3)",
    "[1e-3,1e-2)",
    "[1e-2,inf)",
)
STATUS_FINITE, STATUS_BOTTOM = 0, 1  # the codes of zpml_runtime.training.targets.STATUS_CODES


def bucket_of(det: np.ndarray) -> np.ndarray:
    """Bucket index of each ``det J``: 0 for exact zeros, then 1..5 by the edges."""
    a = np.abs(np.asarray(det, dtype=np.float64))
    idx = np.searchsorted(np.asarray(BUCKET_EDGES[1:-1]), a, side="right") + 1
    return np.where(a == 0, 0, idx).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class IKDatasetConfig:
    """How to draw an IK data set (all shares are fractions of ``n_samples``)."""

    n_samples: int = 6000
    seed: int = 0
    label_mode: Literal["inverse", "dls"] = "inverse"
    #: rows with ``det J == 0`` exactly
    exact_singular_share: float = 0.02
    #: rows with ``0 < |det J| < 1e-2``, spread evenly over the four near-singular buckets
    near_singular_share: float = 0.2
    #: damping of the DLS labels (``label_mode="dls"``) and of the fallback solver
    damping: float = 1e-2
    #: every velocity component is uniform in ``[-velocity_scale, velocity_scale]``
    velocity_scale: float = 1.0
    #: smallest ``|det J|`` of a non-singular row (lower end of the first bucket)
    min_abs_det: float = 1e-9
    #: the arm (:class:`~zpml_runtime.robotics.arm.PlanarArm` or
    #: :class:`~zpml_runtime.robotics.arm3.PlanarArm3`)
    arm: IKArm = dataclasses.field(default_factory=PlanarArm)

    def __post_init__(self) -> None:
        if (
            isinstance(self.n_samples, bool)
            or not isinstance(self.n_samples, int)
            or self.n_samples < 10
        ):
            raise InvalidConfigError(f"n_samples must be an integer >= 10, got {self.n_samples!r}")
        if self.label_mode not in ("inverse", "dls"):
            raise InvalidConfigError(
                f"label_mode must be 'inverse' or 'dls', got {self.label_mode!r}"
            )
        for name in ("exact_singular_share", "near_singular_share"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not 0 <= v <= 1:
                raise InvalidConfigError(f"{name} must be in [0, 1], got {v!r}")
        if self.exact_singular_share + self.near_singular_share > 1:
            raise InvalidConfigError(
                "exact_singular_share + near_singular_share must be <= 1, got "
                f"{self.exact_singular_share} + {self.near_singular_share}"
            )
        for name in ("damping", "velocity_scale", "min_abs_det"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise InvalidConfigError(f"{name} must be a finite number > 0, got {v!r}")
        if self.min_abs_det >= BUCKET_EDGES[1]:
            raise InvalidConfigError(
                f"min_abs_det must be below {BUCKET_EDGES[1]}, got {self.min_abs_det}"
            )
        if not isinstance(self.arm, IKArm):
            raise InvalidConfigError(
                f"arm must be a PlanarArm or PlanarArm3, got {type(self.arm).__name__}"
            )


@dataclasses.dataclass(frozen=True)
class IKDataset:
    """Rows of ``inputs (theta_1.., v_1..)``, ``targets (dtheta_1..)`` and labels."""

    inputs: np.ndarray  # [n, joints + task] float64
    targets: np.ndarray  # [n, joints] float64, NaN on bottom rows
    status: np.ndarray  # [n] int64: 0 finite, 1 bottom
    det: np.ndarray  # [n] float64, det J as evaluated in float64
    bucket: np.ndarray  # [n] int64, index into BUCKET_LABELS

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, index: np.ndarray) -> IKDataset:
        """The rows ``index`` (an integer or boolean index array)."""
        return IKDataset(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def split(self, fractions: tuple[float, ...], *, seed: int) -> tuple[IKDataset, ...]:
        """Stratified split (every bucket is split in the same proportions)."""
        if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
            raise InvalidConfigError(f"fractions must be positive and sum to 1, got {fractions!r}")
        rng = np.random.default_rng(seed)
        parts: list[list[np.ndarray]] = [[] for _ in fractions]
        for b in range(len(BUCKET_LABELS)):
            rows = rng.permutation(np.flatnonzero(self.bucket == b))
            cuts = np.round(np.cumsum(fractions)[:-1] * rows.size).astype(int)
            for k, chunk in enumerate(np.split(rows, cuts)):
                parts[k].append(chunk)
        return tuple(self.subset(np.sort(np.concatenate(p))) for p in parts)

    @property
    def singular(self) -> np.ndarray:
        """Rows that are exactly singular (``det J == 0``)."""
        return self.bucket == 0


def _theta2_for_abs_sin(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = np.arcsin(np.clip(s, 0.0, 1.0))
    flip = rng.random(s.shape) < 0.5  # theta2 near 0 or near pi
    t = np.where(flip, math.pi - base, base)
    return np.where(rng.random(s.shape) < 0.5, -t, t)


def generate_ik_dataset(config: IKDatasetConfig | None = None) -> IKDataset:
    """Draw a data set: stratified ``|det J|``, seeded, labelled by ``config.label_mode``."""
    cfg = IKDatasetConfig() if config is None else config
    rng = np.random.default_rng(cfg.seed)
    arm = cfg.arm
    n = cfg.n_samples
    n_exact = int(round(cfg.exact_singular_share * n))
    n_near = int(round(cfg.near_singular_share * n))
    n_regular = n - n_exact - n_near
    theta2_parts = [np.zeros(n_exact)]  # det J == 0 exactly
    scale = float(abs(arm.det_jacobian(np.array(math.pi / 2))))  # l1*l2, the largest |det J|
    near_edges = [(max(cfg.min_abs_det, BUCKET_EDGES[k]), BUCKET_EDGES[k + 1]) for k in range(4)]
    per = np.diff(np.round(np.linspace(0, n_near, 5)).astype(int))
    for (lo, hi), m in zip(near_edges, per, strict=True):
        log_det = rng.uniform(math.log(lo), math.log(min(hi, scale)), size=m)
        theta2_parts.append(_theta2_for_abs_sin(np.exp(log_det) / scale, rng))
    regular: list[np.ndarray] = []
    have = 0
    while have < n_regular:  # rejection sampling of |det J| >= 1e-2
        t = rng.uniform(-math.pi, math.pi, size=2 * (n_regular - have) + 16)
        t = t[np.abs(arm.det_jacobian(t)) >= BUCKET_EDGES[4]]
        regular.append(t)
        have += t.size
    theta2_parts.append(np.concatenate(regular)[:n_regular] if n_regular else np.zeros(0))
    theta2 = np.concatenate(theta2_parts)
    order = rng.permutation(n)
    theta2 = theta2[order]
    theta1 = rng.uniform(-math.pi, math.pi, size=n)
    v = rng.uniform(-cfg.velocity_scale, cfg.velocity_scale, size=(n, arm.task_dim))
    others = rng.uniform(-math.pi, math.pi, size=(n, arm.n_joints - 2))  # theta3.. (3-link arm)
    inputs = np.column_stack([theta1, theta2, others, v])
    det = arm.det_jacobian(theta2)
    bucket = bucket_of(det)
    if cfg.label_mode == "inverse":
        targets, singular = arm.inverse_velocity(inputs)
        status = np.where(singular, STATUS_BOTTOM, STATUS_FINITE).astype(np.int64)
    else:
        targets = arm.dls_velocity(inputs, cfg.damping)
        status = np.zeros(n, dtype=np.int64)
    return IKDataset(inputs=inputs, targets=targets, status=status, det=det, bucket=bucket)
