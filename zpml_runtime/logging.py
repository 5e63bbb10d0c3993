"""Append-only JSON-lines event logging (``zeroproofml.utils.logging`` in the seeds).

Not to be confused with the standard library :mod:`logging` (which this module
does not shadow for absolute imports).
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UnsupportedInputError

__all__ = ["JsonlLogger", "dumps_strict", "to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types; NaN and +/-Inf become ``None``.

    Handles mappings (keys become strings), sequences, sets (sorted), numpy and
    torch scalars/arrays, enums (their value), paths and dataclass-like objects
    with ``to_dict()``/``to_metadata()``. Anything else raises
    :class:`~zpml_runtime.errors.UnsupportedInputError` naming the type.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu()
        if obj.dtype == torch.bfloat16:
            obj = obj.float()
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.ndarray | np.generic):
        if obj.dtype.name == "bfloat16":
            obj = obj.astype(np.float32)
        return to_jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    for method in ("to_dict", "to_metadata"):
        fn = getattr(obj, method, None)
        if callable(fn):
            return to_jsonable(fn())
    raise UnsupportedInputError(f"cannot serialise {type(obj).__name__} to JSON: {obj!r:.80}")


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` output, never emitting NaN/Infinity tokens."""
    return json.dumps(to_jsonable(obj), allow_nan=False, **kwargs)


class JsonlLogger:
    """Append-only JSON-lines logger, safe to call from several threads.

    Each :meth:`log` call writes one line (one ``write`` of the whole line to a
    file opened in append mode, under a lock), so lines never interleave within
    a process, and appends from several processes do not overwrite each other.
    NaN/Inf values are written as ``null``.

    Args:
        path: the ``.jsonl`` file; parent directories are created.
        add_timestamp: add ``"timestamp"`` (UTC ISO-8601) when the event has none.
    """

    def __init__(self, path: str | os.PathLike[str], *, add_timestamp: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.add_timestamp = add_timestamp
        self._lock = threading.Lock()

    def log(self, event: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
        """Append one event (a mapping and/or keyword fields, e.g. ``event="route"``) as a JSON line."""
        if event is not None and not isinstance(event, Mapping):
            raise UnsupportedInputError(
                f"JsonlLogger.log expects a mapping of fields, got {type(event).__name__}"
            )
        record: dict[str, Any] = {}
        if self.add_timestamp and "timestamp" not in (event or {}) and "timestamp" not in fields:
            record["timestamp"] = _dt.datetime.now(_dt.UTC).isoformat()
        record.update(event or {})
        record.update(fields)
        line = dumps_strict(record) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    __call__ = log

    def read(self) -> list[dict[str, Any]]:
        """All events logged so far (for tests and audits)."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def __repr__(self) -> str:
        return f"JsonlLogger({str(self.path)!r})"
