"""One interpreter skeleton for every walker of a :class:`~zpml_symbolic.emit.lowering.program.Program`.

In the manner of :class:`torch.fx.Interpreter`: :meth:`Interpreter.run` walks the
instructions in order and calls one method per op with the operands' values
and the typed payload (an ``int`` column or parameter index, a
:class:`~fractions.Fraction` constant), so no walker re-handles leaves,
constants or missing payloads. Every op method is abstract: a subclass that
misses one cannot be instantiated (a new op can never be silently skipped).
An exception raised while executing an instruction carries the note
``while executing instruction i (op) ...``.

The numpy reference, the torch FX graph, the eager torch evaluation of the
underflow check, the ONNX lowering, negation folding, and the rounding depth
and absolute-value bounds of the certified masks are subclasses, registered
with :func:`column`; :class:`ExactInterpreter` is the exact semantics of the
op table on :class:`~fractions.Fraction`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Generic, Protocol, TypeVar

from zpml_symbolic.emit.lowering.ops import SPECS, Instr, OpCode, Payload

__all__ = ["COLUMNS", "ExactInterpreter", "Interpreter", "ProgramLike", "column", "missing_ops"]

V = TypeVar("V")


class ProgramLike(Protocol):
    """What an interpreter reads of a :class:`~zpml_symbolic.emit.lowering.program.Program`."""

    @property
    def instrs(self) -> Sequence[Instr]: ...

    @property
    def variables(self) -> tuple[str, ...]: ...

    @property
    def parameters(self) -> tuple[str, ...]: ...


class Interpreter(abc.ABC, Generic[V]):
    """Evaluates a program in some domain ``V`` (arrays, graph nodes, bounds, ...).

    Subclasses implement one method per op. :attr:`index` and :attr:`instr` are
    the instruction being executed, :attr:`values` the results so far. Override
    :meth:`execute` to intercept instructions (e.g. fused patterns) and call
    ``super().execute`` for the rest.
    """

    def __init__(self, program: ProgramLike) -> None:
        self.program = program
        self.values: list[V] = []
        self.index = -1
        self.instr: Instr | None = None
        #: per op: its method and how to pass the payload
        self._dispatch: dict[OpCode, tuple[Callable[..., V], Payload]] = {
            op: (getattr(self, op.value), spec.payload) for op, spec in SPECS.items()
        }

    def run(self) -> list[V]:
        """Execute every instruction in order; returns one value per instruction."""
        values = self.values
        for i, ins in enumerate(self.program.instrs):
            self.index, self.instr = i, ins
            try:
                values.append(self.execute(i, ins))
            except Exception as exc:
                exc.add_note(
                    f"while executing instruction {i} ({ins.op}) of the program "
                    f"in {type(self).__name__}"
                )
                raise
        return values

    def execute(self, i: int, ins: Instr) -> V:
        """The value of instruction ``i``: its op's method on the operands' values and payload."""
        method, payload = self._dispatch[ins.op]
        operands = [self.values[a] for a in ins.args]
        if payload is Payload.NONE:
            return method(*operands)
        if payload is Payload.CONST:
            return method(*operands, ins.const)
        return method(*operands, ins.index)

    # ------------------------------------------------------------------ leaves
    @abc.abstractmethod
    def input(self, column: int) -> V:
        """Input column ``column`` (a per-sample value)."""

    @abc.abstractmethod
    def param(self, index: int) -> V:
        """Learnable coefficient ``index`` (``program.parameters[index]``)."""

    @abc.abstractmethod
    def const(self, value: Fraction) -> V:
        """The exact constant ``value``."""

    # -------------------------------------------------------------- operations
    @abc.abstractmethod
    def add(self, a: V, b: V) -> V:
        """``a + b``."""

    @abc.abstractmethod
    def sub(self, a: V, b: V) -> V:
        """``a - b``."""

    @abc.abstractmethod
    def mul(self, a: V, b: V) -> V:
        """``a * b``."""

    @abc.abstractmethod
    def square(self, a: V) -> V:
        """``a * a``."""

    @abc.abstractmethod
    def neg(self, a: V) -> V:
        """``-a``."""

    @abc.abstractmethod
    def scale(self, a: V, c: Fraction) -> V:
        """``c * a``."""

    @abc.abstractmethod
    def shift(self, a: V, c: Fraction) -> V:
        """``a + c``."""

    @abc.abstractmethod
    def axpy(self, a: V, b: V, c: Fraction) -> V:
        """``a + c * b``."""


#: registered columns: name -> interpreter class (filled by :func:`column`)
COLUMNS: dict[str, type[Interpreter[Any]]] = {}

C = TypeVar("C", bound=type)


def column(name: str) -> Callable[[C], C]:
    """Class decorator: register an :class:`Interpreter` subclass as the column ``name``."""

    def register(cls: C) -> C:
        old = COLUMNS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):  # the same class again is a module reload
            raise ValueError(f"column {name!r} is already registered by {old!r}")
        COLUMNS[name] = cls
        return cls

    return register


def missing_ops(cls: type) -> list[OpCode]:
    """The ops ``cls`` has no concrete method for (empty for a complete column)."""
    abstract: frozenset[str] = getattr(cls, "__abstractmethods__", frozenset())
    return [
        op for op in OpCode if op.value in abstract or not callable(getattr(cls, op.value, None))
    ]


class OperatorInterpreter(Interpreter[V]):
    """Walkers whose values support Python's arithmetic operators (numpy arrays, tensors):
    ``add``, ``sub``, ``mul``, ``square`` and ``neg`` are the operators themselves, in this
    order of operands, so every such back end rounds the same way."""

    def add(self, a: V, b: V) -> V:
        return a + b  # type: ignore[operator]

    def sub(self, a: V, b: V) -> V:
        return a - b  # type: ignore[operator]

    def mul(self, a: V, b: V) -> V:
        return a * b  # type: ignore[operator]

    def square(self, a: V) -> V:
        return a * a  # type: ignore[operator]

    def neg(self, a: V) -> V:
        return -a  # type: ignore[operator]


@column("exact")
class ExactInterpreter(Interpreter[Fraction]):
    """The exact value of every instruction (the ``exact`` column of the op table)."""

    def __init__(
        self,
        program: ProgramLike,
        x: Sequence[Fraction | int],
        coefficients: Mapping[str, Fraction | int] | None = None,
    ) -> None:
        super().__init__(program)
        self.x = x
        self.coefficients = coefficients or {}

    def input(self, column: int) -> Fraction:
        return SPECS[OpCode.INPUT].exact(Fraction(self.x[column]))

    def param(self, index: int) -> Fraction:
        return SPECS[OpCode.PARAM].exact(
            Fraction(self.coefficients[self.program.parameters[index]])
        )

    def const(self, value: Fraction) -> Fraction:
        return SPECS[OpCode.CONST].exact(value)

    def add(self, a: Fraction, b: Fraction) -> Fraction:
        return SPECS[OpCode.ADD].exact(a, b)

    def sub(self, a: Fraction, b: Fraction) -> Fraction:
        return SPECS[OpCode.SUB].exact(a, b)

    def mul(self, a: Fraction, b: Fraction) -> Fraction:
        return SPECS[OpCode.MUL].exact(a, b)

    def square(self, a: Fraction) -> Fraction:
        return SPECS[OpCode.SQUARE].exact(a)

    def neg(self, a: Fraction) -> Fraction:
        return SPECS[OpCode.NEG].exact(a)

    def scale(self, a: Fraction, c: Fraction) -> Fraction:
        return SPECS[OpCode.SCALE].exact(a, c)

    def shift(self, a: Fraction, c: Fraction) -> Fraction:
        return SPECS[OpCode.SHIFT].exact(a, c)

    def axpy(self, a: Fraction, b: Fraction, c: Fraction) -> Fraction:
        return SPECS[OpCode.AXPY].exact(a, b, c)
