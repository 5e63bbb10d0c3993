"""``zpml explain DIR --input V1,V2``: run a bundle on inputs and explain its bottoms exactly."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from zpml_runtime.cli import options
from zpml_runtime.cli.args import parse_box_option, parse_exact_input
from zpml_runtime.cli.errors import UsageError

__all__ = ["add_parser", "output_parts", "run"]


def add_parser(sub: Any) -> None:
    """Register ``zpml explain``."""
    p = sub.add_parser(
        "explain",
        help="run a bundle on inputs and explain its bottoms exactly; with --box, say where a "
        "bundle or expression can be undefined on a box",
    )
    p.add_argument(
        "dir", metavar="BUNDLE_OR_EXPR",
        help="bundle directory, or (with --box only) an expression such as '1/(x*y - 2)'",
    )
    p.add_argument(
        "--input",
        action="append",
        default=None,
        metavar="V1,V2,...",
        help="values in variable order (repeatable; needs a bundle)",
    )
    p.add_argument(
        "--box", metavar="x=0:1,y=-2:2",
        help="print the certified domain report on this box (exact bounds, every variable)",
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
    import os

    import numpy as np

    from zpml_runtime.cli.domain import bundle_domain, expression_domain, print_domain
    from zpml_runtime.cli.exact import explain_one

    if not args.input and args.box is None:
        raise UsageError(
            "give --input V1,V2,... (inputs of a bundle to explain) or --box x=lo:hi,... "
            "(where it can be undefined) (see 'zpml explain --help')"
        )
    if not args.input and not os.path.isdir(args.dir):  # an expression and its box
        hint = f" ({args.dir!r} is not a bundle directory either)"
        print_domain(expression_domain(args.dir, args.box, hint=hint), "box")
        return 0
    if args.box is not None:
        parse_box_option(args.box)  # a typo fails before validation
    runtime = options.load_quietly(args.dir, options.signing_key(args), args)
    if args.box is not None:
        print_domain(bundle_domain(runtime.metadata, args.box), "box")
        if not args.input:
            return 0
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
