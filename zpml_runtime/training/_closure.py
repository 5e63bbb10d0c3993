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
from typing import TYPE_CHECKING, Any

import torch

from ..errors import UnsupportedInputError
from . import _distributed as D

if TYPE_CHECKING:
    from .trainer import SCMTrainer

__all__ = ["closure_step", "requires_closure"]


def requires_closure(optimizer: torch.optim.Optimizer) -> bool:
    """True when ``optimizer.step`` must be given a closure (``LBFGS``, or a ``closure`` with no default)."""
    if isinstance(optimizer, torch.optim.LBFGS):
        return True
    try:
        params = inspect.signature(optimizer.step).parameters
    except (
        TypeError,
        ValueError,
    ):  # a C-implemented or otherwise opaque step: assume the usual signature
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


def closure_step(
    trainer: SCMTrainer, group: list[tuple[Any, torch.Tensor, Any, str]], tau: float
) -> list[tuple[torch.Tensor, Any]]:
    """One step of the trainer's closure optimiser over an accumulation group; returns the first evaluation.

    The closure's objective is the mean of the group's micro-batch losses
    (averaged across ranks under DDP); solved head gradients are dropped and
    gradient clipping applies inside it.
    """
    t = trainer
    first = FirstEvaluation()
    module = t._train_module
    k = len(group)

    def closure() -> torch.Tensor:
        t.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float64, device=t.device)
        for j, (x, y, status, where) in enumerate(group):
            sync = t._distributed and j + 1 < k
            with D.no_sync(module, sync):
                loss, targets = t._forward_loss(x, y, status, tau, where)
                if not first.done:
                    t._check_step_loss(loss, where)
                (loss / k if k > 1 else loss).backward()
            first.add(loss, targets)
            total = total + loss.detach().double() / k
        first.done = True
        t._heads.before_step()
        if t._distributed:
            total = D.all_reduce_sum(total.reshape(1)).reshape(()) / D.world_size()
        if t.config.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(t.model.parameters(), t.config.grad_clip_norm)
        return total

    # torch's stub types the closure as returning float; LBFGS and the other closure
    # optimisers take (and document) a closure returning the loss tensor
    t.optimizer.step(closure)  # type: ignore[arg-type]
    t.optimizer.zero_grad(set_to_none=True)
    t.global_step += 1
    if t.scheduler is not None and t.config.scheduler_interval == "step" and not t._plateau:
        t.scheduler.step()
    if not first.done:
        raise UnsupportedInputError(
            f"{type(t.optimizer).__name__}.step(closure) never called the closure; the trainer "
            "passes a closure only to optimisers that require one"
        )
    return first.records
