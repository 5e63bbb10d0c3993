"""IK models of the reference deployment: a generic rational head on the angle features, a
compiled symbolic template (2-link only) and the plain-MLP baseline.

All take the data set's inputs ``(theta_1 .. theta_n, v_1 .. v_m)`` and compute
the features ``(c1, s1, .., cn, sn, v_1 .. v_m)`` themselves, so an exported
bundle has the same input as the data set. The rational models return ``(P, Q)``
or ``(P, Q, V)`` with ``P, Q`` of shape ``[batch, joints]`` and ``V`` a list of
validity factors of shape ``[batch, joints]`` (a factor is 1 on the outputs it
does not belong to, so it can only make its own output bottom).
"""

from __future__ import annotations

import torch
from torch import nn

from zpml_runtime.errors import ShapeMismatchError
from zpml_runtime.layers import MultivariateRationalLayer
from zpml_runtime.robotics.arm import DLS_TEMPLATES, IK_TEMPLATES

__all__ = [
    "FEATURE_NAMES",
    "ArmFeatures",
    "GenericIKModel",
    "IKFeatures",
    "IKTemplateModel",
    "MLPBaseline",
]

#: features of the 2-link arm (the template's variables)
FEATURE_NAMES: tuple[str, ...] = ("c1", "s1", "c2", "s2", "dx", "dy")


class ArmFeatures(nn.Module):
    """``(theta_1 .. theta_n, v_1 .. v_m) -> (cos theta_1, sin theta_1, .., cos theta_n, sin theta_n, v_1 .. v_m)``."""

    def __init__(self, n_joints: int = 2, task_dim: int = 2) -> None:
        super().__init__()
        self.n_joints, self.task_dim = int(n_joints), int(task_dim)

    @property
    def out_features(self) -> int:
        """``2 * n_joints + task_dim``."""
        return 2 * self.n_joints + self.task_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = self.n_joints + self.task_dim
        if x.dim() != 2 or x.shape[-1] != width:
            raise ShapeMismatchError(
                f"IK inputs must have shape [batch, {width}] ({self.n_joints} joint angles, then "
                f"{self.task_dim} velocity components), got {tuple(x.shape)}"
            )
        t = x[:, : self.n_joints]
        cs = torch.stack([torch.cos(t), torch.sin(t)], dim=-1).reshape(
            x.shape[0], 2 * self.n_joints
        )
        return torch.cat([cs, x[:, self.n_joints :]], dim=-1)


class IKFeatures(ArmFeatures):
    """The 2-link features ``(theta1, theta2, dx, dy) -> (c1, s1, c2, s2, dx, dy)``."""

    def __init__(self) -> None:
        super().__init__(2, 2)


class GenericIKModel(nn.Module):
    """Angle features followed by a :class:`~zpml_runtime.layers.MultivariateRationalLayer` head.

    Knows nothing about the arm beyond its joint and task counts: the head's
    coefficients come from data (:func:`zpml_runtime.robotics.generic.fit_generic_head`).
    Returns ``(P, Q)``, each ``[batch, joints]`` (a shared ``Q`` broadcast).
    """

    can_reach_bottom = True

    head: MultivariateRationalLayer

    def __init__(self, features: ArmFeatures, head: MultivariateRationalLayer) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.features(x))
        return out[0], out[1]


class IKTemplateModel(nn.Module):
    """Differential IK as a symbolic template with learnable coefficients.

    ``kind="inverse"``: the two entries of
    :data:`~zpml_runtime.robotics.arm.IK_TEMPLATES` (learnable link lengths
    ``l1, l2``), compiled together by ``zpml_symbolic``; exact flattening keeps
    every denominator (``Q = l1*s2`` and ``l1*l2*s2``, validity factor ``l2``),
    so ``Q`` is exactly zero where ``det J`` is. ``kind="dls"``: the
    damped-least-squares solution :data:`~zpml_runtime.robotics.arm.DLS_TEMPLATES`
    (``l1, l2`` and the damping ``lam``), finite everywhere on the arm.
    """

    can_reach_bottom = True

    def __init__(
        self,
        *,
        kind: str = "inverse",
        init: dict[str, float] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        import zpml_symbolic as zs

        if kind == "inverse":
            self.templates, params = IK_TEMPLATES, ["l1", "l2"]
            default = {"l1": 0.8, "l2": 1.25}
        elif kind == "dls":
            self.templates, params = DLS_TEMPLATES, ["l1", "l2", "lam"]
            default = {"l1": 0.8, "l2": 1.25, "lam": 0.05}
        else:
            raise ValueError(f"kind must be 'inverse' or 'dls', got {kind!r}")
        self.kind = kind
        self.features = IKFeatures()
        frus = [zs.flatten(zs.parse(t, parameters=params)) for t in self.templates]
        self.rational = zs.to_torch(
            frus, init=init or default, variables=list(FEATURE_NAMES), dtype=dtype
        )
        self.frus = tuple(frus)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        outs = self.rational(self.features(x))
        P = torch.stack([o[0] for o in outs], dim=-1)
        Q = torch.stack([o[1] for o in outs], dim=-1)
        factors: list[torch.Tensor] = []
        for k, o in enumerate(outs):
            V = o[2] if len(o) > 2 else None
            if V is None:
                continue
            for j in range(V.shape[-1]):
                cols = [
                    V[..., j] if i == k else torch.ones_like(V[..., j]) for i in range(len(outs))
                ]
                factors.append(torch.stack(cols, dim=-1))
        return P, Q, factors

    def link_lengths(self) -> dict[str, float]:
        """The current learnable coefficients."""
        return dict(self.rational.coefficient_values())


class MLPBaseline(nn.Module):
    """Plain MLP regression baseline on the angle features: ``x -> dtheta`` (no bottom, no masks)."""

    def __init__(
        self,
        *,
        hidden: int = 64,
        n_joints: int = 2,
        task_dim: int = 2,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.features = ArmFeatures(n_joints, task_dim)
        self.net = nn.Sequential(
            nn.Linear(self.features.out_features, hidden, dtype=dtype),
            nn.Tanh(),
            nn.Linear(hidden, hidden, dtype=dtype),
            nn.Tanh(),
            nn.Linear(hidden, n_joints, dtype=dtype),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(x))
