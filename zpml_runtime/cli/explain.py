"""``zpml explain DIR --input V1,V2``: run a bundle on inputs and explain its bottoms exactly."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from zpml_runtime.cli import options
from zpml_runtime.cli.args import parse_exact_input

__all__ = ["add_parser", "output_parts", "run"]


def add_parser(sub: Any) -> None:
    """Register ``zpml explain``."""
    p = sub.add_parser("explain", help="run a bundle on inputs and explain its bottoms exactly")
    p.add_argument("dir", help="bundle directory")
    p.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="V1,V2,...",
        help="values in variable order",
    )
    options.add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    options.add_verification_flags(p)
    p.set_defaults(func=run)


def output_parts(meta: dict[str, Any], out: dict[str, Any]) -> list[tuple[str | None, dict[str, Any], Any, list[str]]]:
    """One ``(label, outputs, exact FRU or None, factor output names)`` per output of a bundle
    (label ``None`` for a single-output bundle; outputs are ``[batch]`` arrays)."""
    from zpml_runtime.bundle.exact import read_metadata_fru
    from zpml_runtime.bundle.multi import expression_views, is_multi, view_outputs

    parts: list[tuple[str | None, dict[str, Any], Any, list[str]]] = []
    if not is_multi(meta):
        return [(None, out, read_metadata_fru(meta), meta["output_order"][6:])]
    if meta.get("expressions") is not None:
        for view, mapping in expression_views(meta):
            parts.append(
                (
                    view["output_name"],
                    view_outputs(out, view, mapping),
                    read_metadata_fru(view),
                    view["output_order"][6:],
                )
            )
        return parts
    for j, name in enumerate(meta["multi_output"]["output_names"]):
        col = {k: (v[:, j] if v.ndim == 2 else v) for k, v in out.items()}
        parts.append((name, col, None, meta["output_order"][6:]))
    return parts


def run(args: argparse.Namespace) -> int:
    """Run ``zpml explain``."""
    import numpy as np

    from zpml_runtime.cli.exact import explain_one

    runtime = options.load_quietly(args.dir, options.signing_key(args), args)
    variables = runtime.variables
    points = [parse_exact_input(text, variables) for text in args.input]
    x = np.array([[float(v) for v in p] for p in points], dtype=np.float64)
    with np.errstate(over="ignore"):  # overflow to inf is reported per value below
        cast = x.reshape(len(points), len(variables)).astype(runtime.input_dtype)
    parts = output_parts(runtime.metadata, runtime.run(cast).as_dict())
    for k, point in enumerate(points):
        typed = [t.strip() for t in args.input[k].split(",")] if variables else []
        shown = ", ".join(f"{v}={t}" for v, t in zip(variables, typed, strict=True))
        print(f"input {k}: {shown or '(no variables)'}")
        rounded = _note_rounding(point, cast[k], typed, variables, runtime.input_dtype)
        for label, values, fru, factor_outputs in parts:
            if label is not None:
                print(f" output {label}:")
            explain_one(values, k, fru, factor_outputs, point, rounded, runtime)
    return 0


def _note_rounding(
    point: Sequence[Fraction | float], seen_row: Any, typed: list[str], variables: Sequence[str], dtype: Any
) -> bool:
    """Print a note per input value the runtime dtype cannot hold; True if any."""
    rounded = False
    for j, v in enumerate(point):
        seen = float(seen_row[j])
        if isinstance(v, Fraction) and (not math.isfinite(seen) or Fraction(seen) != v):
            rounded = True
            print(f"  note: {variables[j]}={typed[j]} is not exact in {dtype}; the runtime saw {seen!r}")
    return rounded
