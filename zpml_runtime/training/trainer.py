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

import contextlib
import dataclasses
import itertools
import math
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zpml_core.config import InferenceConfig
from zpml_core.strict import strict_inference

from ..errors import UnsupportedInputError
from ..inference.wrapper import SCMInferenceWrapper, split_model_outputs
from . import _distributed as D
from ._batches import (
    accepts_tau_train,
    check_target_shape,
    handles_loss_mask,
    lift_batch_targets,
    select_rows,
    split_batch,
    unreachable_bottom_layers,
)
from ._closure import FirstEvaluation, requires_closure
from .checkpoint import CHECKPOINT_FORMAT, check_config_hash, load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .errors import BottomUnreachableError, LossValueError
from .head_fit import HeadFitResult, find_head, fit_head
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
            raise UnsupportedInputError(f"SCMTrainer: model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise UnsupportedInputError(
                f"SCMTrainer: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if not callable(loss_fn):
            raise UnsupportedInputError(f"SCMTrainer: loss_fn must be callable, got {type(loss_fn).__name__}")
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
        self._train_module = D.wrap_ddp(model) if self._distributed else model
        self.train_loader = (
            D.shard_loader(train_loader, shuffle_seed=config.seed, train=True) if self._distributed else train_loader
        )
        self.val_loader = (
            D.shard_loader(config.val_loader, shuffle_seed=config.seed, train=False)
            if self._distributed and config.val_loader is not None
            else config.val_loader
        )
        self._is_wrapper = isinstance(self.model, SCMInferenceWrapper)
        self._closure = requires_closure(optimizer)
        self._solved: list[nn.Parameter] = []  # head parameters solved by head_fit="epoch"/"step"
        self._head: nn.Module | None = None
        self._head_batches: list[Any] | None = None
        self._last_step_fit: HeadFitResult | None = None
        self._pass_tau = accepts_tau_train(loss_fn)
        self._mask_aware = handles_loss_mask(loss_fn)
        self._unreachable = unreachable_bottom_layers(self.model)
        self._rank0 = D.rank() == 0
        self._rng = random.Random(config.seed)
        self._plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if config.tau_infer is not None:
            self.tau_infer = float(config.tau_infer)
        elif self._is_wrapper:
            self.tau_infer = float(self.model.config.tau_infer)
        else:
            self.tau_infer = 0.0
        self._val_config = InferenceConfig(tau_infer=self.tau_infer)
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
        if cfg.head_fit != "off" and self.epoch == 0 and cfg.max_epochs > 0:
            self._fit_head(0)
        elif cfg.head_fit in ("epoch", "step") and not self._solved and self.epoch < cfg.max_epochs:
            self._locate_head()  # resumed: the head stays solved, not descended
        try:
            while self.epoch < cfg.max_epochs and not self.stopped_early:
                record = self._run_epoch()
                self.history.append(record)
                self._emit({"event": "epoch", **record})
                self._checkpoint(record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(_postfix(record), refresh=False)
        finally:
            if bar is not None:
                bar.close()
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

    @torch.no_grad()
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
        loader = self.val_loader if loader is None else loader
        if loader is None:
            raise UnsupportedInputError("SCMTrainer.evaluate: no loader given and config.val_loader is None")
        module = self.model
        was_training = module.training
        module.eval()
        tau = 0.5 * (self.config.tau_train_min + self.config.tau_train_max)
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss*n, n, covered, n_q
        try:
            for i, batch in enumerate(loader):
                where = f"validation batch {i} (epoch {self.epoch + 1})"
                x, y, status = split_batch(batch, where)
                x, y, status = self._to_device(x, y, status)
                outputs = module.raw(x) if self._is_wrapper else module(x)
                loss, n, _outputs, _targets = self._loss(outputs, y, status, tau, where)
                bottom = self._deployed_bottom(outputs)
                sums += torch.stack(
                    [
                        loss.detach().double() * n,
                        torch.as_tensor(float(n), dtype=torch.float64, device=self.device),
                        (~bottom).sum().double(),
                        torch.as_tensor(float(bottom.numel()), dtype=torch.float64, device=self.device),
                    ]
                )
        finally:
            module.train(was_training)
        total = D.all_reduce_sum(sums).tolist()
        return {
            "val_loss": total[0] / total[1] if total[1] > 0 else None,
            "val_coverage": total[2] / total[3] if total[3] > 0 else None,
            "val_rows": int(total[1]),
        }

    def _deployed_bottom(self, outputs: Any) -> torch.Tensor:
        """The bottom mask deployment computes for these raw outputs (strict decoding).

        A wrapper without a ``config.tau_infer`` override decodes with its own
        configuration and validity thresholds (``wrapped.decode``); otherwise
        :func:`strict_inference` at ``tau_infer``. Either way ``Q = +-inf``,
        non-finite ``P`` and overflowing quotients are bottom (faults) and the
        threshold is applied exactly in ``Q``'s dtype.
        """
        P, Q, V = split_model_outputs(outputs)
        P, Q = P.detach(), Q.detach()
        V = V.detach() if isinstance(V, torch.Tensor) else (None if V is None else [v.detach() for v in V])
        if self._is_wrapper and self.config.tau_infer is None:
            return self.model.decode((P, Q) if V is None else (P, Q, V)).bottom_mask
        taus = self.model.validity_taus if self._is_wrapper else 0.0
        return strict_inference(
            P, Q, config=self._val_config, validity_factors=V, validity_taus=taus
        ).bottom_mask

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint dictionary (tensors and plain containers only)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "config_hash": self.config.config_hash(),
            "hashed_fields": self.config.hashed_fields(),
            "history": list(self.history),
            "tau_rng_state": _rng_state(self._rng),
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "best_head_fit_objective": self.best_head_fit_objective,
            "bad_epochs": self._bad_epochs,
            "best_model": self._best_state,
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` to ``path`` atomically (call it on one rank only)."""
        return save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, path: str | Path) -> None:
        """Resume from a checkpoint (``weights_only=True``; config hash must match)."""
        state = load_checkpoint(path, map_location=self.device)
        check_config_hash(state, self.config, source=str(path))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scheduler") is not None:
            if self.scheduler is None:
                raise UnsupportedInputError(
                    f"checkpoint {str(path)!r} holds a scheduler state but SCMTrainer got scheduler=None; "
                    "pass the same kind of scheduler to resume"
                )
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state.get("global_step", 0))
        self.history = list(state.get("history", []))
        if state.get("tau_rng_state") is not None:
            self._rng.setstate(_rng_from_state(state["tau_rng_state"]))
        self.best_epoch = state.get("best_epoch")
        self.best_val_loss = state.get("best_val_loss")
        self.best_head_fit_objective = state.get("best_head_fit_objective")
        self._bad_epochs = int(state.get("bad_epochs", 0))
        self._best_state = state.get("best_model")

    # ------------------------------------------------------------------ one epoch
    def _run_epoch(self) -> dict[str, Any]:
        cfg = self.config
        epoch = self.epoch + 1  # 1-based in records and messages
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
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
                with module.no_sync() if sync else contextlib.nullcontext():
                    loss, targets = self._forward_loss(x, y, status, tau, where)
                    self._check_step_loss(loss, where)
                    (loss / accum if accum > 1 else loss).backward()
                account(loss, targets)
            pending += 1
            if pending == accum:
                taus += tau
                n_steps += 1
                if self._closure:
                    for loss, targets in self._closure_step(group, tau):
                        account(loss, targets)
                    group = []
                else:
                    self._optimizer_step()
                if cfg.head_fit == "step":
                    self._refit_step()
                pending = 0
                tau = lo if lo == hi else self._rng.uniform(lo, hi)
                if cfg.log_every_n_steps and self.global_step % cfg.log_every_n_steps == 0:
                    self._emit(
                        {"event": "step", "epoch": epoch, "step": self.global_step,
                         "loss": float(losses[-1]), "tau_train": taus / max(n_steps, 1)}
                    )
        if pending:  # a partial accumulation group at the end of the epoch
            taus += tau
            n_steps += 1
            if self._closure:
                for loss, targets in self._closure_step(group, tau):
                    account(loss, targets)
            else:
                self._optimizer_step()
            if cfg.head_fit == "step":
                self._refit_step()
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
            sums = D.all_reduce_sum(torch.tensor(sums, dtype=torch.float64, device=stacked.device)).tolist()
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
        if cfg.head_fit == "epoch":
            record["head_fit_objective"] = self._fit_head(epoch).objective_after
        elif cfg.head_fit == "step" and self._last_step_fit is not None:
            record["head_fit_objective"] = self._last_step_fit.objective_after
        if "head_fit_objective" in record and self.val_loader is None:
            self._track_best_fit(record)
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

    def _fit_head(self, epoch: int) -> HeadFitResult:
        """Fit the projective head on the training data (``TrainingConfig.head_fit``); logs a record."""
        cfg = self.config
        result = fit_head(
            self.model,
            self._head_data(),
            max_batches=cfg.head_fit_batches,
            weighting=cfg.head_fit_weighting,
            max_iter=cfg.head_fit_max_iter * (5 if epoch == 0 else 1),
        )
        self._emit({"event": "head_fit", "epoch": epoch, **dataclasses.asdict(result)})
        if cfg.head_fit in ("epoch", "step"):
            raw = self.model.model if self._is_wrapper else self.model
            self._head = dict(raw.named_modules())[result.head]
            self._solved = [p for p in self._head.parameters() if p.requires_grad]
        return result

    def _head_data(self) -> Iterable[Any]:
        """Batches of the head fit: the loader, or (``head_fit="step"``) its batches cached once."""
        if self.config.head_fit != "step":
            return self.train_loader
        if self._head_batches is None:
            with torch.random.fork_rng(devices=[]):  # leave the training shuffle alone
                limit = self.config.head_fit_batches
                self._head_batches = list(itertools.islice(self.train_loader, limit))
        return self._head_batches

    def _refit_step(self) -> None:
        """``head_fit="step"``: solve the head again after an optimiser step (warm start, no log record)."""
        self._last_step_fit = fit_head(
            self.model,
            self._head_data(),
            head=self._head,
            weighting=self.config.head_fit_weighting,
            max_iter=self.config.head_fit_max_iter,
        )

    def _locate_head(self) -> None:
        """Find the head ``head_fit="epoch"``/``"step"`` solves (on the first training batch), without fitting it."""
        with torch.random.fork_rng(devices=[]):  # a shuffled loader draws from torch's RNG: leave it alone
            first = next(iter(self.train_loader), None)
        if first is None:
            raise UnsupportedInputError("SCMTrainer: train_loader yielded no batches")
        x = split_batch(first, "head_fit")[0]
        x = x.to(self.device) if isinstance(x, torch.Tensor) else x
        raw = self.model.model if self._is_wrapper else self.model
        was_training = raw.training
        raw.eval()
        try:
            _name, head = find_head(raw, x)
        finally:
            raw.train(was_training)
        self._head = head
        self._solved = [p for p in head.parameters() if p.requires_grad]

    def _drop_solved_grads(self) -> None:
        """``head_fit="epoch"``/``"step"``: the head is solved, not descended (variable projection)."""
        for p in self._solved:
            p.grad = None

    def _forward_loss(self, x: Any, y: torch.Tensor, status: Any, tau: float, where: str) -> tuple[torch.Tensor, Any]:
        """Forward one training micro-batch and return ``(loss, lifted targets)``."""
        outputs = self._train_module(x) if not self._is_wrapper or self._distributed else self.model.raw(x)
        loss, _n, _outputs, targets = self._loss(outputs, y, status, tau, where)
        return loss, targets

    def _check_step_loss(self, loss: torch.Tensor, where: str) -> None:
        if self.config.check_finite == "step" and not bool(torch.isfinite(loss)):
            raise LossValueError(
                f"{where}: the loss is {loss.item()} (not finite); the optimiser step was "
                "not applied. Check the targets (NaN in finite rows?), the model's P/Q, or "
                "the loss (a gamma > 0 avoids 0/0)"
            )

    def _closure_step(
        self, group: list[tuple[Any, torch.Tensor, Any, str]], tau: float
    ) -> list[tuple[torch.Tensor, Any]]:
        """One step of a closure optimiser over an accumulation group; returns the first evaluation.

        The closure's objective is the mean of the group's micro-batch losses
        (averaged across ranks under DDP); gradient clipping applies inside it.
        """
        first = FirstEvaluation()
        module = self._train_module
        k = len(group)

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for j, (x, y, status, where) in enumerate(group):
                sync = self._distributed and j + 1 < k
                with module.no_sync() if sync else contextlib.nullcontext():
                    loss, targets = self._forward_loss(x, y, status, tau, where)
                    if not first.done:
                        self._check_step_loss(loss, where)
                    (loss / k if k > 1 else loss).backward()
                first.add(loss, targets)
                total = total + loss.detach().double() / k
            first.done = True
            if self._solved:
                self._drop_solved_grads()
            if self._distributed:
                total = D.all_reduce_sum(total.reshape(1)).reshape(()) / D.world_size()
            if self.config.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
            return total

        self.optimizer.step(closure)
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        if self.scheduler is not None and self.config.scheduler_interval == "step" and not self._plateau:
            self.scheduler.step()
        if not first.done:
            raise UnsupportedInputError(
                f"{type(self.optimizer).__name__}.step(closure) never called the closure; the trainer "
                "passes a closure only to optimisers that require one"
            )
        return first.records

    def _optimizer_step(self) -> None:
        if self._solved:
            self._drop_solved_grads()
        if self.config.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        if self.scheduler is not None and self.config.scheduler_interval == "step" and not self._plateau:
            self.scheduler.step()

    def _loss(
        self, outputs: Any, y: torch.Tensor, status: Any, tau: float, where: str
    ) -> tuple[torch.Tensor, int, Any, Any]:
        """Lift, check and call the loss; returns ``(loss, rows used, outputs, targets)``."""
        P, _Q, _V = split_model_outputs(outputs)
        targets = lift_batch_targets(y, status, where)
        y_n, y_d = targets
        check_target_shape(P, y_n, where)
        semantic = isinstance(targets, SemanticTargets)
        if self._unreachable:
            singular = (y_d == 0) & targets.loss_mask if semantic else (y_d == 0)
            if bool(singular.any()):
                raise BottomUnreachableError(
                    f"{where}: {int(singular.sum())} target rows have Y_d = 0 (bottom or +-inf), but "
                    f"layer {', '.join(self._unreachable)} has can_reach_bottom = False: its Q is never "
                    "0, so these targets can never be fitted. Use a layer whose Q can reach zero "
                    "(e.g. SCMRationalLayer, AngularProjectiveHead) or relabel/drop these rows"
                )
        n = y_n.numel()
        call_outputs, call_targets = outputs, targets
        if semantic and not self._mask_aware:
            keep = targets.loss_mask
            if not bool(keep.all()):
                call_outputs, call_targets = select_rows(outputs, targets, keep)
                n = call_targets.y_n.numel()
        if self._pass_tau:
            loss = self.loss_fn(call_outputs, call_targets, tau_train=tau)
        else:
            loss = self.loss_fn(call_outputs, call_targets)
        if not isinstance(loss, torch.Tensor):
            raise LossValueError(
                f"{where}: loss_fn returned {type(loss).__name__}; it must return a scalar torch.Tensor "
                "(e.g. a .mean() of per-row losses) so that it can be backpropagated"
            )
        if loss.numel() != 1:
            raise LossValueError(
                f"{where}: loss_fn returned a tensor of shape {list(loss.shape)}; it must return a "
                "scalar (0-d) tensor: reduce per-row losses with .mean() or .sum()"
            )
        return loss.reshape(()), n, call_outputs, targets

    def _track_best_fit(self, record: dict[str, Any]) -> None:
        """Without a validation loader, the epoch with the lowest head-fit objective is the best one.

        Adam's steps on the rest of the model are not monotone (the loss spikes
        now and then); ``restore_best`` then returns the best fitted state
        instead of whatever the last epoch left.
        """
        value = record["head_fit_objective"]
        improved = math.isfinite(value) and (
            self.best_head_fit_objective is None or value < self.best_head_fit_objective
        )
        if self._distributed:  # rank 0's objective decides (its head was broadcast), so ranks agree
            flag = torch.tensor([1.0 if improved and self._rank0 else 0.0], device=self.device)
            improved = bool(D.all_reduce_max(flag).item() > 0)
        if improved:
            self.best_head_fit_objective = float(value)
            self.best_epoch = record["epoch"]
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        record["best"] = improved

    def _early_stopping(self, record: dict[str, Any]) -> None:
        val = record.get("val_loss")
        improved = val is not None and math.isfinite(val) and (
            self.best_val_loss is None or val < self.best_val_loss - self.config.early_stopping_min_delta
        )
        if improved:
            self.best_val_loss = float(val)
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

    def _checkpoint(self, record: dict[str, Any]) -> None:
        directory = self.config.checkpoint_dir
        if directory is None or not self._rank0:
            return
        directory = Path(directory)
        state = None
        if self.epoch % self.config.checkpoint_every == 0 or self.epoch == self.config.max_epochs:
            state = self.state_dict()
            save_checkpoint(directory / "last.pt", state)
        if record.get("best"):
            save_checkpoint(directory / "best.pt", state or self.state_dict())

    def _progress_bar(self) -> Any:
        if not self.config.progress or not self._rank0:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.max_epochs, initial=self.epoch, desc="SCMTrainer", unit="epoch")


def _postfix(record: dict[str, Any]) -> dict[str, str]:
    out = {"loss": f"{record['train_loss']:.3g}"}
    if record.get("val_loss") is not None:
        out["val"] = f"{record['val_loss']:.3g}"
    return out


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from_state(state: Any) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (int(version), tuple(int(v) for v in internal), gauss)
