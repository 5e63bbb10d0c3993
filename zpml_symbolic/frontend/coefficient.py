"""Learnable-coefficient symbols.

A :class:`Coefficient` is an ordinary :class:`sympy.Symbol` whose *type* marks
it as a learnable parameter rather than an input variable. It carries no extra
state, so everything sympy does with symbols (``free_symbols``, ``Poly``,
``subs``, printing, copying) works unchanged.

Equality: sympy compares the type of two symbols before their names, so
``Coefficient("a") != Symbol("a")`` and the two hash differently. A tree that
mixes them contains two distinct symbols that merely print the same; the
front-end refuses to create such mixes (see :func:`as_coefficient`).
"""

from __future__ import annotations

import re

import sympy

from zpml_symbolic.errors import InvalidArgumentError

__all__ = ["Coefficient", "as_coefficient", "is_coefficient", "is_identifier", "symbol_name"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_identifier(name: object) -> bool:
    """Whether ``name`` is an ASCII identifier ``[A-Za-z_][A-Za-z0-9_]*``."""
    return isinstance(name, str) and _IDENTIFIER.fullmatch(name) is not None


class Coefficient(sympy.Symbol):
    """A symbol that stands for a learnable coefficient (marker subclass, no extra state).

    >>> Coefficient("a") == sympy.Symbol("a")
    False
    >>> is_coefficient(Coefficient("a"))
    True
    """

    __slots__ = ()


def is_coefficient(sym: object) -> bool:
    """Whether ``sym`` is a :class:`Coefficient` (any other object gives ``False``)."""
    return isinstance(sym, Coefficient)


def symbol_name(spec: object, *, role: str) -> str:
    """The identifier named by ``spec`` (a ``str`` or a sympy ``Symbol``), checked.

    Raises :class:`~zpml_symbolic.errors.InvalidArgumentError` naming ``role``
    for anything else or a name that is not an identifier.
    """
    if isinstance(spec, sympy.Symbol):
        name = spec.name
    elif isinstance(spec, str):
        name = spec
    else:
        raise InvalidArgumentError(
            f"{role} must be a name (str) or a sympy Symbol, got {type(spec).__name__}: {spec!r:.80}"
        )
    if not is_identifier(name):
        raise InvalidArgumentError(
            f"{role} name {name!r:.80} is not a valid identifier "
            "(expected ASCII letters, digits and '_', not starting with a digit)"
        )
    return name


def as_coefficient(spec: str | sympy.Symbol, *, role: str = "parameter") -> Coefficient:
    """Turn a parameter specification into a :class:`Coefficient`.

    A ``str`` must be an identifier and becomes ``Coefficient(name)``; a
    ``Coefficient`` is returned as-is; any other ``sympy.Symbol`` gives a
    ``Coefficient`` with the same name and assumptions (so a symbol listed as a
    parameter is always recognised as one by :func:`is_coefficient`). ``role``
    only words the error message.

    Raises :class:`~zpml_symbolic.errors.InvalidArgumentError` for a name that
    is not an identifier or a value that is neither ``str`` nor ``Symbol``.
    """
    name = symbol_name(spec, role=role)
    if isinstance(spec, Coefficient):
        return spec
    if isinstance(spec, sympy.Symbol):
        return Coefficient(name, **spec.assumptions0)
    return Coefficient(name)
