"""Closure optimisers (``torch.optim.LBFGS`` and any optimiser whose ``step`` needs a closure).

Such an optimiser re-evaluates the loss and its gradient several times per step
(L-BFGS: once per line-search trial). The trainer hands it a closure over the
step's whole accumulation group of micro-batches, so every evaluation sees the
same objective: the mean of the group's micro-batch losses at one
``tau_train``. Under DDP the closure's value is averaged across ranks (the
gradients already are), so every rank takes the same line-search decisions and
calls the closure equally often.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

__all__ = ["requires_closure"]


def requires_closure(optimizer: torch.optim.Optimizer) -> bool:
    """True when ``optimizer.step`` must be given a closure (``LBFGS``, or a ``closure`` with no default)."""
    if isinstance(optimizer, torch.optim.LBFGS):
        return True
    try:
        params = inspect.signature(optimizer.step).parameters
    except (TypeError, ValueError):  # a C-implemented or otherwise opaque step: assume the usual signature
        return False
    closure = params.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


class FirstEvaluation:
    """What a closure saw on its first call (parameters before the step): per micro-batch loss and targets."""

    def __init__(self) -> None:
        self.done = False
        self.records: list[tuple[torch.Tensor, Any]] = []

    def add(self, loss: torch.Tensor, targets: Any) -> None:
        """Record one micro-batch of the first evaluation."""
        if not self.done:
            self.records.append((loss.detach(), targets))
