"""When :class:`~zpml_runtime.training.SCMTrainer` fits the head from data (``TrainingConfig.head_fit``).

* ``"init"``: once before the first epoch;
* ``"epoch"``: also after every epoch, ``"step"``: after every optimiser step.
  With these two the head is *solved, not descended*: its gradients are
  dropped before every optimiser step (variable projection), and without a
  validation loader the epoch with the lowest head-fit objective is the best
  one for ``restore_best``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import _distributed as D
from ._batches import split_batch
from .head_fit import HeadFitResult, find_head, fit_head

if TYPE_CHECKING:
    from .trainer import SCMTrainer

__all__ = ["HeadSchedule"]


class HeadSchedule:
    """The head-fit state of one trainer (the solved parameters, cached batches, last fit)."""

    def __init__(self, trainer: SCMTrainer) -> None:
        # a weak reference: a trainer <-> schedule cycle would keep the trainer, and with it a
        # DDP-wrapped model pinning the process group, alive until the cyclic garbage collector runs
        self._trainer = weakref.ref(trainer)
        self.mode = trainer.config.head_fit
        self.solved: list[nn.Parameter] = []
        self.head: nn.Module | None = None
        self.batches: list[Any] | None = None
        self.last_fit: HeadFitResult | None = None

    @property
    def trainer(self) -> SCMTrainer:
        """The trainer this schedule belongs to."""
        t = self._trainer()
        if t is None:
            raise RuntimeError("HeadSchedule outlived its SCMTrainer")
        return t

    # ------------------------------------------------------------------ hooks of the training loop
    def start(self) -> None:
        """At the start of ``fit()``: the first fit, or (resumed) find the head that stays solved."""
        t = self.trainer
        if self.mode == "off" or t.epoch >= t.config.max_epochs:
            return
        if t.epoch == 0:
            self._fit(0)
        elif self.mode in ("epoch", "step") and not self.solved:
            self._locate()

    def before_step(self) -> None:
        """Drop the gradients of the solved head (called right before every optimiser update)."""
        for p in self.solved:
            p.grad = None

    def after_step(self) -> None:
        """``"step"``: solve the head again (warm start, no log record)."""
        if self.mode != "step":
            return
        cfg = self.trainer.config
        self.last_fit = fit_head(
            self.trainer.model,
            self._data(),
            head=self.head,
            weighting=cfg.head_fit_weighting,
            max_iter=cfg.head_fit_max_iter,
        )

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """``"epoch"``: solve the head; record the objective and track the best epoch."""
        if self.mode == "epoch":
            self.last_fit = self._fit(epoch)
        if self.mode in ("epoch", "step") and self.last_fit is not None:
            record["head_fit_objective"] = self.last_fit.objective_after
            if self.trainer.val_loader is None:
                self._track_best(record)

    # ------------------------------------------------------------------ internals
    def _fit(self, epoch: int) -> HeadFitResult:
        t = self.trainer
        cfg = t.config
        result = fit_head(
            t.model,
            self._data(),
            max_batches=cfg.head_fit_batches,
            weighting=cfg.head_fit_weighting,
            max_iter=cfg.head_fit_max_iter * (5 if epoch == 0 else 1),
        )
        t._emit({"event": "head_fit", "epoch": epoch, **dataclasses.asdict(result)})
        if self.mode in ("epoch", "step"):
            self._solve(dict(self._raw().named_modules())[result.head])
        return result

    def _raw(self) -> nn.Module:
        t = self.trainer
        return t.model if t._wrapper is None else t._wrapper.model

    def _solve(self, head: nn.Module) -> None:
        self.head = head
        self.solved = [p for p in head.parameters() if p.requires_grad]

    def _data(self) -> Iterable[Any]:
        """The loader, or (``"step"``) its batches cached once (torch's RNG left alone)."""
        t = self.trainer
        if self.mode != "step":
            return t.train_loader
        if self.batches is None:
            with torch.random.fork_rng(devices=[]):
                self.batches = list(itertools.islice(t.train_loader, t.config.head_fit_batches))
        return self.batches

    def _locate(self) -> None:
        """Find the solved head on the first training batch without fitting it (a resumed run)."""
        t = self.trainer
        with torch.random.fork_rng(devices=[]):  # a shuffled loader draws from torch's RNG
            first = next(iter(t.train_loader), None)
        if first is None:
            from ..errors import UnsupportedInputError

            raise UnsupportedInputError("SCMTrainer: train_loader yielded no batches")
        x = split_batch(first, "head_fit")[0]
        x = x.to(t.device) if isinstance(x, torch.Tensor) else x
        raw = self._raw()
        was_training = raw.training
        raw.eval()
        try:
            self._solve(find_head(raw, x)[1])
        finally:
            raw.train(was_training)

    def _track_best(self, record: dict[str, Any]) -> None:
        """Adam's steps on the rest of the model are not monotone (the loss spikes now and then):
        without a validation loader the epoch with the lowest head-fit objective is the best one."""
        t = self.trainer
        value = record["head_fit_objective"]
        improved = math.isfinite(value) and (
            t.best_head_fit_objective is None or value < t.best_head_fit_objective
        )
        if t._distributed:  # rank 0's objective decides (its head was broadcast), so ranks agree
            flag = torch.tensor([1.0 if improved and t._rank0 else 0.0], device=t.device)
            improved = bool(D.all_reduce_max(flag).item() > 0)
        if improved:
            t.best_head_fit_objective = float(value)
            t.best_epoch = record["epoch"]
            t._best_state = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
        record["best"] = improved
