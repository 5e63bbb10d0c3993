"""Turn the emitters' first argument (FRUs, sympy expressions or text) into FRUs.

This is the one place where an emitter entry point reaches back into the
pipeline (front end + flattening); the back-ends themselves consume only
:class:`FlattenedFRU` objects, so imports point one way:
``frontend -> flatten -> emit``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from zpml_symbolic.errors import InvalidArgumentError
from zpml_symbolic.flatten.driver import flatten
from zpml_symbolic.flatten.fru import FlattenedFRU

__all__ = ["as_frus"]


def as_frus(
    obj: FlattenedFRU | sp.Expr | str | Sequence[FlattenedFRU | sp.Expr | str],
    *,
    parameters: Sequence[sp.Symbol | str] = (),
) -> tuple[tuple[FlattenedFRU, ...], bool]:
    """Normalise the emitters' first argument; returns ``(frus, single)``."""
    single = isinstance(obj, FlattenedFRU | sp.Basic | str)
    items = [obj] if single else list(obj)  # type: ignore[arg-type]
    if not items:
        raise InvalidArgumentError("nothing to compile: got an empty sequence")
    frus = tuple(
        i if isinstance(i, FlattenedFRU) else flatten(i, parameters=parameters) for i in items
    )
    return frus, single
