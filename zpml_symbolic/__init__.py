"""zpml_symbolic: compile rational sympy expressions with explicit undefinedness.

Pipeline: front-end (sympy / text / tracing) -> IR (interned DAG) -> flatten
(exact ``P/Q`` + validity factors + provenance) -> emit (numpy, torch, ONNX).
"""

from zpml_symbolic import ir
from zpml_symbolic.emit import (
    BottomExplanation,
    NumpyEvaluator,
    RationalModule,
    StrictEvaluator,
    lift_float_literals,
    numpy_evaluator,
    strict_evaluator,
    to_onnx,
    to_torch,
)
from zpml_symbolic.errors import (
    BudgetExceededError,
    EmitError,
    InputTypeError,
    InvalidArgumentError,
    IRVerificationError,
    NotRationalError,
    ParseError,
    ZeroProofError,
)
from zpml_symbolic.flatten import (
    BOTTOM,
    Budget,
    DenominatorSource,
    Explanation,
    FlattenedFRU,
    FRUDegrees,
    SourceOccurrence,
    StructuralValidityFailure,
    StructuralValidityOutput,
    StructuralValidityOutputSchema,
    flatten,
)
from zpml_symbolic.frontend import (
    Coefficient,
    from_sympy,
    is_coefficient,
    parse,
    to_sympy,
    trace,
    traced,
)
from zpml_symbolic.graph import to_networkx

__version__ = "0.1.0"

__all__ = [
    "BOTTOM",
    "BottomExplanation",
    "NumpyEvaluator",
    "RationalModule",
    "StrictEvaluator",
    "lift_float_literals",
    "numpy_evaluator",
    "strict_evaluator",
    "to_onnx",
    "to_torch",
    "Budget",
    "BudgetExceededError",
    "Coefficient",
    "DenominatorSource",
    "EmitError",
    "Explanation",
    "FRUDegrees",
    "FlattenedFRU",
    "IRVerificationError",
    "InputTypeError",
    "InvalidArgumentError",
    "NotRationalError",
    "ParseError",
    "SourceOccurrence",
    "StructuralValidityFailure",
    "StructuralValidityOutput",
    "StructuralValidityOutputSchema",
    "ZeroProofError",
    "flatten",
    "from_sympy",
    "ir",
    "is_coefficient",
    "parse",
    "to_networkx",
    "to_sympy",
    "trace",
    "traced",
]
