"""Re-flatten the expression recorded in a compiled bundle and compare with its exact terms.

The metadata of a compiled bundle holds both the expression text and its
flattened exact terms; the semantic check evaluates the terms. This module
makes sure the two agree: the text goes through the safe parser only
(``zs.parse``: no ``eval``) and the exact flattener, under its budgets.
"""

from __future__ import annotations

from typing import Any


def expression_problems(metadata: dict[str, Any]) -> list[str]:
    """Problems when re-flattening ``fru.expression`` does not give the recorded P, Q, factors."""
    import zpml_symbolic as zs
    from zpml_symbolic.flatten.fru import poly_terms

    fru_meta = metadata.get("fru") or {}
    params = list(metadata.get("parameters") or {})
    try:
        fru = zs.flatten(
            zs.parse(str(fru_meta.get("expression", "")), parameters=params),
            parameters=params,
            variables=own_variables(metadata),
            mode=fru_meta.get("mode", "scm_strict"),
        )
    except (zs.ZeroProofError, ValueError, TypeError, RecursionError, MemoryError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:300]
        return [f"metadata fru.expression cannot be re-flattened: {first}"]
    ngens = len(fru.generators)

    def terms(p: Any) -> list[list[Any]]:
        return [[list(m), c] for m, c in poly_terms(p, ngens)]

    checks = {
        "generators": [s.name for s in fru.generators] == fru_meta.get("generators"),
        "numerator_terms": terms(fru.numerator_poly_ring) == fru_meta.get("numerator_terms"),
        "denominator_terms": terms(fru.denominator_poly_ring) == fru_meta.get("denominator_terms"),
        "validity_factors": [str(v) for v in fru.validity_factors]
        == fru_meta.get("validity_factors"),
        "provenance factor_terms": [p.get("factor_terms") for p in fru.provenance_metadata()]
        == [p.get("factor_terms") for p in fru_meta.get("provenance") or []],
        "provenance retained": [p.get("retained") for p in fru.provenance_metadata()]
        == [p.get("retained") for p in fru_meta.get("provenance") or []],
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        return [
            "re-flattening metadata fru.expression with input.variables "
            f"{metadata['input']['variables']} gives a different {', '.join(bad)} than recorded: "
            "the exact terms (or the variable order) were edited"
        ]
    return []


def own_variables(metadata: dict[str, Any]) -> list[str]:
    """The input variables the recorded FRU is flattened over: all input columns, except in
    an output of a multi-output bundle, whose expression may use only some of them."""
    variables = list(metadata["input"]["variables"])
    gens = (metadata.get("fru") or {}).get("generators")
    if "column" in metadata and isinstance(gens, list):
        return [v for v in variables if v in gens]
    return variables


__all__ = ["expression_problems", "own_variables"]
