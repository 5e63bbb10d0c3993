"""Re-flatten the expression recorded in a compiled bundle and compare with its exact terms.

The metadata of a compiled bundle holds both the expression text and its
flattened exact terms; the semantic check evaluates the terms. This module
makes sure the two agree: the text goes through the safe parser only
(``zs.parse``: no ``eval``) and the exact flattener, under its budgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zpml_runtime.bundle.errors import BundleError


def reflatten(metadata: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """Re-flatten ``fru.expression`` and compare with the recorded exact terms.

    Returns ``(fru, problems)``: the rebuilt FlattenedFRU (``None`` when the text
    cannot be flattened) and the problems (empty when the rebuilt P, Q, factors
    and provenance equal the recorded ones).
    """
    import zpml_symbolic as zs
    from zpml_symbolic.flatten.fru import poly_terms

    fru_meta = metadata.get("fru") or {}
    raw_gens = fru_meta.get("generators")
    gens: list[Any] = raw_gens if isinstance(raw_gens, list) else []
    all_params = list(metadata.get("parameters") or {})
    # parameters in the FRU's own order (its generators), then the ones it does not use
    params = [g for g in gens if g in all_params] + [p for p in all_params if p not in gens]
    try:
        expr = recorded_expression(fru_meta, params)
        fru = zs.flatten(
            expr,
            parameters=params,
            variables=own_variables(metadata),
            mode=fru_meta.get("mode", "scm_strict"),
        )
    except BundleError as e:
        return None, [str(e)]
    except (zs.ZeroProofError, ValueError, TypeError, RecursionError, MemoryError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:300]
        return None, [f"metadata fru.expression cannot be re-flattened: {first}"]
    ngens = len(fru.generators)

    def terms(p: Any) -> list[list[Any]]:
        return [[list(m), c] for m, c in poly_terms(p, ngens)]

    records = _factor_records(fru, terms)

    checks = {
        "generators": [s.name for s in fru.generators] == fru_meta.get("generators"),
        "numerator_terms": terms(fru.numerator_poly_ring) == fru_meta.get("numerator_terms"),
        "denominator_terms": terms(fru.denominator_poly_ring) == fru_meta.get("denominator_terms"),
        "validity_factors": [str(v) for v in fru.validity_factors]
        == fru_meta.get("validity_factors"),
        "provenance factor_terms": [t for t, _ in records]
        == [p.get("factor_terms") for p in fru_meta.get("provenance") or []],
        "provenance retained": [r for _, r in records]
        == [p.get("retained") for p in fru_meta.get("provenance") or []],
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        return fru, [
            "re-flattening metadata fru.expression with input.variables "
            f"{metadata['input']['variables']} gives a different {', '.join(bad)} than recorded: "
            "the exact terms (or the variable order) were edited"
        ]
    missing = [
        g
        for g in fru_meta.get("generators") or []
        if g not in metadata["input"]["variables"] and g not in params
    ]
    if missing:
        return fru, [
            f"metadata fru.generators {missing} are neither input variables "
            f"{metadata['input']['variables']} nor parameters: the variable order was edited"
        ]
    return fru, []


def _factor_records(fru: Any, terms: Any) -> list[tuple[Any, Any]]:
    """(factor terms, retained) of each denominator factor, without printing the sources
    (``provenance_metadata`` renders every occurrence with sympy: ~70 ms)."""
    sources = getattr(fru, "_sources", None)
    if sources is None:  # pragma: no cover - another FlattenedFRU layout
        return [(p.get("factor_terms"), p.get("retained")) for p in fru.provenance_metadata()]
    return [(terms(poly) if poly else [], src.retained) for src, poly in sources]


def recorded_expression(fru_meta: Mapping[str, Any], params: list[str]) -> Any:
    """The expression to flatten: the recorded tree (``fru.ir``, whose text must be
    ``fru.expression``), or the text through the safe parser when no tree is recorded."""
    import zpml_symbolic as zs

    text = str(fru_meta.get("expression", ""))
    if fru_meta.get("ir") is None:
        return zs.parse(text, parameters=params)
    from zpml_runtime.bundle.irjson import load_ir
    from zpml_symbolic.frontend.sympy_in import to_sympy
    from zpml_symbolic.ir.printer import to_text

    root = load_ir(fru_meta["ir"])
    if to_text(root) != text:
        raise BundleError(
            "metadata fru.expression is not the text of the recorded tree fru.ir (one of them "
            "was edited)"
        )
    return to_sympy(root)


def expression_problems(metadata: dict[str, Any]) -> list[str]:
    """Problems when re-flattening ``fru.expression`` does not give the recorded P, Q, factors."""
    return reflatten(metadata)[1]


def own_variables(metadata: Mapping[str, Any]) -> list[str]:
    """The variables the recorded FRU is flattened over, in the FRU's own order.

    That order is the one of ``fru.generators`` (the expression's variables as it
    was flattened), which need not be the input column order: ``variables=``
    may reorder the columns or add columns the expression does not read. The
    graph maps columns to variables by name, so the recorded terms are rebuilt
    over the FRU's own variables and the columns are placed by ``input.variables``.
    """
    columns = list(metadata["input"]["variables"])
    gens = (metadata.get("fru") or {}).get("generators")
    if not isinstance(gens, list):
        return columns
    return [g for g in gens if g in columns]


__all__ = ["expression_problems", "own_variables", "recorded_expression", "reflatten"]
