"""Provenance records: which divisor of the user's tree owns each factor."""

from __future__ import annotations

from collections.abc import Callable
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
    division node (its index in the postorder of :attr:`FlattenedFRU.root`); ``divisor`` the text
    of the divisor itself.
    """

    kind: SourceKind
    source: str
    path: str
    node_id: int
    divisor: str


class DenominatorSource:
    """A factor whose zeros make some division of the user's tree bottom.

    ``factor`` is an irreducible polynomial (sympy expression in the input
    variables and parameters) in canonical form, built on first access.
    Identical factors met at several divisions are merged: ``occurrences``
    lists all of them, and ``kind``/``source``/``path``/``node_id`` repeat
    the first one (``kinds`` lists every kind). ``retained`` is True when
    ``Q`` does not already vanish where ``factor`` does, i.e. the factor is a
    strict validity factor. Immutable.
    """

    __slots__ = ("kind", "source", "path", "node_id", "occurrences", "retained", "_make", "_factor")

    kind: SourceKind
    source: str
    path: str
    node_id: int
    occurrences: tuple[SourceOccurrence, ...]
    retained: bool
    _make: Callable[[], sp.Expr] | None
    _factor: sp.Expr | None

    def __init__(
        self,
        *,
        kind: SourceKind,
        factor: sp.Expr | Callable[[], sp.Expr],
        source: str,
        path: str,
        node_id: int,
        occurrences: tuple[SourceOccurrence, ...],
        retained: bool,
    ) -> None:
        for name, value in (
            ("kind", kind),
            ("source", source),
            ("path", path),
            ("node_id", node_id),
            ("occurrences", occurrences),
            ("retained", retained),
        ):
            object.__setattr__(self, name, value)
        lazy = callable(factor) and not isinstance(factor, sp.Basic)
        object.__setattr__(self, "_make", factor if lazy else None)
        object.__setattr__(self, "_factor", None if lazy else factor)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("DenominatorSource is immutable")

    @property
    def factor(self) -> sp.Expr:
        """The factor as a sympy expression."""
        factor = self._factor
        if factor is None:
            assert self._make is not None  # a lazy factor keeps its builder until built
            factor = self._make()
            object.__setattr__(self, "_factor", factor)
        return factor

    def __repr__(self) -> str:
        return (
            f"DenominatorSource(kind={self.kind!r}, factor={self.factor}, source={self.source!r}, "
            f"path={self.path!r}, node_id={self.node_id}, retained={self.retained}, "
            f"occurrences={len(self.occurrences)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DenominatorSource):
            return NotImplemented
        return (
            self.kind,
            self.source,
            self.path,
            self.node_id,
            self.occurrences,
            self.retained,
        ) == (
            other.kind,
            other.source,
            other.path,
            other.node_id,
            other.occurrences,
            other.retained,
        ) and self.factor == other.factor

    def __hash__(self) -> int:
        return hash((self.kind, self.source, self.path, self.node_id, self.retained))

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
