"""Lowering: division-free IR -> a straight-line numeric program (SSA).

Every back-end (numpy reference, torch module, ONNX graph) consumes the same
:class:`Program`, so they compute the same operations in the same order.
Lowering performs common-subexpression elimination on the instruction level
(each ``(op, args, const)`` is computed once), turns integer powers into
multiplication chains (square-and-multiply, never a generic ``pow``) and uses
fused forms for ``a + c*b`` (``axpy``), ``a + c`` (``shift``), ``c*a``
(``scale``) and ``a - b`` (``sub``).

The instruction set is the op table of :mod:`zpml_symbolic.emit.lowering.ops`
(:class:`~zpml_symbolic.emit.lowering.ops.OpCode`, one spec row per op: arity, payload,
exact semantics, partial derivatives). :func:`verify_program` checks the
invariants (SSA order, arity, payload, outputs and taps) after lowering and
after every rewrite (:func:`fold_negations`, :func:`eliminate_dead_code`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from zpml_symbolic.emit.lowering.interpreter import Interpreter, column
from zpml_symbolic.emit.lowering.ops import SPECS, Instr, OpCode, Payload
from zpml_symbolic.errors import EmitError, IRVerificationError
from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.traverse import postorder

#: every op, in table order (:class:`OpCode` members compare equal to their names)
OPS: tuple[OpCode, ...] = tuple(OpCode)


@dataclass(slots=True)
class Program:
    """A straight-line program with named outputs.

    ``scalar[i]`` is True when instruction ``i`` depends on parameters and
    constants only (a 0-d value at run time, computed once per call).
    """

    variables: tuple[str, ...]
    parameters: tuple[str, ...]
    instrs: list[Instr] = field(default_factory=list)
    scalar: list[bool] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)
    #: named values read only by diagnostics (the factors ``Q`` is the product of, see
    #: :func:`zpml_symbolic.emit.lowering.taps.product_leaves`), *up to sign*: they keep their
    #: instructions alive but are not outputs (no back-end returns them or keeps their buffers)
    taps: dict[str, int] = field(default_factory=dict)

    def uses(self) -> list[int]:
        """How many later instructions or outputs read each instruction."""
        counts = [0] * len(self.instrs)
        for ins in self.instrs:
            for a in ins.args:
                counts[a] += 1
        for i in self.outputs.values():
            counts[i] += 1
        return counts

    def count_ops(self) -> dict[str, int]:
        """Number of instructions of each kind (for reports and tests)."""
        out: dict[str, int] = {}
        for ins in self.instrs:
            out[ins.op.value] = out.get(ins.op.value, 0) + 1
        return out


def _emit(
    p: Program,
    cse: dict[tuple[object, ...], int],
    op: OpCode,
    args: tuple[int, ...] = (),
    const: Fraction | None = None,
    index: int | None = None,
) -> int:
    """Append ``op`` to ``p`` unless an identical instruction exists (``cse``); its position."""
    spec = SPECS[op]
    if spec.commutative:
        args = tuple(sorted(args))  # canonical order improves CSE
    key = (op, args, const, index)
    found = cse.get(key)
    if found is not None:
        return found
    p.instrs.append(Instr(op, args, const, index))
    p.scalar.append(not spec.per_sample if spec.is_leaf else all(p.scalar[a] for a in args))
    cse[key] = len(p.instrs) - 1
    return cse[key]


def verify_program(program: Program) -> Program:
    """Raise :class:`~zpml_symbolic.errors.IRVerificationError` unless ``program`` is well formed.

    Checks, per instruction: the op is an :class:`OpCode`; it has ``SPECS[op].arity``
    operands, each an earlier instruction (SSA order); its payload is the one its
    row declares (an exact :class:`~fractions.Fraction` constant, or a variable or
    parameter position in range) and the other payload field is None; its
    ``scalar`` flag is the one its operands imply. Outputs and taps must name
    instructions of the program. Returns ``program``.
    """
    instrs = program.instrs
    n = len(instrs)
    if len(program.scalar) != n:
        raise IRVerificationError(
            f"invalid program: {n} instructions but {len(program.scalar)} scalar flags"
        )
    ranges = {OpCode.INPUT: len(program.variables), OpCode.PARAM: len(program.parameters)}
    for i, ins in enumerate(instrs):
        if not isinstance(ins.op, OpCode):
            raise _bad(i, ins, f"op {ins.op!r} is not an OpCode")
        spec = SPECS[ins.op]
        if len(ins.args) != spec.arity:
            raise _bad(i, ins, f"{len(ins.args)} operands, {ins.op} takes {spec.arity}")
        for a in ins.args:
            if type(a) is not int or not 0 <= a < i:
                raise _bad(i, ins, f"operand {a!r} is not an earlier instruction")
        if spec.payload is Payload.CONST:
            if not isinstance(ins.const, Fraction) or ins.index is not None:
                raise _bad(i, ins, "needs an exact constant (a Fraction) and no index")
        elif spec.payload is Payload.INDEX:
            limit = ranges[ins.op]
            if type(ins.index) is not int or not 0 <= ins.index < limit or ins.const is not None:
                raise _bad(i, ins, f"needs an index in [0, {limit}) and no constant")
        elif ins.const is not None or ins.index is not None:
            raise _bad(i, ins, "takes no constant and no index")
        scalar = not spec.per_sample if spec.is_leaf else all(program.scalar[a] for a in ins.args)
        if program.scalar[i] != scalar:
            raise _bad(i, ins, f"scalar flag {program.scalar[i]} should be {scalar}")
    for kind, named in (("output", program.outputs), ("tap", program.taps)):
        for name, k in named.items():
            if type(k) is not int or not 0 <= k < n:
                raise IRVerificationError(
                    f"invalid program: {kind} {name!r} refers to instruction {k!r} of {n}"
                )
    return program


def _bad(i: int, ins: Instr, why: str) -> IRVerificationError:
    return IRVerificationError(f"invalid program: instruction {i} {ins}: {why}")


class _Lowering:
    def __init__(self, program: Program) -> None:
        self.p = program
        self.memo: dict[Node, int] = {}
        self.cse: dict[tuple[object, ...], int] = {}
        self.var_index = {n: i for i, n in enumerate(program.variables)}
        self.param_index = {n: i for i, n in enumerate(program.parameters)}

    def emit(
        self,
        op: OpCode,
        args: tuple[int, ...] = (),
        const: Fraction | None = None,
        index: int | None = None,
    ) -> int:
        return _emit(self.p, self.cse, op, args, const, index)

    def const(self, value: Fraction) -> int:
        return self.emit(OpCode.CONST, const=value)

    def lower(self, root: Node) -> int:
        for node in postorder(root):
            if node not in self.memo:
                self.memo[node] = self._lower_node(node)
        return self.memo[root]

    def _lower_node(self, node: Node) -> int:
        op = node.op
        if op is Op.VAR:
            name = str(node.value)
            if name not in self.var_index:
                raise EmitError(f"variable {name!r} is not an input of this program")
            return self.emit(OpCode.INPUT, index=self.var_index[name])
        if op is Op.PARAM:
            name = str(node.value)
            if name not in self.param_index:
                raise EmitError(f"parameter {name!r} is not declared")
            return self.emit(OpCode.PARAM, index=self.param_index[name])
        if op is Op.CONST:
            assert isinstance(node.value, Fraction)
            return self.const(node.value)
        if op is Op.POW:
            n = node.value
            assert isinstance(n, int)
            if n < 0:
                raise EmitError("numeric programs are division-free; got a negative power")
            return self._power(self.memo[node.args[0]], n)
        if op is Op.MUL:
            return self._product(node.args)
        return self._sum(node.args)

    def _power(self, base: int, n: int) -> int:
        if n == 0:
            return self.const(Fraction(1))
        result: int | None = None
        sq = base
        while True:
            if n & 1:
                result = sq if result is None else self.emit(OpCode.MUL, (result, sq))
            n >>= 1
            if not n:
                assert result is not None
                return result
            sq = self.emit(OpCode.SQUARE, (sq,))

    def _split_coeff(self, args: Sequence[Node]) -> tuple[Fraction, list[Node]]:
        coeff = Fraction(1)
        rest = []
        for a in args:
            if a.op is Op.CONST:
                assert isinstance(a.value, Fraction)
                coeff *= a.value
            else:
                rest.append(a)
        return coeff, rest

    def _product(self, args: Sequence[Node]) -> int:
        coeff, rest = self._split_coeff(args)
        if not rest:
            return self.const(coeff)
        acc = self.memo[rest[0]]
        for a in rest[1:]:
            acc = self.emit(OpCode.MUL, (acc, self.memo[a]))
        return self._scaled(acc, coeff)

    def _scaled(self, acc: int, coeff: Fraction) -> int:
        if coeff == 1:
            return acc
        if coeff == -1:
            return self.emit(OpCode.NEG, (acc,))
        if coeff == 0:
            return self.const(Fraction(0))
        return self.emit(OpCode.SCALE, (acc,), const=coeff)

    def _term(self, node: Node) -> tuple[Fraction, int]:
        """``node`` as ``coeff * value`` (coeff pulled out of a product)."""
        if node.op is Op.MUL:
            coeff, rest = self._split_coeff(node.args)
            if rest and coeff != 1:
                if len(rest) == 1:
                    return coeff, self.memo[rest[0]]
                acc = self.memo[rest[0]]
                for a in rest[1:]:
                    acc = self.emit(OpCode.MUL, (acc, self.memo[a]))
                return coeff, acc
        return Fraction(1), self.memo[node]

    def _sum(self, args: Sequence[Node]) -> int:
        consts = Fraction(0)
        for a in args:
            if a.op is Op.CONST:
                assert isinstance(a.value, Fraction)
                consts += a.value
        terms = [self._term(a) for a in args if a.op is not Op.CONST]
        if not terms:
            return self.const(consts)
        # start from a term with coefficient 1 when there is one (saves a scale)
        terms.sort(key=lambda t: t[0] != 1)
        c0, acc = terms[0]
        acc = self._scaled(acc, c0)
        for c, v in terms[1:]:
            if c == 1:
                acc = self.emit(OpCode.ADD, (acc, v))
            elif c == -1:
                acc = self.emit(OpCode.SUB, (acc, v))
            else:
                acc = self.emit(OpCode.AXPY, (acc, v), const=c)
        if consts != 0:
            acc = self.emit(OpCode.SHIFT, (acc,), const=consts)
        return acc


def lower(
    outputs: Sequence[tuple[str, Node]],
    *,
    variables: Sequence[str],
    parameters: Sequence[str] = (),
    fold: bool = True,
    taps: Sequence[tuple[str, Node]] = (),
) -> Program:
    """Lower named division-free IR roots into one :class:`Program` (shared CSE).

    ``fold=True`` absorbs negations into their uses (:func:`fold_negations`).
    ``taps``: named subexpressions of the outputs whose values diagnostics read
    (``Program.taps``, up to sign); lowering them adds no instruction when they are
    subexpressions of an output.
    """
    program = Program(tuple(variables), tuple(parameters))
    lowering = _Lowering(program)
    for name, root in outputs:
        if name in program.outputs:
            raise EmitError(f"duplicate output name {name!r}")
        program.outputs[name] = lowering.lower(root)
    for name, node in taps:
        program.taps[name] = lowering.lower(node)
    program = eliminate_dead_code(verify_program(program))
    return eliminate_dead_code(fold_negations(program)) if fold else program


def fold_negations(program: Program) -> Program:
    """Absorb negations into their uses where that is bit-exact (signed zeros included).

    Each value is carried as ``(instruction, negated)``: a ``neg`` emits
    nothing, ``a + (-b)`` becomes ``a - b``, ``(-a) + b`` becomes ``b - a``,
    ``a - (-b)`` becomes ``a + b``, ``(-a)*b`` is carried as ``-(a*b)``,
    ``c*(-a)`` becomes ``(-c)*a`` and ``a + c*(-b)`` becomes ``a + (-c)*b``.
    Where absorbing would change the sign of a zero result (``(-a) + (-b)``,
    ``(-a) + c``) the negation is emitted, as before; an output that ends up
    negated costs one ``neg``. IEEE negation is exact and rounding is
    symmetric, so every value is bit-identical to the original program's.
    """
    folder = _FoldNegations(program)
    val = folder.run()
    out = folder.out
    for name, i in program.outputs.items():
        out.outputs[name] = folder.plain(*val[i])
    out.taps = {name: val[i][0] for name, i in program.taps.items()}  # up to sign
    return verify_program(out)


#: a value of the folded program: (its instruction, whether it is carried negated)
_Signed = tuple[int, bool]


@column("fold_negations")
class _FoldNegations(Interpreter[_Signed]):
    """Rewrites a program instruction by instruction, carrying negations (see
    :func:`fold_negations`); ``out`` is the rewritten program."""

    def __init__(self, program: Program) -> None:
        super().__init__(program)
        self.out = Program(program.variables, program.parameters)
        self.cse: dict[tuple[object, ...], int] = {}

    def emit(
        self,
        op: OpCode,
        args: tuple[int, ...] = (),
        const: Fraction | None = None,
        index: int | None = None,
    ) -> int:
        return _emit(self.out, self.cse, op, args, const, index)

    def plain(self, k: int, negated: bool) -> int:
        """The value itself (a negation emitted if it is carried)."""
        if not negated:
            return k
        ins = self.out.instrs[k]
        if ins.op is OpCode.CONST and ins.const is not None:
            return self.emit(OpCode.CONST, const=-ins.const)
        return self.emit(OpCode.NEG, (k,))

    def input(self, column: int) -> _Signed:
        return self.emit(OpCode.INPUT, index=column), False

    def param(self, index: int) -> _Signed:
        return self.emit(OpCode.PARAM, index=index), False

    def const(self, value: Fraction) -> _Signed:
        return self.emit(OpCode.CONST, const=value), False

    def neg(self, a: _Signed) -> _Signed:
        return a[0], not a[1]

    def square(self, a: _Signed) -> _Signed:
        return self.emit(OpCode.SQUARE, (a[0],)), False

    def mul(self, a: _Signed, b: _Signed) -> _Signed:
        return self.emit(OpCode.MUL, (a[0], b[0])), a[1] != b[1]

    def scale(self, a: _Signed, c: Fraction) -> _Signed:
        return self.emit(OpCode.SCALE, (a[0],), const=-c if a[1] else c), False

    def shift(self, a: _Signed, c: Fraction) -> _Signed:
        return self.emit(OpCode.SHIFT, (self.plain(*a),), const=c), False

    def add(self, a: _Signed, b: _Signed) -> _Signed:
        return self._sum(a, b)

    def sub(self, a: _Signed, b: _Signed) -> _Signed:
        return self._sum(a, (b[0], not b[1]))

    def _sum(self, a: _Signed, b: _Signed) -> _Signed:
        """``(+-a) + (+-b)``."""
        (ka, na), (kb, nb) = a, b
        if na and nb:
            ka, na = self.plain(ka, True), False
        if not na and not nb:
            return self.emit(OpCode.ADD, (ka, kb)), False
        if nb:
            return self.emit(OpCode.SUB, (ka, kb)), False
        return self.emit(OpCode.SUB, (kb, ka)), False

    def axpy(self, a: _Signed, b: _Signed, c: Fraction) -> _Signed:
        return self.emit(OpCode.AXPY, (self.plain(*a), b[0]), const=-c if b[1] else c), False


def eliminate_dead_code(program: Program) -> Program:
    """Drop instructions no output depends on (lowering a node bottom-up can
    leave e.g. a ``neg`` that its parent replaced by ``sub``)."""
    live = [False] * len(program.instrs)
    for i in (*program.outputs.values(), *program.taps.values()):
        live[i] = True
    for i in range(len(program.instrs) - 1, -1, -1):
        if live[i]:
            for a in program.instrs[i].args:
                live[a] = True
    remap: dict[int, int] = {}
    out = Program(program.variables, program.parameters)
    for i, ins in enumerate(program.instrs):
        if live[i]:
            remap[i] = len(out.instrs)
            out.instrs.append(
                Instr(ins.op, tuple(remap[a] for a in ins.args), ins.const, ins.index)
            )
            out.scalar.append(program.scalar[i])
    out.outputs = {name: remap[i] for name, i in program.outputs.items()}
    out.taps = {name: remap[i] for name, i in program.taps.items()}
    return verify_program(out)


__all__ = [
    "OPS",
    "Instr",
    "OpCode",
    "Program",
    "eliminate_dead_code",
    "fold_negations",
    "lower",
    "verify_program",
]
