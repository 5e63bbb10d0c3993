"""``zpml run BUNDLE --inputs X.(npy|csv) --out preds.(npz|csv)``: strict batch inference.

The bundle is validated and loaded exactly as ``load_onnx_runtime_bundle`` does
(``--allow-unverified`` / ``--require-verified`` as for ``inspect``); the rows
run in chunks (a progress bar on stderr for large inputs) and every graph
output is written: ``decoded``, ``bottom_mask``, ``gap_mask``, ``fault_mask``,
``semantic_bottom_mask``, ``bottom_provenance`` and the per-factor outputs.
``--explain`` adds which factor bottomed on each bottom row.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from zpml_runtime.cli import options
from zpml_runtime.cli.errors import CliError, UsageError

__all__ = ["DEFAULT_CHUNK_ROWS", "add_parser", "run"]

#: rows per onnxruntime call
DEFAULT_CHUNK_ROWS = 65536
_OUT_SUFFIXES = (".npz", ".csv")


def add_parser(sub: Any) -> None:
    """Register ``zpml run``."""
    p = sub.add_parser(
        "run", help="run a bundle on a batch file (.npy/.csv) and write every output"
    )
    p.add_argument("dir", metavar="BUNDLE", help="bundle directory")
    p.add_argument(
        "--inputs",
        required=True,
        metavar="X.npy|X.csv",
        help="rows of inputs: a 2-D .npy array [rows, variables] or a CSV file (a header row "
        "naming the variables in any order, or no header and the bundle's variable order)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="PREDS.npz|PREDS.csv",
        help="where to write the outputs (.npz: one array per output; .csv: one column per output)",
    )
    p.add_argument(
        "--explain",
        "--provenance",
        dest="explain",
        action="store_true",
        help="add bottom_factor (index of the provenance factor that is exactly 0, else -1) and "
        "bottom_reason (text) for every bottom row",
    )
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help=f"rows per onnxruntime call (default {DEFAULT_CHUNK_ROWS})",
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show a progress bar on stderr",
    )
    bar.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never show a progress bar (default: shown for more than one chunk "
        "when stderr is a terminal)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    options.add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    options.add_verification_flags(p)
    p.set_defaults(func=run)


def _check_out(path: str, overwrite: bool) -> None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _OUT_SUFFIXES:
        raise UsageError(
            f"--out {path}: expected a .npz or .csv file name, got {suffix or 'no suffix'!r}"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"--out {path}: the directory {parent} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--out {path} is a directory; give a file name ending in {suffix}")
    if os.path.lexists(path) and not overwrite:
        raise CliError(f"{path} already exists; pass --overwrite to replace it")


def run(args: argparse.Namespace) -> int:
    """Run ``zpml run``."""

    from zpml_runtime.cli.predictions import explain_rows, write_predictions
    from zpml_runtime.cli.userfiles import read_batch_table

    if args.chunk_rows < 1:
        raise UsageError(f"--chunk-rows {args.chunk_rows} must be >= 1")
    _check_out(args.out, args.overwrite)
    table = read_batch_table(args.inputs, "--inputs")  # bad files fail before validation
    runtime = options.load_quietly(args.dir, options.signing_key(args), args)
    x = table.arranged(runtime.variables, "--inputs")
    n = x.shape[0]
    cast = _cast(x, runtime.input_dtype)
    chunks = range(0, n, args.chunk_rows)
    show = args.progress if args.progress is not None else len(chunks) > 1 and sys.stderr.isatty()
    outputs = _run_chunks(runtime, cast, chunks, args.chunk_rows, show)
    if args.explain:
        outputs.update(explain_rows(runtime, cast, outputs, progress=show))
    write_predictions(args.out, outputs, runtime.result_names)
    counts = {k: _rows_with(outputs[k]) for k in ("bottom_mask", "gap_mask", "fault_mask")}
    print(
        f"ran {n} row(s) through {runtime.path} ({runtime.input_dtype}, {len(chunks)} chunk(s)): "
        f"{counts['bottom_mask']} with bottom, {counts['gap_mask']} with gap, "
        f"{counts['fault_mask']} with fault"
    )
    print(f"wrote {args.out} ({', '.join(outputs)})")
    return 0


def _rows_with(mask: Any) -> int:
    """Rows where the mask is set (in any output column)."""
    import numpy as np

    m = np.asarray(mask)
    return int(np.count_nonzero(m.reshape(m.shape[0], -1).any(axis=1)))


def _cast(x: Any, dtype: Any) -> Any:
    """``x`` in the bundle's dtype (what the runtime sees); notes values it cannot hold."""
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        cast = x.astype(dtype)
        back = cast.astype(x.dtype)
    changed = int(np.count_nonzero((back != x) & ~(np.isnan(x) & np.isnan(back))))
    if changed:
        print(
            f"note: {changed} input value(s) are not exact in {np.dtype(dtype).name}; "
            "the bundle runs on the rounded values (--explain evaluates those exactly)"
        )
    return cast


def _run_chunks(runtime: Any, x: Any, chunks: range, size: int, show: bool) -> dict[str, Any]:
    """Every output of the bundle over all rows, run ``size`` rows at a time."""
    import numpy as np

    from zpml_runtime.cli.output import progress

    parts: dict[str, list[Any]] = {}
    with progress(x.shape[0], enabled=show) as bar:
        for start in chunks:
            res = runtime.run(x[start : start + size]).as_dict()
            for name, value in res.items():
                parts.setdefault(name, []).append(np.asarray(value))
            bar.update(min(size, x.shape[0] - start))
    return {name: np.concatenate(values, axis=0) for name, values in parts.items()}
