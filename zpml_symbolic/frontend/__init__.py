"""Front-end: sympy -> IR, the safe string parser, function tracing."""

from zpml_symbolic.frontend.coefficient import Coefficient, is_coefficient
from zpml_symbolic.frontend.decimal_number import DecimalNumber
from zpml_symbolic.frontend.equation import Equation, parse_equation
from zpml_symbolic.frontend.parser import parse
from zpml_symbolic.frontend.sympy_in import FrontendResult, Occurrence, from_sympy, to_sympy
from zpml_symbolic.frontend.trace import trace, traced
from zpml_symbolic.frontend.unicode_hints import ascii_spelling

__all__ = [
    "Coefficient",
    "DecimalNumber",
    "Equation",
    "FrontendResult",
    "Occurrence",
    "ascii_spelling",
    "from_sympy",
    "is_coefficient",
    "parse",
    "parse_equation",
    "to_sympy",
    "trace",
    "traced",
]
