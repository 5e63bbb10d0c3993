"""Exact view of a compiled FRU stored in bundle metadata.

The metadata of a compiled bundle holds the exact terms of ``P``, ``Q`` and
every provenance factor (exponent vectors over ``fru.generators`` and
``"p/q"`` coefficient strings). These helpers read them with
:class:`fractions.Fraction` (never evaluated as code) and evaluate them in
float64 (``|Q|`` for reports) or exactly (``zpml explain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from zpml_runtime.bundle.format import BundleError

Terms = tuple[tuple[tuple[int, ...], Fraction], ...]


@dataclass(frozen=True, slots=True)
class FactorInfo:
    """One denominator provenance factor of a compiled FRU, read from metadata."""

    index: int
    factor: str
    kind: str
    retained: bool
    terms: Terms
    occurrences: tuple[dict[str, Any], ...]
    output_index: int | None  # index of its structural validity outputs (retained factors)


@dataclass(frozen=True, slots=True)
class MetadataFRU:
    """The exact polynomials of a compiled-FRU bundle, parsed from ``metadata["fru"]``."""

    expression: str
    generators: tuple[str, ...]
    numerator: str
    denominator: str
    numerator_terms: Terms
    denominator_terms: Terms
    factors: tuple[FactorInfo, ...]
    variables: tuple[str, ...]
    parameters: dict[str, float]

    def generator_values(self, columns: Sequence[Any]) -> list[Any]:
        """Values of the generators: input ``columns`` (in variable order), then parameters."""
        out = []
        for g in self.generators:
            if g in self.variables:
                out.append(columns[self.variables.index(g)])
            elif g in self.parameters:
                out.append(self.parameters[g])
            else:
                raise BundleError(
                    f"metadata fru.generators names {g!r}, which is neither an input variable "
                    f"{list(self.variables)} nor a parameter {sorted(self.parameters)}"
                )
        return out


def _parse_terms(raw: Any, n_gens: int, where: str) -> Terms:
    if not isinstance(raw, list):
        raise BundleError(f"metadata {where} must be a list of [exponents, 'p/q'] terms")
    out = []
    for k, term in enumerate(raw):
        ok = isinstance(term, list) and len(term) == 2 and isinstance(term[1], str)
        exps = term[0] if ok else None
        ok = ok and isinstance(exps, list)
        ok = ok and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in exps)
        # A constant term may carry one zero exponent even with no generators.
        ok = ok and (len(exps) == n_gens or not any(exps))
        if not ok:
            raise BundleError(
                f"metadata {where}[{k}] = {term!r:.80} is not [exponents ({n_gens} non-negative "
                "integers), 'p/q' coefficient]"
            )
        try:
            coefficient = Fraction(term[1])
        except (ValueError, ZeroDivisionError):
            raise BundleError(
                f"metadata {where}[{k}] coefficient {term[1]!r:.40} is not an exact rational 'p/q'"
            ) from None
        out.append((tuple(exps) if len(exps) == n_gens else (0,) * n_gens, coefficient))
    return tuple(out)


def read_metadata_fru(metadata: dict[str, Any]) -> MetadataFRU | None:
    """Parse the exact FRU of a compiled bundle; ``None`` for traced bundles.

    Raises :class:`BundleError` when the ``fru`` section is malformed.
    """
    fru = metadata.get("fru")
    if metadata.get("source") != "compiled_fru" or fru is None:
        return None
    if not isinstance(fru, dict) or not isinstance(fru.get("generators"), list):
        raise BundleError("metadata fru must be an object with a 'generators' list")
    gens = tuple(str(g) for g in fru["generators"])
    schema = metadata.get("structural_validity_output_schema") or {}
    out_index = {
        o.get("factor"): o.get("index")
        for o in schema.get("outputs", [])
        if isinstance(o, dict) and isinstance(o.get("index"), int)
    }
    factors = []
    for i, entry in enumerate(fru.get("provenance") or []):
        if not isinstance(entry, dict):
            raise BundleError(f"metadata fru.provenance[{i}] must be an object")
        retained = bool(entry.get("retained"))
        factors.append(
            FactorInfo(
                index=i,
                factor=str(entry.get("factor")),
                kind=str(entry.get("kind")),
                retained=retained,
                terms=_parse_terms(
                    entry.get("factor_terms"), len(gens), f"fru.provenance[{i}].factor_terms"
                ),
                occurrences=tuple(o for o in entry.get("occurrences") or [] if isinstance(o, dict)),
                output_index=out_index.get(entry.get("factor")) if retained else None,
            )
        )
    params = metadata.get("parameters") or {}
    return MetadataFRU(
        expression=str(fru.get("expression", "")),
        generators=gens,
        numerator=str(fru.get("numerator")),
        denominator=str(fru.get("denominator")),
        numerator_terms=_parse_terms(fru.get("numerator_terms"), len(gens), "fru.numerator_terms"),
        denominator_terms=_parse_terms(
            fru.get("denominator_terms"), len(gens), "fru.denominator_terms"
        ),
        factors=tuple(factors),
        variables=tuple(metadata["input"]["variables"]),
        parameters={str(k): float(v) for k, v in params.items()},
    )


def _to_float(c: Fraction) -> float:
    try:
        return float(c)
    except OverflowError:
        return float("inf") if c > 0 else float("-inf")


def eval_terms_float(terms: Terms, values: Sequence[Any], n: int) -> np.ndarray:
    """Evaluate a polynomial in float64 at ``n`` points (generator ``values``: arrays or scalars)."""
    out = np.zeros(n, dtype=np.float64)
    with np.errstate(all="ignore"):
        for exps, c in terms:
            t = np.full(n, _to_float(c), dtype=np.float64)
            for v, e in zip(values, exps, strict=True):
                if e:
                    t = t * np.power(np.asarray(v, dtype=np.float64), e)
            out = out + t
    return out


def eval_terms_exact(terms: Terms, values: Sequence[Fraction]) -> Fraction:
    """Evaluate a polynomial exactly at one point of rational generator ``values``."""
    total = Fraction(0)
    for exps, c in terms:
        t = c
        for v, e in zip(values, exps, strict=True):
            if e:
                t *= v**e
        total += t
    return total


# ----------------------------------------------------------------- inputs
