"""Exact evaluation of a compiled bundle's factors at one input (``zpml explain``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from zpml_runtime.cli.output import fraction_text

__all__ = ["exact_factor_values", "explain_agreement", "explain_exact", "explain_one"]

_PROVENANCE = {0: "finite", 1: "fault", 2: "semantic", 3: "mixed"}


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
    exact_bottom, q = explain_exact(fru, point)
    explain_agreement(exact_bottom, bottom, q, rounded, runtime)


def exact_factor_values(
    fru: Any, point: Sequence[Fraction | float]
) -> tuple[list[str], Any]:
    """``(non-finite generators, value)``: ``value(terms)`` is the exact value of a polynomial
    at ``point`` (parameters at their exact binary value), or None when a term uses a
    non-finite generator."""
    from zpml_runtime.bundle.exact import eval_terms_exact

    gens = fru.generator_values(point)
    bad = {i for i, v in enumerate(gens) if not isinstance(v, Fraction) and not math.isfinite(v)}
    exact = [Fraction(v) if i not in bad else Fraction(0) for i, v in enumerate(gens)]

    def value(terms: Any) -> Fraction | None:
        if any(e and i in bad for exps, _ in terms for i, e in enumerate(exps)):
            return None
        return eval_terms_exact(terms, exact)

    return [fru.generators[i] for i in sorted(bad)], value


def explain_exact(fru: Any, point: Sequence[Fraction | float]) -> tuple[bool, Fraction | None]:
    """Print every provenance factor evaluated exactly; return (exactly bottom, exact Q)."""
    names, value = exact_factor_values(fru, point)
    if names:
        print(
            f"  exact: {', '.join(names)} non-finite: a fault (every value using it is non-finite)"
        )
    bottomed = []
    print("  denominator factors (exact at the decimal input):")
    if not fru.factors:
        print("    none (no division)")
    for f in fru.factors:
        v = value(f.terms)
        where = "Q" if not f.retained else f"validity output {f.output_index}"
        if v is None or v == 0:
            bottomed.append(f)
        text = "non-finite" if v is None else fraction_text(v)
        mark = "  <- bottom" if v is None or v == 0 else ""
        print(f"    #{f.index} {f.factor} = {text}  [{f.kind}, in {where}]{mark}")
    q, p = value(fru.denominator_terms), value(fru.numerator_terms)
    # a fault needs P, Q or a factor to use the non-finite input (docs/semantics.md section 3)
    fault = p is None or q is None or any(value(f.terms) is None for f in bottomed)
    if fault:
        shown = "non-finite" if q is None else fraction_text(q)
        print(f"  exact: Q = {shown}; strict value = bottom (fault)")
    elif bottomed or q == 0:
        print(f"  exact: Q = {fraction_text(q)}; strict value = bottom")
    else:
        assert p is not None and q is not None
        print(f"  exact: Q = {fraction_text(q)}; strict value P/Q = {fraction_text(p / q)}")
    if bottomed:
        print("  bottomed denominators:")
        for f in bottomed:
            for o in f.occurrences:
                print(
                    f"    {o.get('source')}  at {o.get('path')}  ({o.get('kind')}, factor {f.factor})"
                )
    else:
        print("  bottomed denominators: none")
    return bool(fault or bottomed or q == 0), q


def explain_agreement(
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
    tau = float(runtime.metadata["inference_config"]["tau_infer"])
    if q is not None and abs(q) < Fraction(tau):
        print(f"  note: |Q| < tau_infer={tau!r}: bottom by threshold, not by an exact zero")
    else:
        print(
            f"  note: no exact zero: bottom from a validity threshold, from evaluating in "
            f"{dtype} (rounding/overflow){' at the rounded input' if rounded else ''}"
        )
