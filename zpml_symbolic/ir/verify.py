"""IR verifier: checks every invariant of :mod:`zpml_symbolic.ir.node`."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from zpml_symbolic.errors import IRVerificationError
from zpml_symbolic.ir.node import Node, Op, intern
from zpml_symbolic.ir.printer import to_text
from zpml_symbolic.ir.traverse import postorder


def _fail(node: Node, why: str) -> IRVerificationError:
    return IRVerificationError(
        f"invalid IR node {node.op.name} {to_text(node, max_chars=80)!r}: {why}"
    )


def verify(roots: Node | Iterable[Node]) -> None:
    """Raise :class:`IRVerificationError` if any reachable node breaks an invariant.

    Checks: leaf payload types (identifier-like names, exact ``Fraction``
    constants), arities (``ADD``/``MUL`` at least two arguments, ``POW``
    exactly one with an ``int`` exponent), and interning (every node is the
    canonical instance of its structure).
    """
    for node in postorder(roots):
        op, args, value = node.op, node.args, node.value
        if op in (Op.VAR, Op.PARAM):
            if args or not isinstance(value, str) or not value:
                raise _fail(node, "a variable needs a non-empty name and no arguments")
        elif op is Op.CONST:
            if args or not isinstance(value, Fraction):
                raise _fail(node, "a constant needs an exact Fraction value and no arguments")
        elif op in (Op.ADD, Op.MUL):
            if len(args) < 2 or value is not None:
                raise _fail(node, f"{op.name} needs at least two arguments and no value")
        elif op is Op.POW:
            if len(args) != 1 or not isinstance(value, int) or isinstance(value, bool):
                raise _fail(node, "POW needs one argument and an int exponent")
        else:  # pragma: no cover - Op is closed
            raise _fail(node, f"unknown op {op!r}")
        if not all(isinstance(a, Node) for a in args):
            raise _fail(node, "arguments must be IR nodes")
        if intern(op, args, value) is not node:
            raise _fail(node, "node is not interned (built outside the constructors)")


__all__ = ["verify"]
