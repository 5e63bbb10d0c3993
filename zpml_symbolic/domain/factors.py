"""Collect every factor whose zeros are bottom, with its provenance, from flattened expressions.

The strict value of a :class:`~zpml_symbolic.flatten.FlattenedFRU` is bottom
exactly where ``Q`` or a retained validity factor vanishes, so the factors to
decide are the irreducible factors of ``Q`` (role ``"denominator"``, with
their multiplicity) and the retained validity factors (role ``"validity"``).
Each carries the divisions of the user's tree it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from zpml_symbolic.domain.polys import Poly
from zpml_symbolic.domain.report import Role
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.flatten.provenance import DenominatorSource
from zpml_symbolic.flatten.text import expr_text


@dataclass(frozen=True)
class CollectedFactor:
    """One factor to decide: canonical polynomial over the FRU's generators, role and origin."""

    poly: Poly
    text: str
    role: Role
    multiplicity: int
    output: int
    provenance: tuple[dict[str, Any], ...]


def source_record(src: DenominatorSource) -> dict[str, Any]:
    """JSON-ready provenance of one merged division source."""
    return {
        "kind": src.kind,
        "kinds": list(src.kinds),
        "retained": src.retained,
        "source": src.source,
        "path": src.path,
        "occurrences": [
            {
                "kind": o.kind,
                "source": o.source,
                "path": o.path,
                "node_id": o.node_id,
                "divisor": o.divisor,
            }
            for o in src.occurrences
        ],
    }


def collect_factors(frus: Sequence[FlattenedFRU]) -> list[CollectedFactor]:
    """The factors of ``Q`` and the retained validity factors of each FRU, in order."""
    out: list[CollectedFactor] = []
    for k, fru in enumerate(frus):
        names = tuple(s.name for s in fru.generators)
        gens = fru.generators
        sources = fru.denominator_provenance

        def origin(
            expr: sp.Expr, sources: tuple[DenominatorSource, ...] = sources
        ) -> tuple[dict[str, Any], ...]:
            return tuple(source_record(s) for s in sources if s.factor == expr)

        for expr, m in fru.denominator_factors:
            out.append(
                CollectedFactor(
                    Poly.from_sympy(expr, gens),
                    expr_text(expr),
                    "denominator",
                    int(m),
                    k,
                    origin(expr),
                )
            )
        for src in fru.strict_validity_sources:
            expr = src.factor
            out.append(
                CollectedFactor(
                    Poly.from_sympy(expr, gens),
                    expr_text(expr),
                    "validity",
                    1,
                    k,
                    (source_record(src),),
                )
            )
        if fru.always_bottom and not any(f.poly.is_zero() and f.output == k for f in out):
            zero = [s for s in sources if s.factor == 0]
            out.append(
                CollectedFactor(
                    Poly.constant(0, names),
                    "0",
                    "validity",
                    1,
                    k,
                    tuple(source_record(s) for s in zero),
                )
            )
    return out


__all__ = ["CollectedFactor", "collect_factors", "source_record"]
