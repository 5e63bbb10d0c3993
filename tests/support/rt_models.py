"""Small torch models shared by the runtime tests."""

from __future__ import annotations

import torch


class RationalHead(torch.nn.Module):
    """A learnable rational head that is not compiled: P, Q of shape [batch, 1], two factors."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Linear(2, 1)
        self.q = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.p(x), self.q(x), torch.stack([x[:, 0], x[:, 1] - 1], dim=-1)
