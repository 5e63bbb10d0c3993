"""Equations with numeric constants (e.g. from symbolic regression) -> templates.

:func:`parse_equation` parses an equation such as PySR prints it and turns
every *float* literal (``1.7``, ``-0.5``, ``2.0``, ``1e-3``) into a named
coefficient ``c0, c1, ...`` (written order), keeping its exact decimal value
as the initial value. Integer literals (``2``) and exponents (``x**2.0``) stay
exact numbers. A literal right after a unary minus carries the sign
(``x0 + -0.5`` gives ``x0 + c0`` with ``c0 = -0.5``), unless it is raised to a
power (``-1.5**2`` is ``-(c0**2)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from zpml_symbolic.errors import InputTypeError, InvalidArgumentError
from zpml_symbolic.frontend.coefficient import Coefficient
from zpml_symbolic.frontend.lexer import IDENT_RE, Token
from zpml_symbolic.frontend.parser import check_dialect, run_parser

__all__ = ["Equation", "default_variables", "equation_identifiers", "parse_equation"]

_PYSR_NAME = re.compile(r"x([0-9]+)")
_NATURAL = re.compile(r"([0-9]+)")


@dataclass(frozen=True, slots=True)
class Equation:
    """A parsed equation: its tree with the float literals as coefficients.

    ``constants``: coefficient name -> exact value of its literal (sign included);
    ``literals``: coefficient name -> the literal as written (``"-0.5"``);
    ``identifiers``: the other names of the equation (its inputs), in first-use order.
    """

    text: str
    expr: sp.Expr
    constants: dict[str, Fraction]
    literals: dict[str, str]
    identifiers: tuple[str, ...]

    @property
    def parameters(self) -> tuple[str, ...]:
        """The coefficient names, in written order."""
        return tuple(self.constants)

    def initial_values(self) -> dict[str, float]:
        """Each coefficient's literal as the nearest float (what a layer starts from)."""
        return {name: float(value) for name, value in self.constants.items()}


def equation_identifiers(text: str) -> tuple[str, ...]:
    """The names an equation's text uses as operands (function names excluded), in order.

    A light scan (no parse): usable on equations that do not parse, to learn
    which input columns a file of equations refers to.
    """
    if not isinstance(text, str):
        raise InputTypeError(f"an equation must be a str, got {type(text).__name__}")
    out: dict[str, None] = {}
    for m in IDENT_RE.finditer(text):
        start, end = m.span()
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "._"):
            continue  # inside a number such as 1e5 or 1.5f0
        rest = text[end:].lstrip()
        if rest.startswith("("):
            continue  # a function name
        out.setdefault(m.group(), None)
    return tuple(out)


def default_variables(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Input columns for ``names`` when none are given.

    PySR's default names (all ``x<k>``): ``x0 .. x<max k>``, so column ``k`` of the
    data is ``x<k>`` even when an equation skips some. Other names: natural
    sort order (``a2`` before ``a10``); pass ``variables=`` to be sure.
    """
    names = list(dict.fromkeys(names))
    pysr = [m for m in map(_PYSR_NAME.fullmatch, names) if m is not None]
    if names and len(pysr) == len(names):
        top = max(int(m.group(1)) for m in pysr)
        return tuple(f"x{k}" for k in range(top + 1))
    return tuple(
        sorted(names, key=lambda n: [int(p) if p.isdigit() else p for p in _NATURAL.split(n)])
    )


def parse_equation(text: str, *, prefix: str = "c", dialect: str = "pysr") -> Equation:
    """Parse ``text`` with each float literal as a coefficient ``{prefix}{k}`` (see module doc).

    Names already used in the text are skipped (``c0`` taken -> ``c1``).
    ``dialect="pysr"`` (default) also reads Julia ``Float32`` literals (``1.5f0``).
    Raises what :func:`~zpml_symbolic.parse` raises (``NotRationalTextError`` for
    ``sin(x)``, ``x**2.5``).
    """
    if not isinstance(text, str):
        raise InputTypeError(
            f"parse_equation() expects the equation as a str, got {type(text).__name__}"
        )
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise InvalidArgumentError(f"prefix must be an ASCII identifier, got {prefix!r}")
    pysr = check_dialect(dialect)
    taken = set(IDENT_RE.findall(text))
    constants: dict[str, Fraction] = {}
    literals: dict[str, str] = {}
    counter = [0]

    def lift(tok: Token, negated: bool) -> sp.Expr | None:
        if tok.is_integer_literal:
            return None
        assert tok.value is not None
        while f"{prefix}{counter[0]}" in taken:
            counter[0] += 1
        name = f"{prefix}{counter[0]}"
        counter[0] += 1
        value = Fraction(int(tok.value.p), int(tok.value.q))
        constants[name] = -value if negated else value
        literals[name] = ("-" if negated else "") + tok.text
        return Coefficient(name)

    expr = run_parser(text, {}, {}, pysr=pysr, literal=lift)
    names = {s.name for s in expr.free_symbols if isinstance(s, sp.Symbol)} - set(constants)
    identifiers = tuple(n for n in equation_identifiers(text) if n in names)
    return Equation(text, expr, constants, literals, identifiers)
