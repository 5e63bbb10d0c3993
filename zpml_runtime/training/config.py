"""``TrainingConfig``: validated, frozen settings of :class:`~zpml_runtime.training.SCMTrainer`."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from zpml_core.config import check_threshold
from zpml_core.resolution import check_order

from ..errors import InvalidConfigError, UnsupportedInputError
from .errors import UnknownConfigFieldError

__all__ = ["HASHED_FIELDS", "HEAD_FIT_FIELDS", "TrainingConfig", "UnknownConfigFieldError"]


#: Fields that change the optimisation trajectory; their hash is stored in
#: checkpoints and checked on resume. ``max_epochs`` is left out on purpose so
#: that a finished run can be resumed for more epochs.
HASHED_FIELDS = (
    "tau_train_min",
    "tau_train_max",
    "tau_infer",
    "gradient_accumulation_steps",
    "grad_clip_norm",
    "early_stopping_patience",
    "early_stopping_min_delta",
    "seed",
    "scheduler_interval",
)

#: Fields hashed in addition when ``head_fit != "off"`` (so the hash of a config without
#: head fitting is the same as before these fields existed).
HEAD_FIT_FIELDS = ("head_fit", "head_fit_batches", "head_fit_max_iter", "head_fit_weighting")

_CHOICES = {
    "head_fit": ("off", "init", "epoch", "step"),
    "head_fit_weighting": ("uniform", "relative"),
    "scheduler_interval": ("epoch", "step"),
    "check_finite": ("epoch", "step"),
    "distributed": ("auto", "off"),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(v: Any, field: str, minimum: int, optional: bool = False) -> None:
    if optional and v is None:
        return
    if not _is_int(v) or v < minimum:
        extra = " or None" if optional else ""
        raise InvalidConfigError(
            f"TrainingConfig.{field}={v!r}: expected an integer >= {minimum}{extra}"
        )


def _float(v: Any, field: str, *, positive: bool = False, optional: bool = False) -> None:
    if optional and v is None:
        return
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > 0 if positive else v >= 0)
    if not ok:
        bound = "> 0" if positive else ">= 0"
        extra = " or None" if optional else ""
        raise InvalidConfigError(
            f"TrainingConfig.{field}={v!r}: expected a finite number {bound}{extra}"
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Settings of :class:`~zpml_runtime.training.SCMTrainer` (keyword-only, validated, frozen).

    Attributes:
        max_epochs: number of passes over ``train_loader`` (``>= 0``).
        tau_train_min, tau_train_max: each optimiser step draws ``tau_train``
            uniformly from ``[tau_train_min, tau_train_max]`` (seeded by ``seed``)
            and hands it to the loss when the loss accepts ``tau_train``.
        tau_infer: threshold used for the validation coverage (``|Q| >= tau_infer``);
            ``None`` takes it from an ``SCMInferenceWrapper`` model (else ``0``).
            Must not exceed ``tau_train_min``.
        val_loader: iterable of validation batches (same layout as training), or ``None``.
        gradient_accumulation_steps: micro-batches per optimiser step (``>= 1``).
        grad_clip_norm: clip the global gradient L2 norm to this value (``None``: off).
        early_stopping_patience: stop after this many epochs without a validation
            improvement larger than ``early_stopping_min_delta`` (needs ``val_loader``).
        restore_best: at the end of ``fit()``, load the parameters of the epoch with
            the lowest validation loss (with ``val_loader``), or without one and
            with ``head_fit`` ``"epoch"``/``"step"``, the lowest head-fit
            objective on the training data.
        log_hook: called with every history record (a dict) on rank 0.
        logger: a :class:`~zpml_runtime.logging.JsonlLogger` receiving the same records.
        log_every_n_steps: also emit a ``"step"`` record every n optimiser steps
            (each costs a host sync; ``None``: per-epoch records only).
        progress: show a tqdm progress bar (rank 0 only).
        seed: seeds the trainer's own ``tau_train`` generator (not torch's global RNG).
        checkpoint_dir: write ``last.pt`` every ``checkpoint_every`` epochs and
            ``best.pt`` on validation improvement (rank 0 only).
        resume_from: a checkpoint file to resume from (config hash checked).
        scheduler_interval: call ``scheduler.step()`` per ``"epoch"`` or per optimiser ``"step"``.
        check_finite: detect a non-finite loss at the end of each ``"epoch"`` (one
            host sync per epoch; the error still names the step) or at every
            ``"step"`` (before the optimiser applies it; one sync per step).
        distributed: ``"auto"`` wraps the model in DDP and shards a plain
            ``DataLoader`` when ``torch.distributed`` is initialised with more
            than one process; ``"off"`` never does.
        head_fit: fit the model's projective head from data with the rest of
            the model fixed (:func:`~zpml_runtime.training.fit_head`):
            ``"init"`` once before the first epoch, ``"epoch"`` also after every
            epoch, ``"step"`` after every optimiser step (variable projection;
            with ``"epoch"`` and ``"step"`` the optimiser never updates the
            head), ``"off"`` (default) never.
        head_fit_batches: batches of ``train_loader`` the head fit uses (``None``: all;
            ``"step"`` keeps them in memory).
        head_fit_max_iter: L-BFGS evaluations per head fit (five times as many
            for the first fit, before training).
        head_fit_weighting: the head fit's ``implicit_loss`` weighting
            (``"relative"`` default, or ``"uniform"``).
    """

    max_epochs: int = 100
    tau_train_min: float = 1e-4
    tau_train_max: float = 1e-3
    tau_infer: float | None = None
    val_loader: Iterable[Any] | None = None
    gradient_accumulation_steps: int = 1
    grad_clip_norm: float | None = None
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float = 0.0
    restore_best: bool = True
    log_hook: Callable[[dict[str, Any]], Any] | None = None
    logger: Any = None
    log_every_n_steps: int | None = None
    progress: bool = True
    seed: int = 0
    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int = 1
    resume_from: str | os.PathLike[str] | None = None
    scheduler_interval: Literal["epoch", "step"] = "epoch"
    check_finite: Literal["epoch", "step"] = "epoch"
    distributed: Literal["auto", "off"] = "auto"
    head_fit: Literal["off", "init", "epoch", "step"] = "off"
    head_fit_batches: int | None = None
    head_fit_max_iter: int = 20
    head_fit_weighting: Literal["uniform", "relative"] = "relative"

    def __new__(cls, *args: Any, **kwargs: Any) -> TrainingConfig:
        if args:
            raise UnknownConfigFieldError(
                f"TrainingConfig takes keyword arguments only, got {len(args)} positional "
                f"argument(s); write e.g. TrainingConfig(max_epochs={args[0]!r})"
            )
        names = [f.name for f in dataclasses.fields(cls)]
        for key in kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise UnknownConfigFieldError(
                    f"TrainingConfig has no field {key!r}{hint} (fields: {', '.join(names)})"
                )
        return super().__new__(cls)

    def __post_init__(self) -> None:
        _int(self.max_epochs, "max_epochs", 0)
        # thresholds: the one validator of InferenceConfig (exact, rounded up, field named)
        for name in ("tau_train_min", "tau_train_max"):
            object.__setattr__(
                self, name, check_threshold(getattr(self, name), f"TrainingConfig.{name}")
            )
        if self.tau_infer is not None:
            object.__setattr__(
                self, "tau_infer", check_threshold(self.tau_infer, "TrainingConfig.tau_infer")
            )
        if self.tau_train_min > self.tau_train_max:
            raise InvalidConfigError(
                f"TrainingConfig.tau_train_min={self.tau_train_min!r} > tau_train_max="
                f"{self.tau_train_max!r}: tau_train is drawn from [tau_train_min, tau_train_max]; "
                "swap them or set both equal for a fixed tau_train"
            )
        if self.tau_infer is not None:
            check_order(
                self.tau_infer,
                self.tau_train_min,
                owner="TrainingConfig: ",
                train_name="tau_train_min",
            )
        _int(self.gradient_accumulation_steps, "gradient_accumulation_steps", 1)
        _float(self.grad_clip_norm, "grad_clip_norm", positive=True, optional=True)
        _int(self.early_stopping_patience, "early_stopping_patience", 1, optional=True)
        _float(self.early_stopping_min_delta, "early_stopping_min_delta")
        if self.early_stopping_patience is not None and self.val_loader is None:
            raise InvalidConfigError(
                "TrainingConfig.early_stopping_patience is set but val_loader is None: "
                "early stopping monitors the validation loss; pass val_loader=..."
            )
        _int(self.log_every_n_steps, "log_every_n_steps", 1, optional=True)
        _int(self.checkpoint_every, "checkpoint_every", 1)
        _int(self.head_fit_batches, "head_fit_batches", 1, optional=True)
        _int(self.head_fit_max_iter, "head_fit_max_iter", 0)
        if not _is_int(self.seed):
            raise InvalidConfigError(f"TrainingConfig.seed={self.seed!r}: expected an integer")
        for field in ("restore_best", "progress"):
            if not isinstance(getattr(self, field), bool):
                raise InvalidConfigError(
                    f"TrainingConfig.{field}={getattr(self, field)!r}: expected True or False"
                )
        for field, choices in _CHOICES.items():
            if getattr(self, field) not in choices:
                raise InvalidConfigError(
                    f"TrainingConfig.{field}={getattr(self, field)!r}: expected one of {choices}"
                )
        if self.val_loader is not None and not hasattr(self.val_loader, "__iter__"):
            raise UnsupportedInputError(
                f"TrainingConfig.val_loader must be an iterable of batches (e.g. a DataLoader), "
                f"got {type(self.val_loader).__name__}"
            )
        if self.log_hook is not None and not callable(self.log_hook):
            raise UnsupportedInputError(
                f"TrainingConfig.log_hook must be callable(record: dict), got {type(self.log_hook).__name__}"
            )
        if self.logger is not None and not callable(getattr(self.logger, "log", None)):
            raise UnsupportedInputError(
                "TrainingConfig.logger must be a zpml_runtime.logging.JsonlLogger (or have a "
                f".log(record) method), got {type(self.logger).__name__}"
            )
        for field in ("checkpoint_dir", "resume_from"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, str | os.PathLike):
                raise UnsupportedInputError(
                    f"TrainingConfig.{field} must be a path (str or os.PathLike), got {type(value).__name__}"
                )

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def hashed_fields(self) -> dict[str, Any]:
        """The fields covered by :meth:`config_hash` (:data:`HASHED_FIELDS`, plus
        :data:`HEAD_FIT_FIELDS` when ``head_fit`` is on)."""
        fields = HASHED_FIELDS + (HEAD_FIT_FIELDS if self.head_fit != "off" else ())
        return {name: getattr(self, name) for name in fields}

    def config_hash(self) -> str:
        """SHA-256 (hex, 16 chars) of :meth:`hashed_fields`; stored in and checked against checkpoints."""
        blob = json.dumps(self.hashed_fields(), sort_keys=True, allow_nan=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (loaders, hooks and loggers shown by type name)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None or isinstance(v, bool | int | float | str):
                out[f.name] = v
            elif isinstance(v, os.PathLike):
                out[f.name] = os.fspath(v)
            else:
                out[f.name] = type(v).__name__
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """Build from a mapping (unknown keys raise :class:`UnknownConfigFieldError`)."""
        return cls(**dict(values))
