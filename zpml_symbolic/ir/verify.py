"""IR verifier: checks every invariant of :mod:`zpml_symbolic.ir.node`."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from zpml_symbolic.errors import IRVerificationError
from zpml_symbolic.ir.node import Node, Op, intern
from zpml_symbolic.ir.printer import to_text
from zpml_symbolic.ir.traverse import postorder


def _fail(node: Node, why: str) -> IRVerificationError:
    try:
        text = to_text(node, max_chars=80)
    except Exception:  # noqa: BLE001 - the node is malformed; describe it raw
        text = f"args={node.args!r:.80}, value={node.value!r:.40}"
    return IRVerificationError(f"invalid IR node {node.op.name} {text!r}: {why}")


def verify(roots: Node | Iterable[Node]) -> None:
    """Raise :class:`IRVerificationError` if any reachable node breaks an invariant.

    Checks: leaf payload types (non-empty string names, exact ``Fraction``
    constants), arities (``ADD``/``MUL`` at least two arguments, ``POW``
    exactly one with an ``int`` exponent), that no name is both a variable
    and a parameter, and interning (every node is the canonical instance of
    its structure).
    """
    root_list = [roots] if isinstance(roots, Node) else list(roots)
    for node in _walk_checked(root_list):
        if not all(isinstance(a, Node) for a in node.args):
            raise _fail(node, "arguments must be IR nodes")
    kinds: dict[str, Op] = {}
    for node in postorder(root_list):
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
        if op in (Op.VAR, Op.PARAM):
            seen = kinds.setdefault(str(value), op)
            if seen is not op:
                raise _fail(node, f"{value!r} is used both as a variable and as a parameter")
        if intern(op, args, value) is not node:
            raise _fail(node, "node is not interned (built outside the constructors)")


def _walk_checked(roots: list[Node]) -> list[Node]:
    """Iterative walk that tolerates non-Node arguments (they are reported, not followed)."""
    out: list[Node] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if not isinstance(node, Node):
            raise IRVerificationError(
                f"expected an IR node, got {type(node).__name__} {node!r:.60}"
            )
        if id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        stack.extend(a for a in node.args if isinstance(a, Node))
    return out


__all__ = ["verify"]
