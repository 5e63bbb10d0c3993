"""Planar three-link arm with a position + orientation task.

Inputs ``(theta1, theta2, theta3, dx, dy, dphi)``: joint angles and the commanded
end-effector velocity (position ``x, y`` and orientation ``phi = theta1 + theta2 + theta3``).
The Jacobian is square (3x3)::

    J = [[-(l1*s1 + l2*s12 + l3*s123), -(l2*s12 + l3*s123), -l3*s123],
         [  l1*c1 + l2*c12 + l3*c123,    l2*c12 + l3*c123,    l3*c123],
         [  1,                           1,                   1      ]]

Subtracting neighbouring columns leaves the two-link wrist Jacobian, so
``det J = l1*l2*sin(theta2)`` again; the inverse ``J^-1 (dx, dy, dphi)`` is a
rational function of ``(c1, s1, c2, s2, c3, s3, dx, dy, dphi)`` with numerators
of total degree 3 (reduced by ``c^2 + s^2 = 1``)::

    n1 =  l2*(c12*dx + s12*dy + l3*s3*dphi)
    n2 = -(l1*c1 + l2*c12)*dx - (l1*s1 + l2*s12)*dy - l3*(l1*s23 + l2*s3)*dphi
    n3 =  l1*(c1*dx + s1*dy + (l2*s2 + l3*s23)*dphi)

The symbolic 2-link template cannot express it (three outputs, a third angle,
the orientation row); a generic rational head on the angle features can.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from zpml_runtime.errors import ShapeMismatchError
from zpml_runtime.robotics.arm import check_positive, dls_solve

__all__ = ["DEFAULT_LINKS_3", "PlanarArm3"]

#: default link lengths of the three-link arm (all different)
DEFAULT_LINKS_3: tuple[float, float, float] = (1.0, 0.7, 0.4)


def _split3(inputs: np.ndarray) -> tuple[np.ndarray, ...]:
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 6:
        raise ShapeMismatchError(
            "3-link arm inputs must have shape [batch, 6] (theta1, theta2, theta3, dx, dy, dphi), "
            f"got {tuple(x.shape)}"
        )
    return tuple(x[:, i] for i in range(6))


@dataclasses.dataclass(frozen=True)
class PlanarArm3:
    """A planar 3-link arm (link lengths ``l1, l2, l3``) with a position + orientation task."""

    l1: float = DEFAULT_LINKS_3[0]
    l2: float = DEFAULT_LINKS_3[1]
    l3: float = DEFAULT_LINKS_3[2]
    n_joints = 3
    task_dim = 3
    feature_names: tuple[str, ...] = ("c1", "s1", "c2", "s2", "c3", "s3", "dx", "dy", "dphi")

    def __post_init__(self) -> None:
        for name in ("l1", "l2", "l3"):
            object.__setattr__(self, name, check_positive(getattr(self, name), name))

    def forward_kinematics(self, theta: np.ndarray) -> np.ndarray:
        """``(x, y, phi)`` of joint angles ``theta [..., 3]``: shape ``[..., 3]``."""
        t = np.asarray(theta, dtype=np.float64)
        a1, a12, a123 = t[..., 0], t[..., 0] + t[..., 1], t[..., 0] + t[..., 1] + t[..., 2]
        x = self.l1 * np.cos(a1) + self.l2 * np.cos(a12) + self.l3 * np.cos(a123)
        y = self.l1 * np.sin(a1) + self.l2 * np.sin(a12) + self.l3 * np.sin(a123)
        return np.stack([x, y, a123], axis=-1)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """``J(theta)`` of shape ``[..., 3, 3]`` (rows ``x, y, phi``)."""
        t = np.asarray(theta, dtype=np.float64)
        a1, a12, a123 = t[..., 0], t[..., 0] + t[..., 1], t[..., 0] + t[..., 1] + t[..., 2]
        s1, s12, s123 = np.sin(a1), np.sin(a12), np.sin(a123)
        c1, c12, c123 = np.cos(a1), np.cos(a12), np.cos(a123)
        row_x = np.stack(
            [
                -(self.l1 * s1 + self.l2 * s12 + self.l3 * s123),
                -(self.l2 * s12 + self.l3 * s123),
                -self.l3 * s123,
            ],
            axis=-1,
        )
        row_y = np.stack(
            [
                self.l1 * c1 + self.l2 * c12 + self.l3 * c123,
                self.l2 * c12 + self.l3 * c123,
                self.l3 * c123,
            ],
            axis=-1,
        )
        return np.stack([row_x, row_y, np.ones_like(row_x)], axis=-2)

    def det_jacobian(self, theta2: np.ndarray) -> np.ndarray:
        """``det J = l1*l2*sin(theta2)``: zero exactly at the singular configurations."""
        return self.l1 * self.l2 * np.sin(theta2)

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """``(c1, s1, c2, s2, c3, s3, dx, dy, dphi)``: shape ``[batch, 9]``."""
        t1, t2, t3, dx, dy, dp = _split3(inputs)
        return np.stack(
            [np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), np.cos(t3), np.sin(t3), dx, dy, dp],
            axis=-1,
        )

    def inverse_numerators(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(adj(J) (dx, dy, dphi) [batch, 3], det J [batch])``: the IK solution is their quotient."""
        t1, t2, t3, dx, dy, dp = _split3(inputs)
        l1, l2, l3 = self.l1, self.l2, self.l3
        s1, c1 = np.sin(t1), np.cos(t1)
        s12, c12 = np.sin(t1 + t2), np.cos(t1 + t2)
        s2, s3, s23 = np.sin(t2), np.sin(t3), np.sin(t2 + t3)
        n1 = l2 * (c12 * dx + s12 * dy + l3 * s3 * dp)
        n2 = -(l1 * c1 + l2 * c12) * dx - (l1 * s1 + l2 * s12) * dy - l3 * (l1 * s23 + l2 * s3) * dp
        n3 = l1 * (c1 * dx + s1 * dy + (l2 * s2 + l3 * s23) * dp)
        return np.stack([n1, n2, n3], axis=-1), self.det_jacobian(t2)

    def inverse_velocity(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact differential IK: ``(dtheta [batch, 3], singular [batch])``.

        NaN (bottom) on rows with ``det J == 0`` exactly; +-inf where the value
        exceeds the float64 range.
        """
        num, det = self.inverse_numerators(inputs)
        singular = det == 0
        safe = np.where(singular, 1.0, det)
        with np.errstate(over="ignore"):
            out = num / safe[:, None]
        out[singular] = np.nan
        return out, singular

    def dls_velocity(self, inputs: np.ndarray, damping: float) -> np.ndarray:
        """Damped least squares ``J^T (J J^T + damping^2 I)^-1 v``: finite everywhere."""
        x = np.asarray(inputs, dtype=np.float64)
        _split3(x)
        return dls_solve(self.jacobian(x[:, :3]), x[:, 3:], damping)
