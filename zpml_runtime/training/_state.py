"""Trainer state: the checkpoint dictionary of an :class:`~zpml_runtime.training.SCMTrainer`,
its restoration on resume, and the per-epoch ``last.pt``/``best.pt`` files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedInputError
from .checkpoint import CHECKPOINT_FORMAT, check_config_hash, save_checkpoint

if TYPE_CHECKING:
    from .trainer import SCMTrainer

__all__ = ["restore_state", "trainer_state", "write_checkpoints"]


def trainer_state(trainer: SCMTrainer) -> dict[str, Any]:
    """Checkpoint dictionary of ``trainer`` (tensors and plain containers only)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "config_hash": trainer.config.config_hash(),
        "hashed_fields": trainer.config.hashed_fields(),
        "history": list(trainer.history),
        "tau_rng_state": _rng_state(trainer._rng),
        "best_epoch": trainer.best_epoch,
        "best_val_loss": trainer.best_val_loss,
        "best_head_fit_objective": trainer.best_head_fit_objective,
        "bad_epochs": trainer._bad_epochs,
        "best_model": trainer._best_state,
    }


def restore_state(trainer: SCMTrainer, state: dict[str, Any], source: str) -> None:
    """Load a checkpoint dictionary into ``trainer`` (its config hash must match)."""
    check_config_hash(state, trainer.config, source=source)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if state.get("scheduler") is not None:
        if trainer.scheduler is None:
            raise UnsupportedInputError(
                f"checkpoint {source!r} holds a scheduler state but SCMTrainer got scheduler=None; "
                "pass the same kind of scheduler to resume"
            )
        trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.epoch = int(state["epoch"])
    trainer.global_step = int(state.get("global_step", 0))
    trainer.history = list(state.get("history", []))
    if state.get("tau_rng_state") is not None:
        trainer._rng.setstate(_rng_from_state(state["tau_rng_state"]))
    trainer.best_epoch = state.get("best_epoch")
    trainer.best_val_loss = state.get("best_val_loss")
    trainer.best_head_fit_objective = state.get("best_head_fit_objective")
    trainer._bad_epochs = int(state.get("bad_epochs", 0))
    trainer._best_state = state.get("best_model")


def write_checkpoints(trainer: SCMTrainer, record: dict[str, Any]) -> None:
    """After an epoch (rank 0): ``last.pt`` every ``checkpoint_every`` epochs and at the
    end, ``best.pt`` when the epoch improved the validation loss."""
    directory = trainer.config.checkpoint_dir
    if directory is None or not trainer._rank0:
        return
    directory = Path(directory)
    state = None
    cfg = trainer.config
    if trainer.epoch % cfg.checkpoint_every == 0 or trainer.epoch == cfg.max_epochs:
        state = trainer.state_dict()
        save_checkpoint(directory / "last.pt", state)
    if record.get("best"):
        save_checkpoint(directory / "best.pt", state or trainer.state_dict())


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from_state(state: Any) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (int(version), tuple(int(v) for v in internal), gauss)
