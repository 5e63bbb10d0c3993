"""Provenance records: which divisor of the user's tree owns each factor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sympy as sp

SourceKind = Literal["explicit_denominator", "divisor_numerator", "divisor_denominator"]
SOURCE_KINDS: tuple[SourceKind, ...] = (
    "explicit_denominator",
    "divisor_numerator",
    "divisor_denominator",
)


@dataclass(frozen=True, slots=True)
class SourceOccurrence:
    """One division in the user's tree that contributes a factor.

    ``source`` is the user's subexpression owning the division, as text;
    ``path`` its position (``root.args[1].args[0]``) in the tree given to
    :func:`~zpml_symbolic.flatten`; ``node_id`` the stable id of the
    division node in :attr:`FlattenedFRU.dag` postorder; ``divisor`` the text
    of the divisor itself.
    """

    kind: SourceKind
    source: str
    path: str
    node_id: int
    divisor: str


@dataclass(frozen=True, slots=True)
class DenominatorSource:
    """A factor whose zeros make some division of the user's tree bottom.

    ``factor`` is an irreducible polynomial (sympy expression in the input
    variables and parameters) in canonical form. Identical factors met at
    several divisions are merged: ``occurrences`` lists all of them, and
    ``kind``/``source``/``path``/``node_id`` repeat the first one.
    ``retained`` is True when ``Q`` does not already vanish where ``factor``
    does, i.e. the factor is a strict validity factor.
    """

    kind: SourceKind
    factor: sp.Expr
    source: str
    path: str
    node_id: int
    occurrences: tuple[SourceOccurrence, ...]
    retained: bool

    @property
    def kinds(self) -> tuple[SourceKind, ...]:
        """Every kind under which this factor was met, in first-seen order."""
        return tuple(dict.fromkeys(o.kind for o in self.occurrences))

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source text listing this factor, in first-seen order."""
        return tuple(dict.fromkeys(o.source for o in self.occurrences))

    def describe(self) -> str:
        """One line for people: factor, kind, where."""
        extra = len(self.occurrences) - 1
        more = f" (+{extra} more)" if extra else ""
        return f"{self.factor} [{self.kind}] from {self.source!r} at {self.path}{more}"


__all__ = ["SOURCE_KINDS", "DenominatorSource", "SourceKind", "SourceOccurrence"]
