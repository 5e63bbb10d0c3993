"""``zpml explain DIR --input V1,V2``: run a bundle on inputs and explain its bottoms exactly."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from zpml_runtime.cli import options
from zpml_runtime.cli.args import parse_box_option, parse_exact_input
from zpml_runtime.cli.errors import UsageError
from zpml_runtime.cli.output import fraction_text

__all__ = ["add_parser", "explain_one", "output_parts", "run"]

if TYPE_CHECKING:
    from zpml_runtime.bundle.exact import ExactPoint, MetadataFRU
    from zpml_runtime.bundle.metadata import BundleMetadata

_PROVENANCE = {0: "finite", 1: "fault", 2: "semantic", 3: "mixed"}


def add_parser(sub: Any) -> None:
    """Register ``zpml explain``."""
    p = sub.add_parser(
        "explain",
        help="run a bundle on inputs and explain its bottoms exactly; with --box, say where a "
        "bundle or expression can be undefined on a box",
    )
    p.add_argument(
        "dir",
        metavar="BUNDLE_OR_EXPR",
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
        "--box",
        metavar="x=0:1,y=-2:2",
        help="print the certified domain report on this box (exact bounds, every variable)",
    )
    options.add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    options.add_verification_flags(p)
    p.set_defaults(func=run)


def output_parts(
    meta: BundleMetadata, out: dict[str, Any]
) -> list[tuple[str | None, dict[str, Any], Any, list[str]]]:
    """One ``(label, outputs, exact FRU or None, factor output names)`` per output of a bundle
    (label ``None`` for a single-output bundle; outputs are ``[batch]`` arrays)."""
    from zpml_runtime.bundle.exact import read_metadata_fru
    from zpml_runtime.bundle.metadata import BundleMetadata
    from zpml_runtime.bundle.multi import expression_views, view_outputs

    parts: list[tuple[str | None, dict[str, Any], Any, list[str]]] = []
    if meta.multi_output is None:
        return [(None, out, read_metadata_fru(meta), list(meta.factor_outputs))]
    if meta.expressions is not None:
        for raw, mapping in expression_views(meta.raw):
            view = BundleMetadata.parse(raw)
            parts.append(
                (
                    view.output_name,
                    view_outputs(out, raw, mapping),
                    read_metadata_fru(view),
                    list(view.factor_outputs),
                )
            )
        return parts
    for j, name in enumerate(meta.multi_output.output_names):
        col = {k: (v[:, j] if v.ndim == 2 else v) for k, v in out.items()}
        parts.append((name, col, None, list(meta.factor_outputs)))
    return parts


def run(args: argparse.Namespace) -> int:
    """Run ``zpml explain``."""
    import os

    import numpy as np

    from zpml_runtime.cli.domain import bundle_domain, expression_domain, print_domain

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
        print_domain(bundle_domain(runtime.info, args.box), "box")
        if not args.input:
            return 0
    variables = runtime.variables
    points = [parse_exact_input(text, variables) for text in args.input]
    x = np.array([[float(v) for v in p] for p in points], dtype=np.float64)
    with np.errstate(over="ignore"):  # overflow to inf is reported per value below
        cast = x.reshape(len(points), len(variables)).astype(runtime.input_dtype)
    parts = output_parts(runtime.info, runtime.run(cast).as_dict())
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
    point: Sequence[Fraction | float],
    seen_row: Any,
    typed: list[str],
    variables: Sequence[str],
    dtype: Any,
) -> bool:
    """Print a note per input value the runtime dtype cannot hold; True if any."""
    rounded = False
    for j, v in enumerate(point):
        seen = float(seen_row[j])
        if isinstance(v, Fraction) and (not math.isfinite(seen) or Fraction(seen) != v):
            rounded = True
            print(
                f"  note: {variables[j]}={typed[j]} is not exact in {dtype}; the runtime saw {seen!r}"
            )
    return rounded


def explain_one(
    out: dict[str, Any],
    k: int,
    fru: Any,
    factor_outputs: Sequence[str],
    point: Sequence[Fraction | float],
    rounded: bool,
    runtime: Any,
) -> None:
    """Print the runtime outputs of sample ``k`` and, for compiled bundles, the exact factors."""
    code = int(out["bottom_provenance"][k])
    bottom = bool(out["bottom_mask"][k])
    print(
        f"  runtime ({runtime.input_dtype}): decoded={float(out['decoded'][k])!r} "
        f"bottom={bottom} gap={bool(out['gap_mask'][k])} "
        f"fault={bool(out['fault_mask'][k])} "
        f"semantic_bottom={bool(out['semantic_bottom_mask'][k])} "
        f"provenance={code} ({_PROVENANCE.get(code, '?')})"
    )
    for name in factor_outputs:
        print(f"  {name} = {out[name][k].item()!r}")
    if fru is None:
        print("  exact factors: n/a (traced model: no exact terms in the metadata)")
        return
    exact = _print_exact(fru, point)
    _print_agreement(exact.bottom, bottom, exact.denominator, rounded, runtime)


def _print_exact(fru: MetadataFRU, point: Sequence[Fraction | float]) -> ExactPoint:
    """Print every provenance factor evaluated exactly, and the exact verdict."""
    from zpml_runtime.bundle.exact import evaluate_point

    ev = evaluate_point(fru, point)
    if ev.nonfinite:
        print(
            f"  exact: {', '.join(ev.nonfinite)} non-finite: a fault (every value using it is "
            "non-finite)"
        )
    print("  denominator factors (exact at the decimal input):")
    if not fru.factors:
        print("    none (no division)")
    for f, v in zip(fru.factors, ev.factors, strict=True):
        where = "Q" if not f.retained else f"validity output {f.output_index}"
        text = "non-finite" if v is None else fraction_text(v)
        mark = "  <- bottom" if v is None or v == 0 else ""
        print(f"    #{f.index} {f.factor} = {text}  [{f.kind}, in {where}]{mark}")
    q, p = ev.denominator, ev.numerator
    if ev.fault:
        shown = "non-finite" if q is None else fraction_text(q)
        print(f"  exact: Q = {shown}; strict value = bottom (fault)")
    else:
        assert p is not None and q is not None
        if ev.bottomed or q == 0:
            print(f"  exact: Q = {fraction_text(q)}; strict value = bottom")
        else:
            print(f"  exact: Q = {fraction_text(q)}; strict value P/Q = {fraction_text(p / q)}")
    if ev.bottomed:
        print("  bottomed denominators:")
        for i in ev.bottomed:
            f = fru.factors[i]
            for o in f.occurrences:
                print(
                    f"    {o.get('source')}  at {o.get('path')}  ({o.get('kind')}, factor {f.factor})"
                )
    else:
        print("  bottomed denominators: none")
    return ev


def _print_agreement(
    exact_bottom: bool, bottom: bool, q: Fraction | None, rounded: bool, runtime: Any
) -> None:
    """Say why the runtime and the exact evaluation differ, when they do."""
    if exact_bottom == bottom:
        return
    dtype = runtime.input_dtype
    if exact_bottom:
        why = (
            "the runtime evaluated at the rounded input, which is off the zero set"
            if rounded
            else f"rounding in {dtype}; please report this with the bundle"
        )
        print(f"  note: exactly bottom, but the runtime accepted it: {why}")
        return
    tau = runtime.info.inference_config.tau_infer
    if q is not None and abs(q) < Fraction(tau):
        print(f"  note: |Q| < tau_infer={tau!r}: bottom by threshold, not by an exact zero")
    else:
        print(
            f"  note: no exact zero: bottom from a validity threshold, from evaluating in "
            f"{dtype} (rounding/overflow){' at the rounded input' if rounded else ''}"
        )
