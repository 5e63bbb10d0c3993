"""Planar two-link arm: Jacobian, its determinant, inverse-Jacobian and damped-least-squares IK.

Differential inverse kinematics maps a joint configuration ``(theta1, theta2)``
and a desired end-effector velocity ``(dx, dy)`` to joint velocities
``(dtheta1, dtheta2) = J(theta)^-1 (dx, dy)``. With ``c1 = cos(theta1)``,
``s12 = sin(theta1 + theta2)`` and so on::

    J = [[-l1*s1 - l2*s12, -l2*s12],
         [ l1*c1 + l2*c12,  l2*c12]]          det J = l1*l2*sin(theta2)

    J^-1 (dx, dy) = (l2*c12*dx + l2*s12*dy,
                     -(l1*c1 + l2*c12)*dx - (l1*s1 + l2*s12)*dy) / (l1*l2*sin(theta2))

so the inverse is a rational function of ``(c1, s1, c2, s2, dx, dy)`` whose
denominator vanishes exactly where the arm is singular (``theta2 = 0, pi``).
The damped-least-squares (DLS) solution ``J^T (J J^T + lambda^2 I)^-1 (dx, dy)``
is finite everywhere and is the analytic fallback of the reference deployment.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol, runtime_checkable

import numpy as np

from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError

__all__ = [
    "DEFAULT_LINKS",
    "DLS_TEMPLATES",
    "DLSSolver",
    "IKArm",
    "IK_TEMPLATES",
    "PlanarArm",
    "check_positive",
    "dls_solve",
]

#: default link lengths of the two-link arm (unequal: the problem has no ``l1 == l2`` symmetry)
DEFAULT_LINKS: tuple[float, float] = (1.0, 0.6)

#: Symbolic templates of the two inverse-Jacobian entries over the features
#: ``c1, s1, c2, s2, dx, dy`` with learnable link lengths ``l1, l2`` (text for
#: ``zpml_symbolic.parse``; the shared denominator is ``l1*l2*s2``).
IK_TEMPLATES: tuple[str, str] = (
    "(l2*(c1*c2 - s1*s2)*dx + l2*(s1*c2 + c1*s2)*dy) / (l1*l2*s2)",
    "(-(l1*c1 + l2*(c1*c2 - s1*s2))*dx - (l1*s1 + l2*(s1*c2 + c1*s2))*dy) / (l1*l2*s2)",
)


def _dls_templates() -> tuple[str, str]:
    j11 = "(-(l1*s1 + l2*(s1*c2 + c1*s2)))"
    j12 = "(-l2*(s1*c2 + c1*s2))"
    j21 = "(l1*c1 + l2*(c1*c2 - s1*s2))"
    j22 = "(l2*(c1*c2 - s1*s2))"
    a = f"({j11}**2 + {j12}**2 + lam**2)"
    b = f"({j11}*{j21} + {j12}*{j22})"
    c = f"({j21}**2 + {j22}**2 + lam**2)"
    det = f"({a}*{c} - {b}**2)"
    w1 = f"({c}*dx - {b}*dy)"
    w2 = f"(-{b}*dx + {a}*dy)"
    return f"({j11}*{w1} + {j21}*{w2})/{det}", f"({j12}*{w1} + {j22}*{w2})/{det}"


#: The damped-least-squares solution ``J^T (J J^T + lam^2 I)^-1 (dx, dy)`` as a template over
#: the same features, learnable ``l1, l2, lam``; its denominator ``det(J J^T + lam^2 I)`` is
#: ``det(J)^2 + lam^2 |J|_F^2 + lam^4 > 0`` on the arm (the compiler, which treats the features
#: as independent inputs, still tracks it as a denominator).
DLS_TEMPLATES: tuple[str, str] = _dls_templates()


@runtime_checkable
class IKArm(Protocol):
    """What the data set, the fallback solver and the models need from an arm.

    Inputs are rows ``(theta_1 .. theta_n, v_1 .. v_m)`` (joint angles, then the
    commanded task-space velocity); ``det J`` depends on ``theta2`` only.
    """

    @property
    def n_joints(self) -> int: ...
    @property
    def task_dim(self) -> int: ...
    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def det_jacobian(self, theta2: np.ndarray) -> np.ndarray: ...
    def features(self, inputs: np.ndarray) -> np.ndarray: ...
    def inverse_velocity(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def dls_velocity(self, inputs: np.ndarray, damping: float) -> np.ndarray: ...


def check_positive(value: float, name: str) -> float:
    """``value`` as a float when it is a finite number > 0, else :class:`InvalidConfigError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _split(inputs: np.ndarray) -> tuple[np.ndarray, ...]:
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 4:
        raise ShapeMismatchError(
            f"arm inputs must have shape [batch, 4] (theta1, theta2, dx, dy), got {tuple(x.shape)}"
        )
    return x[:, 0], x[:, 1], x[:, 2], x[:, 3]


@dataclasses.dataclass(frozen=True)
class PlanarArm:
    """A planar 2-link arm with link lengths ``l1`` and ``l2`` (default :data:`DEFAULT_LINKS`).

    Task: the end-effector position; inputs ``(theta1, theta2, dx, dy)``.
    """

    l1: float = DEFAULT_LINKS[0]
    l2: float = DEFAULT_LINKS[1]
    n_joints = 2
    task_dim = 2
    feature_names: tuple[str, ...] = ("c1", "s1", "c2", "s2", "dx", "dy")

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", check_positive(self.l1, "l1"))
        object.__setattr__(self, "l2", check_positive(self.l2, "l2"))

    def forward_kinematics(self, theta1: np.ndarray, theta2: np.ndarray) -> np.ndarray:
        """End-effector position ``[..., 2]``."""
        t12 = theta1 + theta2
        return np.stack(
            [
                self.l1 * np.cos(theta1) + self.l2 * np.cos(t12),
                self.l1 * np.sin(theta1) + self.l2 * np.sin(t12),
            ],
            axis=-1,
        )

    def jacobian(self, theta1: np.ndarray, theta2: np.ndarray) -> np.ndarray:
        """``J(theta)`` of shape ``[..., 2, 2]``."""
        s1, c1 = np.sin(theta1), np.cos(theta1)
        s12, c12 = np.sin(theta1 + theta2), np.cos(theta1 + theta2)
        row0 = np.stack([-self.l1 * s1 - self.l2 * s12, -self.l2 * s12], axis=-1)
        row1 = np.stack([self.l1 * c1 + self.l2 * c12, self.l2 * c12], axis=-1)
        return np.stack([row0, row1], axis=-2)

    def det_jacobian(self, theta2: np.ndarray) -> np.ndarray:
        """``det J = l1*l2*sin(theta2)``: zero exactly at the singular configurations."""
        return self.l1 * self.l2 * np.sin(theta2)

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """``(c1, s1, c2, s2, dx, dy)`` of inputs ``(theta1, theta2, dx, dy)``: shape ``[batch, 6]``."""
        t1, t2, dx, dy = _split(inputs)
        return np.stack([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), dx, dy], axis=-1)

    def inverse_numerators(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(adj(J) (dx, dy) [batch, 2], det J [batch])``: the exact IK solution is their quotient."""
        t1, t2, dx, dy = _split(inputs)
        s1, c1 = np.sin(t1), np.cos(t1)
        s12, c12 = np.sin(t1 + t2), np.cos(t1 + t2)
        n1 = self.l2 * c12 * dx + self.l2 * s12 * dy
        n2 = -(self.l1 * c1 + self.l2 * c12) * dx - (self.l1 * s1 + self.l2 * s12) * dy
        return np.stack([n1, n2], axis=-1), self.det_jacobian(t2)

    def inverse_velocity(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact differential IK: ``(dtheta [batch, 2], singular [batch])``.

        ``dtheta`` is NaN on singular rows (``det J == 0`` exactly): the label
        there is bottom, never a clamped number. Where the exact value exceeds
        the float64 range (``|det J|`` near 1e-308) it is +-inf.
        """
        num, det = self.inverse_numerators(inputs)
        singular = det == 0
        safe = np.where(singular, 1.0, det)
        with np.errstate(over="ignore"):  # |det J| near the float64 minimum: the value is +-inf
            out = num / safe[:, None]
        out[singular] = np.nan
        return out, singular

    def dls_velocity(self, inputs: np.ndarray, damping: float) -> np.ndarray:
        """Damped least squares ``J^T (J J^T + damping^2 I)^-1 (dx, dy)``: finite everywhere."""
        t1, t2, dx, dy = _split(inputs)
        return dls_solve(self.jacobian(t1, t2), np.stack([dx, dy], axis=-1), damping)


def dls_solve(J: np.ndarray, v: np.ndarray, damping: float) -> np.ndarray:
    """``J^T (J J^T + damping^2 I)^-1 v`` for ``J [n, m, k]`` and ``v [n, m]``: shape ``[n, k]``."""
    lam = check_positive(damping, "damping")
    A = J @ np.swapaxes(J, -1, -2) + (lam * lam) * np.eye(J.shape[-2])
    y = np.linalg.solve(A, v[..., None])
    return (np.swapaxes(J, -1, -2) @ y)[..., 0]


@dataclasses.dataclass(frozen=True)
class DLSSolver:
    """The analytic fallback for ``route_to_analytic_solver``: ``inputs [n, joints + task] -> dtheta [n, joints]``."""

    arm: IKArm = dataclasses.field(default_factory=PlanarArm)
    damping: float = 1e-2

    def __post_init__(self) -> None:
        check_positive(self.damping, "damping")

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self.arm.dls_velocity(np.asarray(inputs, dtype=np.float64), self.damping)
