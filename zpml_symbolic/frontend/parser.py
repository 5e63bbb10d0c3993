"""A safe parser from expression text to an *unevaluated* sympy tree.

The text is never handed to Python or to sympy's own parser (no ``eval``,
``sympify`` or ``parse_expr``): a hand-written tokenizer feeds an iterative
operator-precedence (shunting-yard) parser, so nesting depth is limited only by
memory, not by Python's recursion limit.

Grammar (``^`` and ``**`` are the same operator)::

    expr     := term (("+" | "-") term)*
    term     := unary (("*" | "/") unary)*
    unary    := ("-" | "+") unary | power
    power    := atom [("**" | "^") exponent]
    exponent := ("-" | "+")* (NUMBER | "(" exponent ")")     (its value an integer)
    atom     := NUMBER | IDENTIFIER | "(" expr ")" | FUNCTION "(" expr ")"
    FUNCTION := "square" | "cube" | "neg" | "inv"

An exponent is a number literal whose value is an integer (``2``, ``-3``,
``2.0``, ``1e2``). The functions are the rational spellings symbolic-regression
tools print: ``square(x)`` is ``x**2``, ``cube(x)`` is ``x**3``, ``neg(x)`` is
``-x`` and ``inv(x)`` is ``1/x``. A call of any other function, a non-integer
exponent (``x**2.5``) or a symbolic one (``x**y``) raises
:class:`~zpml_symbolic.errors.NotRationalTextError` (a ``ParseError`` and a
``NotRationalError``) naming it. ``dialect="pysr"`` also reads Julia's
``Float32`` literals (``1.5f0`` is 1.5) and refuses ``Inf``/``NaN``.

``**`` binds tighter than unary minus (``-x**2`` is ``-(x**2)``) and is
right-associative, so ``x**2**3`` means ``x**(2**3)``; since an exponent must
be an integer *literal*, that form is rejected (write ``(x**2)**3``).

Output tree (structure exactly as written, nothing simplified):

- a chain of ``+``/``-`` at one parenthesis level is **one n-ary**
  ``Add(t1, t2, ..., evaluate=False)`` with its terms in written order; a
  subtracted term ``b`` appears as ``Mul(-1, b)`` (``b`` kept intact) or, when
  ``b`` is a number literal, as the negated number;
- a chain of ``*``/``/`` is one n-ary ``Mul`` whose divisors appear as
  ``Pow(d, -1)``; a chain that starts with the literal ``1`` followed by ``/``
  drops that ``1`` (``1/b`` is just ``Pow(b, -1)``);
- parentheses always make a separate node: ``(a+b)+c`` is
  ``Add(Add(a, b), c)`` while ``a+b+c`` is ``Add(a, b, c)``. Flattening
  same-operator chains never changes the strict (⊥-absorbing) value and keeps
  long written-out sums shallow;
- unary minus is ``Mul(-1, x)``, or the negated number for a number literal;
- ``x**n`` is ``Pow(x, n)``; numbers are exact ``Rational`` values read from
  the decimal text (``0.1`` is ``1/10``, never a float).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping

import sympy

from zpml_symbolic.errors import InputTypeError, InvalidArgumentError, ParseError
from zpml_symbolic.frontend.coefficient import Coefficient, as_coefficient
from zpml_symbolic.frontend.constants import constant_values
from zpml_symbolic.frontend.grammar import NON_RATIONAL_FUNCTIONS, RATIONAL_FUNCTIONS, Parser
from zpml_symbolic.frontend.lexer import MAX_INPUT_LENGTH, MAX_LITERAL_DIGITS, Token, tokenize

__all__ = [
    "DIALECTS",
    "MAX_INPUT_LENGTH",
    "MAX_LITERAL_DIGITS",
    "NON_RATIONAL_FUNCTIONS",
    "RATIONAL_FUNCTIONS",
    "InputTypeError",
    "parse",
]

#: Text dialects: ``"zpml"`` (default) and ``"pysr"`` (Julia ``Float32`` literals such as
#: ``1.5f0``; ``Inf``/``NaN`` refused as non-finite constants).
DIALECTS = ("zpml", "pysr")


def _parameter_symbols(parameters: Iterable[str | sympy.Symbol]) -> dict[str, sympy.Symbol]:
    if isinstance(parameters, str | bytes):
        raise InvalidArgumentError(
            f"parameters must be an iterable of names, not a single string; use [{parameters!r:.60}]"
        )
    try:
        specs = list(parameters)
    except TypeError as exc:  # chained: a user generator may fail inside list()
        raise InvalidArgumentError(
            f"parameters must be an iterable of names or Symbols, got {type(parameters).__name__}"
        ) from exc
    symbols: dict[str, sympy.Symbol] = {}
    for spec in specs:
        coefficient: Coefficient = as_coefficient(spec)
        other = symbols.get(coefficient.name)
        if other is not None and other != coefficient:
            raise InvalidArgumentError(
                f"parameter {coefficient.name!r} is given twice with different assumptions"
            )
        symbols[coefficient.name] = coefficient
    return symbols


def parse(
    text: str,
    *,
    parameters: Iterable[str | sympy.Symbol] = (),
    constants: Mapping[str, object] | None = None,
    dialect: str = "zpml",
) -> sympy.Expr:
    """Parse ``text`` into an unevaluated sympy tree that keeps the written structure.

    Identifiers become ``sympy.Symbol(name)``, except those named in
    ``constants`` (``{"pi": 3.141592653589793}``: an exact rational, a float
    taken exactly, or a decimal string), which become that number; those named in ``parameters``
    become :class:`~zpml_symbolic.frontend.coefficient.Coefficient` symbols (a
    ``Coefficient`` given there is used as-is, another ``Symbol`` lends its name
    and assumptions). Numbers are exact rationals (``0.1`` -> ``1/10``).

    >>> parse("x/x")             # not 1: the bottom at x = 0 is kept
    x/x
    >>> parse("1/(1/x)").args    # not x
    (1/x, -1)

    Raises :class:`~zpml_symbolic.errors.ParseError` (with ``.column``, 1-based,
    and a caret line in the message) for malformed text (its subclass
    :class:`~zpml_symbolic.errors.NotRationalTextError` when the text is well formed
    but not rational: ``sin(x)``, ``x**2.5``),
    :class:`InputTypeError` (a ``TypeError``) when ``text`` is not a ``str``,
    and :class:`~zpml_symbolic.errors.InvalidArgumentError` for bad parameters.
    """
    if not isinstance(text, str):
        raise InputTypeError(
            f"parse() expects the expression as a str, got {type(text).__name__}"
            + (
                "; pass a sympy expression to the compiler directly"
                if isinstance(text, sympy.Basic)
                else ""
            )
        )
    pysr = check_dialect(dialect)
    symbols = _parameter_symbols(parameters)
    values = constant_values(constants)
    clash = sorted(set(values) & set(symbols))
    if clash:
        raise InvalidArgumentError(f"{clash} are given both as constants and as parameters")
    consts = {k: sympy.Rational(v.numerator, v.denominator) for k, v in values.items()}
    return run_parser(text, symbols, consts, pysr=pysr)


def check_dialect(dialect: object) -> bool:
    """True for ``"pysr"``, False for ``"zpml"``; anything else is an error."""
    if dialect not in DIALECTS:
        raise InvalidArgumentError(f"dialect must be one of {list(DIALECTS)}, got {dialect!r}")
    return dialect == "pysr"


def run_parser(
    text: str,
    symbols: dict[str, sympy.Symbol],
    constants: dict[str, sympy.Rational],
    *,
    pysr: bool = False,
    literal: Callable[[Token, bool], sympy.Expr | None] | None = None,
) -> sympy.Expr:
    """Tokenize and parse ``text`` (checked by the caller) with the cyclic GC paused."""
    if len(text) > MAX_INPUT_LENGTH:
        raise ParseError(
            f"expression text is too long: {len(text)} characters (limit {MAX_INPUT_LENGTH})",
            text=text,
            column=MAX_INPUT_LENGTH + 1,
        )
    # The parser allocates a few objects per token and keeps them all alive;
    # the cyclic collector would rescan them over and over (quadratic time for
    # 1 MB of input). Nothing here makes reference cycles, so pause it.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        tokens, lexical_error = tokenize(text, julia=pysr)
        parser = Parser(text, tokens, lexical_error, symbols, constants, pysr=pysr, literal=literal)
        return parser.run()
    finally:
        if was_enabled:
            gc.enable()
