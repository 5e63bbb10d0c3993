"""zpml_symbolic: compile rational sympy expressions with explicit undefinedness.

Pipeline: front-end (sympy / text / tracing) -> IR (interned DAG) -> flatten
(exact ``P/Q`` + validity factors + provenance) -> emit (numpy, torch, ONNX).
"""

from typing import TYPE_CHECKING

from zpml_core._lazy import lazy_exports
from zpml_core.version import __version__ as __version__
from zpml_symbolic import ir
from zpml_symbolic.emit import LAZY_NAMES as _EMIT_NAMES
from zpml_symbolic.errors import (
    BudgetExceededError,
    ConstantNameWarning,
    EmitError,
    InputTypeError,
    InvalidArgumentError,
    IRVerificationError,
    NotRationalError,
    NotRationalTextError,
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

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from zpml_symbolic.domain import DomainReport, domain_report, parse_box
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

#: Loaded on first use: the emitters need numpy, torch and onnx (``zpml_symbolic.emit``'s own
#: lazy table decides which module each comes from), the certified domain analysis numpy;
#: so ``import zpml_symbolic`` stays light.
_LAZY = {
    **dict.fromkeys(sorted(_EMIT_NAMES), "zpml_symbolic.emit"),
    **dict.fromkeys(("DomainReport", "domain_report", "parse_box"), "zpml_symbolic.domain"),
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


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
    "ConstantNameWarning",
    "DomainReport",
    "DenominatorSource",
    "EmitError",
    "Explanation",
    "FRUDegrees",
    "FlattenedFRU",
    "IRVerificationError",
    "InputTypeError",
    "InvalidArgumentError",
    "NotRationalError",
    "NotRationalTextError",
    "ParseError",
    "SourceOccurrence",
    "StructuralValidityFailure",
    "StructuralValidityOutput",
    "StructuralValidityOutputSchema",
    "ZeroProofError",
    "domain_report",
    "flatten",
    "from_sympy",
    "ir",
    "is_coefficient",
    "parse",
    "parse_box",
    "to_networkx",
    "to_sympy",
    "trace",
    "traced",
]
