"""zpml_symbolic: compile rational sympy expressions with explicit undefinedness.

Pipeline: front-end (sympy / text / tracing) -> IR (interned DAG) -> flatten
(exact ``P/Q`` + validity factors + provenance) -> emit (numpy, torch, ONNX).
"""

from typing import TYPE_CHECKING, Any

from zpml_core.version import __version__ as __version__
from zpml_symbolic import ir
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

#: Certified domain analysis (needs numpy): loaded on first use like the emitters.
_DOMAIN_NAMES = ("DomainReport", "domain_report", "parse_box")

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

def __getattr__(name: str) -> Any:
    """The emitters need numpy, torch and onnx: they load on first use (``zpml_symbolic.emit``'s
    own lazy table decides which names exist), so ``import zpml_symbolic`` stays light."""
    import importlib

    if name in _DOMAIN_NAMES:
        value = getattr(importlib.import_module("zpml_symbolic.domain"), name)
        globals()[name] = value
        return value
    emit = importlib.import_module("zpml_symbolic.emit")  # not `from . import emit`: that re-enters here
    if name in emit.LAZY_NAMES:
        value = getattr(emit, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the lazily loaded emitters (``to_torch``, ...) included."""
    import importlib

    emit = importlib.import_module("zpml_symbolic.emit")
    return sorted(set(globals()) | set(emit.LAZY_NAMES) | set(_DOMAIN_NAMES))


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
