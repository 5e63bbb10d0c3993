"""The small result records of flattening: factor records, degrees, validity failures, explanations."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy as sp
from sympy.polys.rings import PolyElement

from zpml_symbolic.flatten.provenance import DenominatorSource, SourceOccurrence
from zpml_symbolic.flatten.text import expr_text
from zpml_symbolic.flatten.values import BOTTOM, _Bottom

__all__ = ["Explanation", "FRUDegrees", "FactorRecord", "StructuralValidityFailure"]


@dataclass(frozen=True, slots=True)
class FactorRecord:
    """A raw record from the flattening walk: one factor at one division."""

    factor: PolyElement
    occurrence: SourceOccurrence


@dataclass(frozen=True, slots=True)
class FRUDegrees:
    """Total degrees in the input variables (parameters not counted)."""

    numerator: int
    denominator: int
    validity_factors: tuple[int, ...]
    per_variable: dict[str, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class StructuralValidityFailure:
    """A retained validity factor that fails at a point (docs/semantics.md §3 split)."""

    index: int
    source: DenominatorSource
    value: Fraction | float
    fault: bool
    semantic: bool


@dataclass(frozen=True, slots=True, repr=False)
class Explanation:
    """Why the expression is (or is not) bottom at a point."""

    point: dict[str, str]
    value: sp.Rational | _Bottom
    causes: tuple[DenominatorSource, ...]
    denominator_zero: bool

    @property
    def bottom(self) -> bool:
        """True when the strict value is bottom."""
        return self.value is BOTTOM

    def __repr__(self) -> str:
        return (
            f"Explanation(point={self.point!r}, value={expr_text(self.value, abbreviate=True)}, "
            f"causes={len(self.causes)}, denominator_zero={self.denominator_zero})"
        )

    def __str__(self) -> str:
        at = ", ".join(f"{k}={v}" for k, v in self.point.items())
        if not self.bottom:
            return f"defined at {at}: value {expr_text(self.value, abbreviate=True)}"
        lines = [f"bottom at {at}:"]
        for c in self.causes:
            for o in c.occurrences:
                lines.append(
                    f"  denominator factor {expr_text(c.factor, abbreviate=True)} is zero: {o.kind} of "
                    f"{o.source!r} (divisor {o.divisor!r}) at {o.path}"
                )
        if self.denominator_zero:
            lines.append("  (the reduced denominator Q is zero here too)")
        return "\n".join(lines)
