"""Trainer checkpoints: ``state_dict`` only, written atomically, read with ``weights_only=True``.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and
dicts (no pickled objects), so :func:`torch.load` runs with
``weights_only=True`` and a file from an untrusted source cannot execute code.
It records the :meth:`TrainingConfig.config_hash` and the hashed fields;
resuming under a different configuration raises
:class:`~zpml_runtime.training.errors.CheckpointMismatchError` naming the
fields that differ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import UnsupportedInputError
from .config import TrainingConfig
from .errors import CheckpointMismatchError

__all__ = ["CHECKPOINT_FORMAT", "check_config_hash", "load_checkpoint", "save_checkpoint"]

#: ``format`` entry of every checkpoint written by this version.
CHECKPOINT_FORMAT = "zpml.training.checkpoint/1"

_REQUIRED = ("format", "model", "optimizer", "epoch", "config_hash")


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write ``state`` (a checkpoint dict) to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its layout."""
    path = Path(path)
    if not path.is_file():
        raise UnsupportedInputError(
            f"checkpoint {str(path)!r} does not exist or is not a file; pass the path of a "
            "'last.pt'/'best.pt' written by SCMTrainer"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling refusals, truncated files, ...
        raise CheckpointMismatchError(
            f"checkpoint {str(path)!r} cannot be read with torch.load(weights_only=True): {e}; "
            "only checkpoints holding tensors and plain containers are accepted"
        ) from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointMismatchError(
            f"{str(path)!r} is not an SCMTrainer checkpoint (format {found!r}, expected "
            f"{CHECKPOINT_FORMAT!r})"
        )
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointMismatchError(f"checkpoint {str(path)!r} lacks entries {missing}")
    return state


def check_config_hash(state: Mapping[str, Any], config: TrainingConfig, *, source: str) -> None:
    """Raise :class:`CheckpointMismatchError` if ``state`` was written under another config."""
    if state["config_hash"] == config.config_hash():
        return
    stored = state.get("hashed_fields") or {}
    now = config.hashed_fields()
    diff = [
        f"{k}: checkpoint {stored.get(k)!r} vs now {now[k]!r}"
        for k in now
        if stored.get(k) != now[k]
    ]
    detail = "; ".join(diff) if diff else "(fields not recorded)"
    raise CheckpointMismatchError(
        f"checkpoint {source!r} was written with config hash {state['config_hash']} but the "
        f"current TrainingConfig hashes to {config.config_hash()}: {detail}. Resume with the "
        "original settings, or start a new run without resume_from"
    )
