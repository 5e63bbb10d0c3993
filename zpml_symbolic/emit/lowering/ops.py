"""The instruction set of the straight-line program: one spec row per op.

Every back end and analysis of :class:`~zpml_symbolic.emit.lowering.program.Program`
reads this table instead of naming ops as strings:

========  =====  =======  ==========================  =================================
op        arity  payload  exact value                 partial derivatives
========  =====  =======  ==========================  =================================
input     0      index    input column ``index``      (a leaf)
param     0      index    coefficient ``index``       (a leaf)
const     0      const    ``c``                       (a leaf)
add       2      none     ``a + b``                   ``1``, ``1``
sub       2      none     ``a - b``                   ``1``, ``-1``
mul       2      none     ``a * b``                   ``b``, ``a``
square    1      none     ``a * a``                   ``2a``
neg       1      none     ``-a``                      ``-1``
scale     1      const    ``c * a``                   ``c``
shift     1      const    ``a + c``                   ``1``
axpy      2      const    ``a + c * b``               ``1``, ``c``
========  =====  =======  ==========================  =================================

The back ends are columns of this table: each one subclasses
:class:`~zpml_symbolic.emit.lowering.interpreter.Interpreter` (one method per op; a
missing method is an error when the class is instantiated) and registers
itself under a column name (:func:`~zpml_symbolic.emit.lowering.interpreter.column`);
the reverse mode reads the ``partials`` column. ``tests/symbolic/emit/test_program_ops.py``
checks that every column covers every op and that the partial derivatives and
every back end agree with the exact semantics.

Adding an op: one row here (and the member of :class:`OpCode`), one method in
each registered column (the tests list the missing ones), and its tests.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "LEAVES",
    "OPERATIONS",
    "SPECS",
    "Instr",
    "OpCode",
    "OpSpec",
    "Partial",
    "Payload",
]


class OpCode(enum.StrEnum):
    """The op of one instruction (its value is the op's name in reports, ``count_ops`` and docs)."""

    INPUT = "input"
    PARAM = "param"
    CONST = "const"
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    SQUARE = "square"
    NEG = "neg"
    SCALE = "scale"
    SHIFT = "shift"
    AXPY = "axpy"


class Payload(enum.Enum):
    """What an instruction carries besides its operands."""

    #: nothing (``Instr.const`` and ``Instr.index`` are None)
    NONE = "none"
    #: an exact constant ``Instr.const`` (a :class:`~fractions.Fraction`)
    CONST = "const"
    #: a position ``Instr.index`` in the program's variables (input) or parameters (param)
    INDEX = "index"


@dataclass(frozen=True, slots=True)
class Partial:
    """One partial derivative: ``d result / d operand[arg] = coef * operand[times]``
    (``times`` None: the derivative is the constant ``coef``)."""

    arg: int
    coef: Fraction
    times: int | None = None


@dataclass(frozen=True, slots=True)
class Instr:
    """One SSA instruction; its result is referred to by its position in the program.

    ``args`` are positions of earlier instructions (``SPECS[op].arity`` of them);
    the payload is ``const`` (an exact constant) or ``index`` (a column or
    parameter position) as ``SPECS[op].payload`` says, the other field is None
    (:func:`~zpml_symbolic.emit.lowering.program.verify_program` checks all of it).
    """

    op: OpCode
    args: tuple[int, ...] = ()
    const: Fraction | None = None
    index: int | None = None


_ONE, _MINUS_ONE, _TWO = Fraction(1), Fraction(-1), Fraction(2)


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One row of the instruction set.

    ``exact(*operands, payload)`` is the op's value on exact rationals: for a
    leaf, the value it reads (the input's or coefficient's value, or the
    constant); for an operation, a function of its operands' values and, with
    a ``const`` payload, of the constant. ``partials(c)`` gives the derivative
    with respect to each operand (``c``: the constant payload, or None).
    """

    op: OpCode
    arity: int
    payload: Payload
    exact: Callable[..., Fraction]
    partials: Callable[[Fraction | None], tuple[Partial, ...]]
    #: the operands can be swapped (lowering sorts them: better CSE)
    commutative: bool = False
    #: leaves: whether the value differs per sample (an input column) or is 0-d
    #: (parameters, constants); operations are per-sample iff an operand is
    per_sample: bool = False
    #: what it computes, for docs and error messages
    meaning: str = ""

    @property
    def is_leaf(self) -> bool:
        """True for ``input``, ``param`` and ``const`` (no operands)."""
        return self.arity == 0


def _c(c: Fraction | None) -> Fraction:
    if c is None:  # pragma: no cover - verify_program guarantees the payload
        raise ValueError("missing constant payload")
    return c


def _no_partials(c: Fraction | None) -> tuple[Partial, ...]:
    return ()


def _identity(v: Fraction) -> Fraction:
    return v


#: the table: one row per op, in :class:`OpCode` order
SPECS: dict[OpCode, OpSpec] = {
    s.op: s
    for s in (
        OpSpec(
            OpCode.INPUT,
            0,
            Payload.INDEX,
            _identity,
            _no_partials,
            per_sample=True,
            meaning="input column `index`",
        ),
        OpSpec(
            OpCode.PARAM,
            0,
            Payload.INDEX,
            _identity,
            _no_partials,
            meaning="learnable coefficient `index`",
        ),
        OpSpec(
            OpCode.CONST,
            0,
            Payload.CONST,
            _identity,
            _no_partials,
            meaning="exact constant `const`",
        ),
        OpSpec(
            OpCode.ADD,
            2,
            Payload.NONE,
            lambda a, b: a + b,
            lambda c: (Partial(0, _ONE), Partial(1, _ONE)),
            commutative=True,
            meaning="a + b",
        ),
        OpSpec(
            OpCode.SUB,
            2,
            Payload.NONE,
            lambda a, b: a - b,
            lambda c: (Partial(0, _ONE), Partial(1, _MINUS_ONE)),
            meaning="a - b",
        ),
        OpSpec(
            OpCode.MUL,
            2,
            Payload.NONE,
            lambda a, b: a * b,
            lambda c: (Partial(0, _ONE, 1), Partial(1, _ONE, 0)),
            commutative=True,
            meaning="a * b",
        ),
        OpSpec(
            OpCode.SQUARE,
            1,
            Payload.NONE,
            lambda a: a * a,
            lambda c: (Partial(0, _TWO, 0),),
            meaning="a * a",
        ),
        OpSpec(
            OpCode.NEG,
            1,
            Payload.NONE,
            lambda a: -a,
            lambda c: (Partial(0, _MINUS_ONE),),
            meaning="-a",
        ),
        OpSpec(
            OpCode.SCALE,
            1,
            Payload.CONST,
            lambda a, c: c * a,
            lambda c: (Partial(0, _c(c)),),
            meaning="const * a",
        ),
        OpSpec(
            OpCode.SHIFT,
            1,
            Payload.CONST,
            lambda a, c: a + c,
            lambda c: (Partial(0, _ONE),),
            meaning="a + const",
        ),
        OpSpec(
            OpCode.AXPY,
            2,
            Payload.CONST,
            lambda a, b, c: a + c * b,
            lambda c: (Partial(0, _ONE), Partial(1, _c(c))),
            meaning="a + const * b",
        ),
    )
}

#: leaves (no operands): ``input``, ``param``, ``const``
LEAVES: frozenset[OpCode] = frozenset(op for op, s in SPECS.items() if s.is_leaf)
#: operations (at least one operand)
OPERATIONS: tuple[OpCode, ...] = tuple(op for op, s in SPECS.items() if not s.is_leaf)

if tuple(SPECS) != tuple(OpCode):  # pragma: no cover - checked at import
    raise AssertionError("the op table must have one row per OpCode, in order")
