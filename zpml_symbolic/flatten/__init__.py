"""IR -> FlattenedFRU: exact polynomials, validity factors and provenance."""

from zpml_symbolic.flatten.budget import Budget
from zpml_symbolic.flatten.driver import MODES, flatten
from zpml_symbolic.flatten.fru import (
    Explanation,
    FlattenedFRU,
    FRUDegrees,
    StructuralValidityFailure,
)
from zpml_symbolic.flatten.provenance import DenominatorSource, SourceOccurrence
from zpml_symbolic.flatten.schema import StructuralValidityOutput, StructuralValidityOutputSchema
from zpml_symbolic.flatten.values import BOTTOM

__all__ = [
    "BOTTOM",
    "MODES",
    "Budget",
    "DenominatorSource",
    "Explanation",
    "FRUDegrees",
    "FlattenedFRU",
    "SourceOccurrence",
    "StructuralValidityFailure",
    "StructuralValidityOutput",
    "StructuralValidityOutputSchema",
    "flatten",
]
