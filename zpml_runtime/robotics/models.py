"""IK models of the reference deployment: a compiled symbolic template, an MLP + rational head,
and the plain-MLP baseline.

All take inputs ``(theta1, theta2, dx, dy)`` of shape ``[batch, 4]`` and compute
the features ``(c1, s1, c2, s2, dx, dy)`` themselves, so an exported bundle has
the same input as the data set. The rational models return ``(P, Q, V)`` with
``P, Q`` of shape ``[batch, 2]`` (one entry per joint) and ``V`` a list of
validity factors of shape ``[batch, 2]`` (a factor is 1 on the outputs it does
not belong to, so it can only make its own output bottom).
"""

from __future__ import annotations

import torch
from torch import nn

from zpml_runtime.errors import ShapeMismatchError
from zpml_runtime.robotics.arm import DLS_TEMPLATES, IK_TEMPLATES

__all__ = ["FEATURE_NAMES", "IKFeatures", "IKMLPRationalModel", "IKTemplateModel", "MLPBaseline"]

FEATURE_NAMES: tuple[str, ...] = ("c1", "s1", "c2", "s2", "dx", "dy")


class IKFeatures(nn.Module):
    """``(theta1, theta2, dx, dy) -> (cos theta1, sin theta1, cos theta2, sin theta2, dx, dy)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != 4:
            raise ShapeMismatchError(
                f"IK inputs must have shape [batch, 4] (theta1, theta2, dx, dy), got {tuple(x.shape)}"
            )
        t1, t2, dx, dy = x.unbind(-1)
        return torch.stack([torch.cos(t1), torch.sin(t1), torch.cos(t2), torch.sin(t2), dx, dy], dim=-1)


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
        self.rational = zs.to_torch(frus, init=init or default, variables=list(FEATURE_NAMES), dtype=dtype)
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
                cols = [V[..., j] if i == k else torch.ones_like(V[..., j]) for i in range(len(outs))]
                factors.append(torch.stack(cols, dim=-1))
        return P, Q, factors

    def link_lengths(self) -> dict[str, float]:
        """The current learnable coefficients."""
        return dict(self.rational.coefficient_values())


class IKMLPRationalModel(nn.Module):
    """An MLP backbone on the features with a multivariate rational head (shared ``Q``)."""

    can_reach_bottom = True

    def __init__(self, *, hidden: int = 64, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        from zpml_runtime.layers import MultivariateRationalLayer

        self.features = IKFeatures()
        self.backbone = nn.Sequential(
            nn.Linear(6, hidden, dtype=dtype), nn.Tanh(), nn.Linear(hidden, hidden, dtype=dtype), nn.Tanh()
        )
        self.head = MultivariateRationalLayer(hidden, 2, 1, 1, shared_denominator=True, dtype=dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.backbone(self.features(x)))
        P, Q = out[0], out[1]
        if Q.shape != P.shape:
            Q = Q.expand_as(P)
        return P, Q


class MLPBaseline(nn.Module):
    """Plain MLP regression baseline of the same width: ``x -> dtheta`` (no bottom, no masks)."""

    def __init__(self, *, hidden: int = 64, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.features = IKFeatures()
        self.net = nn.Sequential(
            nn.Linear(6, hidden, dtype=dtype),
            nn.Tanh(),
            nn.Linear(hidden, hidden, dtype=dtype),
            nn.Tanh(),
            nn.Linear(hidden, 2, dtype=dtype),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(x))
