"""One error hierarchy for the compiler.

Every error a user can trigger is a subclass of :class:`ZeroProofError` and
also of the builtin exception a caller would naturally catch (``TypeError``
for unsupported constructs, ``ValueError`` for bad values), so both
``except zs.ZeroProofError`` and ``except ValueError`` work.
"""

from __future__ import annotations

from zpml_core.errors import ZeroProofError


class NotRationalError(ZeroProofError, TypeError):
    """The expression contains a construct that is not a rational function.

    ``subexpression`` is the offending node as text and ``path`` its position
    in the user's tree (``"root.args[1].args[0]"``).
    """

    def __init__(self, message: str, *, subexpression: str = "", path: str = "") -> None:
        super().__init__(message)
        self.subexpression = subexpression
        self.path = path


class ParseError(ZeroProofError, ValueError):
    """The expression text could not be parsed; ``column`` is 1-based."""

    def __init__(self, message: str, *, text: str = "", column: int = 0) -> None:
        super().__init__(message)
        self.text = text
        self.column = column


class NotRationalTextError(ParseError, NotRationalError):
    """The text is well formed but not a rational function: a call such as ``sin(x)``,
    or a non-integer or symbolic exponent (``x**2.5``, ``x**y``).

    Both a :class:`ParseError` (``column``, ``text``) and a :class:`NotRationalError`
    (``subexpression``); ``function`` names the called function, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        column: int = 0,
        subexpression: str = "",
        function: str | None = None,
    ) -> None:
        ParseError.__init__(self, message, text=text, column=column)
        self.subexpression = subexpression
        self.path = ""
        self.function = function


class InputTypeError(ZeroProofError, TypeError):
    """A front-end entry point got an argument of the wrong type (e.g. ``parse(42)``)."""


class InvalidArgumentError(ZeroProofError, ValueError):
    """A bad argument value (unknown variable, bad prefix, bad option)."""


class IRVerificationError(ZeroProofError, ValueError):
    """The IR violates an invariant (raised by :func:`zpml_symbolic.ir.verify`)."""


class BudgetExceededError(ZeroProofError, ValueError):
    """Flattening was refused because it would exceed a resource budget.

    ``budget`` names the budget (``"max_degree"``, ``"max_terms"``,
    ``"max_work"``, ``"max_seconds"``), ``limit`` its value and ``requested``
    the amount the next operation would have needed.
    """

    def __init__(self, message: str, *, budget: str, limit: float, requested: float) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit = limit
        self.requested = requested


class EmitError(ZeroProofError, ValueError):
    """An emitter was asked for something it cannot produce."""


class BoxError(InvalidArgumentError):
    """A bad operating box; ``field`` names the variable (or ``"box"``) at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class ConstantNameWarning(UserWarning):
    """An input variable is named like a mathematical constant (``pi``, ``E``).

    ``flatten`` treats such a symbol as an input (it may even become a
    validity factor ``pi = 0``); give its value with ``constants={"pi": ...}``
    or list it in ``variables=`` to say it really is an input.
    """


__all__ = [
    "BoxError",
    "BudgetExceededError",
    "ConstantNameWarning",
    "EmitError",
    "IRVerificationError",
    "InputTypeError",
    "InvalidArgumentError",
    "NotRationalError",
    "NotRationalTextError",
    "ParseError",
    "ZeroProofError",
]
