"""Outputs of ``zpml run``: which factor bottomed on each row, and the ``.npz``/``.csv`` file."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

__all__ = ["explain_rows", "row_reason", "write_predictions"]


def row_reason(fru: Any, point: Sequence[float], out: dict[str, Any], k: int) -> tuple[int, str]:
    """``(factor index or -1, reason)`` for the bottom row ``k`` of one output.

    ``point`` is the row the runtime evaluated (in its dtype); the provenance
    factors of a compiled bundle are evaluated exactly there, so an exact zero
    names its factor; otherwise the masks tell a fault, a validity threshold or
    ``|Q| < tau_infer`` apart.
    """
    import math

    from zpml_runtime.bundle.exact import evaluate_point

    if fru is not None and all(math.isfinite(v) for v in point):
        values = evaluate_point(fru, [Fraction(v) for v in point]).factors
        for f, v in zip(fru.factors, values, strict=True):
            if v == 0:
                where = f"validity output {f.output_index}" if f.retained else "Q"
                src = "; ".join(f"{o.get('source')} at {o.get('path')}" for o in f.occurrences)
                return f.index, f"factor #{f.index} {f.factor} = 0 exactly (in {where}; {src})"
    if bool(out["fault_mask"][k]):
        return -1, "fault: a non-finite input or an overflow in evaluation"
    masks = [name for name in out if name.endswith("_semantic_bottom_mask") and bool(out[name][k])]
    if masks:
        return -1, f"validity factor below its threshold ({', '.join(masks)})"
    if fru is None:
        return -1, "Q below tau_infer (traced model: no exact factors in the metadata)"
    return -1, "|Q| < tau_infer (no factor is exactly 0 at this input)"


def explain_rows(
    runtime: Any, x: Any, outputs: dict[str, Any], *, progress: bool
) -> dict[str, Any]:
    """``bottom_factor`` (int) and ``bottom_reason`` (str) arrays shaped like ``bottom_mask``."""
    import numpy as np

    from zpml_runtime.cli.explain import output_parts
    from zpml_runtime.cli.output import progress as bar_for

    parts = output_parts(runtime.info, outputs)
    n = x.shape[0]
    factor = np.full((n, len(parts)), -1, dtype=np.int64)
    reasons: list[list[str]] = [[""] * len(parts) for _ in range(n)]
    todo = [
        (j, np.flatnonzero(np.asarray(out["bottom_mask"])))
        for j, (_, out, _, _) in enumerate(parts)
    ]
    with bar_for(sum(len(rows) for _, rows in todo), enabled=progress) as bar:
        for j, rows in todo:
            _, out, fru, _ = parts[j]
            for k in rows:
                factor[k, j], reasons[k][j] = row_reason(fru, [float(v) for v in x[k]], out, int(k))
                bar.update(1)
    width = max([1, *(len(r) for row in reasons for r in row)])
    text = np.array(reasons, dtype=f"<U{width}").reshape(n, len(parts))
    if len(parts) == 1:
        return {"bottom_factor": factor[:, 0], "bottom_reason": text[:, 0]}
    return {"bottom_factor": factor, "bottom_reason": text}


def _columns(outputs: dict[str, Any], result_names: Sequence[str]) -> list[tuple[str, Any]]:
    """One ``(header, 1-D array)`` per CSV column (``name[output]`` for multi-output arrays)."""
    cols: list[tuple[str, Any]] = []
    for name, value in outputs.items():
        if value.ndim == 1:
            cols.append((name, value))
        else:
            for j in range(value.shape[1]):
                label = result_names[j] if j < len(result_names) else str(j)
                cols.append((f"{name}[{label}]", value[:, j]))
    return cols


def _texts(column: Any) -> list[str]:
    """CSV text of one column: masks as 0/1, floats as the shortest text that reads back to
    the same value of their dtype, integers and strings as they are."""
    import numpy as np

    if column.dtype == np.bool_:
        return np.where(column, "1", "0").tolist()
    if column.dtype == np.float64:
        return [repr(v) for v in column.tolist()]
    if column.dtype.kind == "f":  # the shortest text of the float32 value (reads back exactly)
        return column.astype(str).tolist()
    return [str(v) for v in column.tolist()]


def write_predictions(path: str, outputs: dict[str, Any], result_names: Sequence[str]) -> None:
    """Write ``outputs`` to ``path`` (``.npz``: one array per output, no pickled objects;
    ``.csv``: a header row and one row per input), atomically (temporary file + rename)."""
    import io

    import numpy as np

    from zpml_runtime.cli.userfiles import write_atomically

    def npz(fh: Any) -> None:
        savez: Any = np.savez  # arrays by keyword: mypy takes them for savez's own options
        savez(fh, **{k: np.asarray(v) for k, v in outputs.items()})

    def text(fh: Any) -> None:
        cols = _columns(outputs, result_names)
        out = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        writer = csv.writer(out)
        writer.writerow([h for h, _ in cols])
        writer.writerows(zip(*(_texts(c) for _, c in cols), strict=True))
        out.flush()
        out.detach()  # the binary file stays open: write_atomically closes it

    write_atomically(path, npz if path.lower().endswith(".npz") else text)
