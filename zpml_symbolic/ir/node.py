"""The IR: one small frozen node type with interning.

A :class:`Node` is ``(op, args, value)``. Nodes are *interned*: building the
same ``(op, args, value)`` twice returns the same object, so equal subtrees
are one node, a shared subtree is flattened once and common subexpressions
come for free. Constants stay exact (:class:`fractions.Fraction`) until an
emitter lowers them.

=========  ===================  ==========================================
op         args                 value
=========  ===================  ==========================================
``VAR``    ``()``               input variable name (``str``)
``PARAM``  ``()``               learnable coefficient name (``str``)
``CONST``  ``()``               exact rational (``Fraction``)
``ADD``    ``>= 2`` nodes       ``None``
``MUL``    ``>= 2`` nodes       ``None``
``POW``    ``(base,)``          integer exponent (``int``); negative means
                                division: ``b**-n`` is bottom where ``b`` is
                                zero or bottom
=========  ===================  ==========================================
"""

from __future__ import annotations

import enum
import threading
import weakref
from fractions import Fraction


class Op(enum.Enum):
    """Node kinds of the IR."""

    VAR = "var"
    PARAM = "param"
    CONST = "const"
    ADD = "add"
    MUL = "mul"
    POW = "pow"


LEAF_OPS = frozenset({Op.VAR, Op.PARAM, Op.CONST})

NodeValue = str | Fraction | int | None


class Node:
    """An interned IR node. Build nodes with the constructors below, not directly."""

    __slots__ = ("op", "args", "value", "__weakref__")

    op: Op
    args: tuple[Node, ...]
    value: NodeValue

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("IR nodes are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("IR nodes are immutable")

    def __repr__(self) -> str:
        from zpml_symbolic.ir.printer import to_text

        return f"Node<{self.op.name}>({to_text(self, max_chars=80)})"

    def __reduce__(self) -> tuple[object, ...]:
        return (intern, (self.op, self.args, self.value))

    @property
    def is_division(self) -> bool:
        """True for ``POW`` nodes with a negative exponent (the only source of bottom)."""
        return self.op is Op.POW and isinstance(self.value, int) and self.value < 0


_TABLE: weakref.WeakValueDictionary[tuple[object, ...], Node] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def _key(op: Op, args: tuple[Node, ...], value: NodeValue) -> tuple[object, ...]:
    # Children are interned, so their identity is their structure.
    # A Fraction is keyed by its two ints: hashing a Fraction costs a modular
    # inverse, and constants are interned by the thousand in Horner forms.
    vkey: object
    if type(value) is Fraction:
        vkey = ("Fraction", value.numerator, value.denominator)
    else:
        vkey = (type(value).__name__, value)
    return (op, tuple(map(id, args)), vkey)


def intern(op: Op, args: tuple[Node, ...] = (), value: NodeValue = None) -> Node:
    """Return the unique node ``(op, args, value)``, creating it if needed."""
    key = _key(op, args, value)
    with _LOCK:
        node = _TABLE.get(key)
        if node is None:
            node = object.__new__(Node)
            object.__setattr__(node, "op", op)
            object.__setattr__(node, "args", args)
            object.__setattr__(node, "value", value)
            _TABLE[key] = node
    return node


def var(name: str) -> Node:
    """An input variable."""
    return intern(Op.VAR, (), name)


def param(name: str) -> Node:
    """A learnable coefficient."""
    return intern(Op.PARAM, (), name)


def const(value: int | Fraction) -> Node:
    """An exact rational constant."""
    return intern(Op.CONST, (), Fraction(value))


def add(*args: Node) -> Node:
    """Sum of two or more nodes (a single argument is returned as is)."""
    return args[0] if len(args) == 1 else intern(Op.ADD, tuple(args))


def mul(*args: Node) -> Node:
    """Product of two or more nodes (a single argument is returned as is)."""
    return args[0] if len(args) == 1 else intern(Op.MUL, tuple(args))


def pow_(base: Node, exponent: int) -> Node:
    """``base ** exponent`` for an integer exponent (negative: strict division)."""
    return intern(Op.POW, (base,), int(exponent))


def inv(base: Node) -> Node:
    """``1 / base``: bottom where ``base`` is zero."""
    return pow_(base, -1)


__all__ = ["LEAF_OPS", "Node", "Op", "add", "const", "intern", "inv", "mul", "param", "pow_", "var"]
