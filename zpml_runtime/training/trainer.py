"""``SCMTrainer``: the training loop for projective models (seed 004 call shapes).

One optimiser step per ``gradient_accumulation_steps`` micro-batches; a
``tau_train`` drawn per step from the config's interval is handed to the loss
when it accepts one. Per-step work stays on the device (losses and counts are
collected and synchronised once per epoch) unless step logging or per-step
finiteness checks are asked for. Under ``torchrun`` the model is wrapped in
DDP, plain loaders are sharded, and validation sums are all-reduced, so every
rank takes the same early-stopping decision; only rank 0 logs and writes
checkpoints. See ``docs/training.md``.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedInputError
from ..inference.wrapper import SCMInferenceWrapper
from . import _distributed as D
from ._batches import (
    accepts_tau_train,
    batch_loss,
    handles_loss_mask,
    split_batch,
    unreachable_bottom_layers,
)
from ._closure import closure_step, requires_closure
from ._evaluate import evaluate, validation_config
from ._head_schedule import HeadSchedule
from ._state import restore_state, trainer_state, write_checkpoints
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .errors import LossValueError
from .targets import SemanticTargets

__all__ = ["SCMTrainer"]


class SCMTrainer:
    """Train ``model`` with ``loss_fn`` on ``train_loader`` (see :class:`TrainingConfig`).

    Args:
        model: an ``nn.Module`` returning ``(P, Q)`` or ``(P, Q, V)``, or an
            :class:`~zpml_runtime.inference.SCMInferenceWrapper` of one (trained
            and validated on its raw tuple, ``wrapped.raw(x)``).
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters.
        loss_fn: called as ``loss_fn(outputs, targets)``, plus ``tau_train=``
            when it accepts that keyword (``SCMTrainingLoss`` does); must return
            a scalar tensor. ``targets`` is ``(Y_n, Y_d)`` from ``lift_targets``
            for ``(x, y)`` batches, or ``SemanticTargets`` for ``(x, y, status)``.
        train_loader: iterable of ``(x, y)`` or ``(x, y, status)`` batches.
        scheduler: optional LR scheduler, stepped per epoch or per optimiser step
            (``config.scheduler_interval``); ``ReduceLROnPlateau`` gets the
            validation loss (else the training loss).
        config: a :class:`TrainingConfig` (defaults when ``None``).

    Attributes:
        history: list of per-epoch records (what :meth:`fit` returns).
        epoch: epochs completed; ``global_step``: optimiser steps taken.
        best_epoch, best_val_loss, stopped_early: early-stopping state;
        best_head_fit_objective: the best epoch's head-fit objective when
            ``head_fit`` is ``"epoch"``/``"step"`` and there is no validation loader.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[..., torch.Tensor],
        train_loader: Iterable[Any],
        *,
        scheduler: Any = None,
        config: TrainingConfig | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise UnsupportedInputError(
                f"SCMTrainer: model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise UnsupportedInputError(
                f"SCMTrainer: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if not callable(loss_fn):
            raise UnsupportedInputError(
                f"SCMTrainer: loss_fn must be callable, got {type(loss_fn).__name__}"
            )
        if not hasattr(train_loader, "__iter__"):
            raise UnsupportedInputError(
                f"SCMTrainer: train_loader must be an iterable of batches, got {type(train_loader).__name__}"
            )
        if config is None:
            config = TrainingConfig()
        elif not isinstance(config, TrainingConfig):
            raise UnsupportedInputError(
                f"SCMTrainer: config must be a TrainingConfig or None, got {type(config).__name__}"
            )
        if scheduler is not None and not callable(getattr(scheduler, "step", None)):
            raise UnsupportedInputError(
                f"SCMTrainer: scheduler must have a step() method, got {type(scheduler).__name__}"
            )
        self.model = D.unwrap_ddp(model)
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.config = config
        self._distributed = config.distributed == "auto" and D.is_distributed()
        # the DDP wrapper this trainer makes lives only during fit(): a wrapper kept afterwards would
        # hold the process group, so destroy_process_group() could not stop it and the script would
        # hang at exit (a DDP module the caller passed in is the caller's)
        self._owns_ddp = self._distributed and D.unwrap_ddp(model) is model
        self._train_module: nn.Module = model
        self.train_loader = (
            D.shard_loader(train_loader, shuffle_seed=config.seed, train=True)
            if self._distributed
            else train_loader
        )
        self.val_loader = (
            D.shard_loader(config.val_loader, shuffle_seed=config.seed, train=False)
            if self._distributed and config.val_loader is not None
            else config.val_loader
        )
        #: the model when it is an SCMInferenceWrapper (trained on its raw outputs), else None
        self._wrapper = self.model if isinstance(self.model, SCMInferenceWrapper) else None
        self._is_wrapper = self._wrapper is not None
        self._closure = requires_closure(optimizer)
        self._heads = HeadSchedule(self)
        self._pass_tau = accepts_tau_train(loss_fn)
        self._mask_aware = handles_loss_mask(loss_fn)
        self._unreachable = unreachable_bottom_layers(self.model)
        self._rank0 = D.rank() == 0
        self._rng = random.Random(config.seed)
        self._plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        self._val_config = validation_config(config, self.model)
        self.tau_infer = self._val_config.tau_infer
        params = list(self.model.parameters())
        self.device = params[0].device if params else torch.device("cpu")
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.global_step = 0
        self.best_epoch: int | None = None
        self.best_val_loss: float | None = None
        self.best_head_fit_objective: float | None = None
        self.stopped_early = False
        self._bad_epochs = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        if config.resume_from is not None:
            self.load_checkpoint(config.resume_from)

    # ------------------------------------------------------------------ public API
    def fit(self) -> list[dict[str, Any]]:
        """Train until ``max_epochs`` or early stopping; returns :attr:`history`."""
        cfg = self.config
        self._emit(
            {
                "event": "fit_start",
                "config": cfg.to_dict(),
                "config_hash": cfg.config_hash(),
                "world_size": D.world_size(),
                "start_epoch": self.epoch,
            }
        )
        bar = self._progress_bar()
        if self._owns_ddp:
            self._train_module = D.wrap_ddp(self.model)
        try:
            self._heads.start()
            while self.epoch < cfg.max_epochs and not self.stopped_early:
                record = self._run_epoch()
                self.history.append(record)
                self._emit({"event": "epoch", **record})
                write_checkpoints(self, record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(_postfix(record), refresh=False)
        finally:
            if bar is not None:
                bar.close()
            if self._owns_ddp:
                self._train_module = self.model
        restored = False
        if cfg.restore_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
            restored = True
        self._emit(
            {
                "event": "fit_end",
                "epochs": self.epoch,
                "global_step": self.global_step,
                "stopped_early": self.stopped_early,
                "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss,
                "best_head_fit_objective": self.best_head_fit_objective,
                "restored_best": restored,
            }
        )
        return self.history

    def evaluate(self, loader: Iterable[Any] | None = None) -> dict[str, float | int | None]:
        """Mean loss and coverage on ``loader`` (default: ``val_loader``).

        Runs the raw ``(P, Q[, V])`` of the model in eval mode (``wrapped.raw``
        for a wrapper); the loss gets the midpoint of the ``tau_train`` interval.
        ``val_coverage`` is the fraction of output entries that strict decoding
        does *not* make bottom: the same mask deployment computes (a wrapper's
        own ``decode``, or :func:`strict_inference` at ``tau_infer``), so
        ``Q = +-inf``, non-finite ``P``, validity factors and the dtype rounding
        of ``tau_infer`` count exactly as they will at inference.
        Sums are all-reduced across ranks.
        """
        return evaluate(self, loader)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint dictionary (tensors and plain containers only)."""
        return trainer_state(self)

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`state_dict` to ``path`` atomically (call it on one rank only)."""
        return save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Resume from a checkpoint (``weights_only=True``; config hash must match)."""
        restore_state(self, load_checkpoint(path, map_location=self.device), str(path))

    # ------------------------------------------------------------------ one epoch
    def _run_epoch(self) -> dict[str, Any]:
        cfg = self.config
        epoch = self.epoch + 1  # 1-based in records and messages
        set_epoch = getattr(getattr(self.train_loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        module = self._train_module
        module.train()
        accum = cfg.gradient_accumulation_steps
        lo, hi = cfg.tau_train_min, cfg.tau_train_max
        losses: list[torch.Tensor] = []
        y_d_sums: list[torch.Tensor] = []
        n_elements = 0
        n_missing: list[torch.Tensor] = []
        taus = 0.0
        n_steps = 0
        t0 = time.perf_counter()
        # every optimiser step already clears the gradients; only a fresh or resumed run may
        # hold stale ones (zero_grad costs about 0.1 ms on CPU, as much as a small step)
        if any(p.grad is not None for g in self.optimizer.param_groups for p in g["params"]):
            self.optimizer.zero_grad(set_to_none=True)
        pending = 0
        tau = lo if lo == hi else self._rng.uniform(lo, hi)
        try:
            last = len(self.train_loader) - 1  # type: ignore[arg-type]
        except TypeError:
            last = -1
        group: list[tuple[Any, torch.Tensor, Any, str]] = []  # micro-batches of a closure step

        def account(loss: torch.Tensor, targets: Any) -> None:
            nonlocal n_elements
            losses.append(loss.detach())
            _y_n, y_d = targets
            n_elements += y_d.numel()
            y_d_sums.append(y_d.sum())
            if isinstance(targets, SemanticTargets):
                n_missing.append((~targets.loss_mask).sum())

        for i, batch in enumerate(self.train_loader):
            where = f"epoch {epoch}, batch {i} (step {self.global_step})"
            x, y, status = split_batch(batch, where)
            x, y, status = self._to_device(x, y, status)
            if self._closure:
                group.append((x, y, status, where))
            else:
                sync = self._distributed and pending + 1 < accum and i != last
                with D.no_sync(module, sync):
                    loss, targets = self._forward_loss(x, y, status, tau, where)
                    self._check_step_loss(loss, where)
                    (loss / accum if accum > 1 else loss).backward()
                account(loss, targets)
            pending += 1
            if pending == accum:
                taus += tau
                n_steps += 1
                if self._closure:
                    for loss, targets in closure_step(self, group, tau):
                        account(loss, targets)
                    group = []
                else:
                    self._optimizer_step()
                self._heads.after_step()
                pending = 0
                tau = lo if lo == hi else self._rng.uniform(lo, hi)
                if cfg.log_every_n_steps and self.global_step % cfg.log_every_n_steps == 0:
                    self._emit(
                        {
                            "event": "step",
                            "epoch": epoch,
                            "step": self.global_step,
                            "loss": float(losses[-1]),
                            "tau_train": taus / max(n_steps, 1),
                        }
                    )
        if pending:  # a partial accumulation group at the end of the epoch
            taus += tau
            n_steps += 1
            if self._closure:
                for loss, targets in closure_step(self, group, tau):
                    account(loss, targets)
            else:
                self._optimizer_step()
            self._heads.after_step()
        if not losses:
            raise UnsupportedInputError(f"epoch {epoch}: train_loader yielded no batches")
        stacked = torch.stack(losses)
        # one reduction decides finiteness: a sum with a NaN/Inf term is not finite, so a
        # finite sum proves every loss finite (finite losses whose sum overflows take the slow path)
        loss_sum = stacked.sum(dtype=torch.float64)
        y_d_sum = torch.stack(y_d_sums).sum(dtype=torch.float64)
        parts = [loss_sum, y_d_sum]
        if n_missing:
            parts.append(torch.stack(n_missing).sum(dtype=torch.float64))
        host = torch.stack(parts).tolist()  # the epoch's one host sync
        if not math.isfinite(host[0]):
            finite = torch.isfinite(stacked)
            if not bool(finite.all()):
                bad = int((~finite).nonzero()[0])
                raise LossValueError(
                    f"epoch {epoch}, batch {bad}: the loss is {stacked[bad].item()} (not finite); "
                    "parameters after that step are not usable (resume from a checkpoint). Check the "
                    "targets, the model's P/Q, or the loss; TrainingConfig(check_finite='step') stops "
                    "before the bad update"
                )
        sums = [
            host[0],
            float(len(losses)),
            float(n_elements) - host[1],
            host[2] if n_missing else 0.0,
            float(n_elements),
        ]
        if self._distributed:
            sums = D.all_reduce_sum(
                torch.tensor(sums, dtype=torch.float64, device=stacked.device)
            ).tolist()
        total = sums
        self.epoch += 1
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": total[0] / total[1],
            "steps": self.global_step,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "tau_train_mean": taus / max(n_steps, 1),
            "n_rows": int(total[4]),
            "n_bottom_rows": int(total[2] - total[3]),  # Y_d == 0, minus the excluded (0, 0) rows
            "n_missing_rows": int(total[3]),
        }
        self._heads.after_epoch(epoch, record)
        terms = getattr(self.loss_fn, "last_terms", None)
        if isinstance(terms, dict) and terms:
            record["loss_terms"] = dict(terms)
        if self.val_loader is not None:
            record.update(self.evaluate())
            self._early_stopping(record)
        if self.scheduler is not None and cfg.scheduler_interval == "epoch":
            if self._plateau:
                metric = record.get("val_loss")
                self.scheduler.step(record["train_loss"] if metric is None else metric)
            else:
                self.scheduler.step()
        record["time_s"] = time.perf_counter() - t0
        return record

    def _forward_loss(
        self, x: Any, y: torch.Tensor, status: Any, tau: float, where: str
    ) -> tuple[torch.Tensor, Any]:
        """Forward one training micro-batch and return ``(loss, lifted targets)``."""
        wrapper = self._wrapper
        outputs = self._train_module(x) if wrapper is None or self._distributed else wrapper.raw(x)
        loss, _n, _outputs, targets = self._loss(outputs, y, status, tau, where)
        return loss, targets

    def _check_step_loss(self, loss: torch.Tensor, where: str) -> None:
        if self.config.check_finite == "step" and not bool(torch.isfinite(loss)):
            raise LossValueError(
                f"{where}: the loss is {loss.item()} (not finite); the optimiser step was "
                "not applied. Check the targets (NaN in finite rows?), the model's P/Q, or "
                "the loss (a gamma > 0 avoids 0/0)"
            )

    def _optimizer_step(self) -> None:
        self._heads.before_step()
        if self.config.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        if (
            self.scheduler is not None
            and self.config.scheduler_interval == "step"
            and not self._plateau
        ):
            self.scheduler.step()

    def _loss(
        self, outputs: Any, y: torch.Tensor, status: Any, tau: float, where: str
    ) -> tuple[torch.Tensor, int, Any, Any]:
        """Lift, check and call the loss; returns ``(loss, rows used, outputs, targets)``."""
        return batch_loss(self, outputs, y, status, tau, where)

    def _early_stopping(self, record: dict[str, Any]) -> None:
        val = record.get("val_loss")
        val_f = math.nan if val is None else float(val)
        improved = math.isfinite(val_f) and (
            self.best_val_loss is None
            or val_f < self.best_val_loss - self.config.early_stopping_min_delta
        )
        if improved:
            self.best_val_loss = val_f
            self.best_epoch = record["epoch"]
            self._bad_epochs = 0
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self._bad_epochs += 1
        record["best"] = improved
        patience = self.config.early_stopping_patience
        stop = patience is not None and self._bad_epochs >= patience
        flag = D.all_reduce_max(torch.tensor([1.0 if stop else 0.0], device=self.device))
        self.stopped_early = bool(flag.item() > 0)

    # ------------------------------------------------------------------ helpers
    def _to_device(self, x: Any, y: torch.Tensor, status: Any) -> tuple[Any, torch.Tensor, Any]:
        dev = self.device
        if isinstance(x, torch.Tensor) and x.device != dev:
            x = x.to(dev, non_blocking=True)
        if y.device != dev:
            y = y.to(dev, non_blocking=True)
        if isinstance(status, torch.Tensor) and status.device != dev:
            status = status.to(dev, non_blocking=True)
        return x, y, status

    def _emit(self, record: dict[str, Any]) -> None:
        if not self._rank0:
            return
        if self.config.log_hook is not None:
            self.config.log_hook(dict(record))
        if self.config.logger is not None:
            self.config.logger.log(record)

    def _progress_bar(self) -> Any:
        if not self.config.progress or not self._rank0:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.max_epochs, initial=self.epoch, desc="SCMTrainer", unit="epoch"
        )


def _postfix(record: dict[str, Any]) -> dict[str, str]:
    out = {"loss": f"{record['train_loss']:.3g}"}
    if record.get("val_loss") is not None:
        out["val"] = f"{record['val_loss']:.3g}"
    return out
