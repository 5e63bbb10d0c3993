"""Lowering: division-free IR -> a straight-line numeric program (SSA).

Every back-end (numpy reference, torch module, ONNX graph) consumes the same
:class:`Program`, so they compute the same operations in the same order.
Lowering performs common-subexpression elimination on the instruction level
(each ``(op, args, const)`` is computed once), turns integer powers into
multiplication chains (square-and-multiply, never a generic ``pow``) and uses
fused forms for ``a + c*b`` (``axpy``), ``a + c`` (``shift``), ``c*a``
(``scale``) and ``a - b`` (``sub``).

Instruction set (``Instr.op``):

=========  =========================  ==================================
op         args                        meaning
=========  =========================  ==================================
input      ()                          input column ``index``
param      ()                          learnable coefficient ``index``
const      ()                          exact constant ``const``
add        (a, b)                      ``a + b``
sub        (a, b)                      ``a - b``
mul        (a, b)                      ``a * b``
square     (a,)                        ``a * a``
neg        (a,)                        ``-a``
scale      (a,)                        ``const * a``
shift      (a,)                        ``a + const``
axpy       (a, b)                      ``a + const * b``
=========  =========================  ==================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from zpml_symbolic.errors import EmitError
from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.traverse import postorder

OPS: tuple[str, ...] = (
    "input",
    "param",
    "const",
    "add",
    "sub",
    "mul",
    "square",
    "neg",
    "scale",
    "shift",
    "axpy",
)


@dataclass(frozen=True, slots=True)
class Instr:
    """One SSA instruction; its result is referred to by its position."""

    op: str
    args: tuple[int, ...] = ()
    const: Fraction | None = None
    index: int | None = None


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
    #: :func:`zpml_symbolic.emit.underflow.product_leaves`), *up to sign*: they keep their
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
            out[ins.op] = out.get(ins.op, 0) + 1
        return out


class _Lowering:
    def __init__(self, program: Program) -> None:
        self.p = program
        self.memo: dict[Node, int] = {}
        self.cse: dict[tuple[object, ...], int] = {}
        self.var_index = {n: i for i, n in enumerate(program.variables)}
        self.param_index = {n: i for i, n in enumerate(program.parameters)}

    def emit(
        self,
        op: str,
        args: tuple[int, ...] = (),
        const: Fraction | None = None,
        index: int | None = None,
    ) -> int:
        if op in ("add", "mul"):
            args = tuple(sorted(args))  # commutative: canonical order improves CSE
        key = (op, args, const, index)
        found = self.cse.get(key)
        if found is not None:
            return found
        if op in ("input",):
            scalar = False
        elif op in ("param", "const"):
            scalar = True
        else:
            scalar = all(self.p.scalar[a] for a in args)
        self.p.instrs.append(Instr(op, args, const, index))
        self.p.scalar.append(scalar)
        idx = len(self.p.instrs) - 1
        self.cse[key] = idx
        return idx

    def const(self, value: Fraction) -> int:
        return self.emit("const", const=value)

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
            return self.emit("input", index=self.var_index[name])
        if op is Op.PARAM:
            name = str(node.value)
            if name not in self.param_index:
                raise EmitError(f"parameter {name!r} is not declared")
            return self.emit("param", index=self.param_index[name])
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
                result = sq if result is None else self.emit("mul", (result, sq))
            n >>= 1
            if not n:
                assert result is not None
                return result
            sq = self.emit("square", (sq,))

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
            acc = self.emit("mul", (acc, self.memo[a]))
        return self._scaled(acc, coeff)

    def _scaled(self, acc: int, coeff: Fraction) -> int:
        if coeff == 1:
            return acc
        if coeff == -1:
            return self.emit("neg", (acc,))
        if coeff == 0:
            return self.const(Fraction(0))
        return self.emit("scale", (acc,), const=coeff)

    def _term(self, node: Node) -> tuple[Fraction, int]:
        """``node`` as ``coeff * value`` (coeff pulled out of a product)."""
        if node.op is Op.MUL:
            coeff, rest = self._split_coeff(node.args)
            if rest and coeff != 1:
                if len(rest) == 1:
                    return coeff, self.memo[rest[0]]
                acc = self.memo[rest[0]]
                for a in rest[1:]:
                    acc = self.emit("mul", (acc, self.memo[a]))
                return coeff, acc
        return Fraction(1), self.memo[node]

    def _sum(self, args: Sequence[Node]) -> int:
        consts = sum((a.value for a in args if a.op is Op.CONST), Fraction(0))  # type: ignore[misc]
        terms = [self._term(a) for a in args if a.op is not Op.CONST]
        if not terms:
            return self.const(consts)
        # start from a term with coefficient 1 when there is one (saves a scale)
        terms.sort(key=lambda t: t[0] != 1)
        c0, acc = terms[0]
        acc = self._scaled(acc, c0)
        for c, v in terms[1:]:
            if c == 1:
                acc = self.emit("add", (acc, v))
            elif c == -1:
                acc = self.emit("sub", (acc, v))
            else:
                acc = self.emit("axpy", (acc, v), const=c)
        if consts != 0:
            acc = self.emit("shift", (acc,), const=consts)
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
    program = eliminate_dead_code(program)
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
    out = Program(program.variables, program.parameters)
    cse: dict[tuple[object, ...], int] = {}

    def emit(
        op: str, args: tuple[int, ...] = (), const: Fraction | None = None, index: int | None = None
    ) -> int:
        if op in ("add", "mul"):
            args = tuple(sorted(args))
        key = (op, args, const, index)
        found = cse.get(key)
        if found is not None:
            return found
        out.instrs.append(Instr(op, args, const, index))
        out.scalar.append(
            op in ("param", "const") or (op != "input" and all(out.scalar[a] for a in args))
        )
        cse[key] = len(out.instrs) - 1
        return cse[key]

    def plain(k: int, negated: bool) -> int:
        """The value itself (a negation emitted if it is carried)."""
        if not negated:
            return k
        ins = out.instrs[k]
        if ins.op == "const" and ins.const is not None:
            return emit("const", const=-ins.const)
        return emit("neg", (k,))

    val: list[tuple[int, bool]] = []  # (new index, negated)
    for ins in program.instrs:
        op, c = ins.op, ins.const
        signs = [val[a] for a in ins.args]
        if op in ("input", "param", "const"):
            val.append((emit(op, const=c, index=ins.index), False))
        elif op == "neg":
            a, na = signs[0]
            val.append((a, not na))
        elif op == "square":
            val.append((emit("square", (signs[0][0],)), False))
        elif op == "mul":
            (a, na), (b, nb) = signs
            val.append((emit("mul", (a, b)), na != nb))
        elif op == "scale":
            (a, na), c = signs[0], ins.const
            assert c is not None
            val.append((emit("scale", (a,), const=-c if na else c), False))
        elif op == "shift":
            val.append((emit("shift", (plain(*signs[0]),), const=c), False))
        elif op in ("add", "sub"):
            (a, na), (b, nb) = signs
            nb = nb != (op == "sub")  # the value is (+-a) + (+-b)
            if na and nb:
                a, na = plain(a, True), False
            if not na and not nb:
                val.append((emit("add", (a, b)), False))
            elif nb:
                val.append((emit("sub", (a, b)), False))
            else:
                val.append((emit("sub", (b, a)), False))
        elif op == "axpy":
            (a, na), (b, nb) = signs
            assert c is not None
            val.append((emit("axpy", (plain(a, na), b), const=-c if nb else c), False))
        else:  # pragma: no cover - every Program op is listed above
            raise EmitError(f"unknown program op {op!r}")
    for name, i in program.outputs.items():
        out.outputs[name] = plain(*val[i])
    out.taps = {name: val[i][0] for name, i in program.taps.items()}  # up to sign
    return out


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
    return out


__all__ = ["OPS", "Instr", "Program", "eliminate_dead_code", "fold_negations", "lower"]
