"""The factors of ``Q`` as program taps: what the underflow check reads.

``Q`` is emitted as a product of its factors (see :mod:`zpml_symbolic.emit.analyses.underflow`);
the plan lowers the factors as named taps of the program (:attr:`Program.taps`) so the
back ends can tell an underflowed product from an exact zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from zpml_symbolic.emit.lowering.program import Program, lower
from zpml_symbolic.ir.node import Node, Op

__all__ = ["leaf_program", "product_leaves", "tap_names"]


def product_leaves(q: Node) -> tuple[Node, ...]:
    """The non-constant leaves of the multiplication/power tree at the root of ``q``.

    ``()`` when ``q`` is not a product (a single factor, or a constant): its zero
    is then the zero of one polynomial and no product can underflow.
    """
    if q.op not in (Op.MUL, Op.POW):
        return ()
    out: dict[Node, None] = {}
    stack = [q]
    while stack:
        n = stack.pop()
        if n.op is Op.MUL:
            stack.extend(reversed(n.args))
        elif n.op is Op.POW:
            if isinstance(n.value, int) and n.value > 0:
                stack.append(n.args[0])
        elif n.op is not Op.CONST:
            out.setdefault(n, None)
    return tuple(out)


def tap_names(prefix: str, count: int) -> tuple[str, ...]:
    """Program tap names of the leaves of one expression's ``Q``."""
    return tuple(f"{prefix}QF{j}" for j in range(count))


def leaf_program(program: Program, leaves: Sequence[Node]) -> Program:
    """A program computing only ``leaves`` (outputs ``L0``, ``L1``, ...), same op sequence."""
    return lower(
        [(f"L{j}", n) for j, n in enumerate(leaves)],
        variables=program.variables,
        parameters=program.parameters,
    )
