"""The backward graph of the generated reverse mode: which values to keep, and the FX adjoint.

:func:`needs_grad` and :func:`saved_values` decide which instructions need an
adjoint and which forward values the backward reads; :func:`build_backward`
writes the adjoint program as one FX graph in reverse instruction order (see
:mod:`zpml_symbolic.emit.backends.torch_adjoint` for the scheme).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from zpml_symbolic.emit.backends.torch_columns import _columns
from zpml_symbolic.emit.lowering.ops import SPECS, OpCode
from zpml_symbolic.emit.lowering.plan import Plan

__all__ = ["Layout", "build_backward", "needs_grad", "saved_values"]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum(a * b)`` over all elements in one pass (no temporary)."""
    a, b = torch.broadcast_tensors(a, b)
    return torch.dot(a.reshape(-1), b.reshape(-1))


#: outputs read outside the autograd Function: input columns (copied) and constants (filled)
_TAKEN_OUTSIDE = frozenset({OpCode.INPUT, OpCode.CONST})


@dataclass(frozen=True, slots=True)
class Layout:
    """Which program instructions the autograd Function returns.

    ``outputs``: computed outputs (input columns and exact constants are
    taken outside the Function, they need no backward of ours).
    """

    outputs: tuple[int, ...]

    @staticmethod
    def of(plan: Plan) -> Layout:
        """The layout of ``plan``: its computed outputs, each once."""
        program = plan.program
        seen: dict[int, None] = {}
        for names in plan.names:
            for name in (names.P, names.Q, *names.V):
                k = program.outputs[name]
                if program.instrs[k].op not in _TAKEN_OUTSIDE:
                    seen.setdefault(k, None)
        return Layout(tuple(seen))


def needs_grad(plan: Plan, x_needs: bool, param_needs: Sequence[bool]) -> list[bool]:
    """Per instruction: does it depend on a leaf that needs a gradient?"""
    out: list[bool] = []
    for ins in plan.program.instrs:
        if ins.op is OpCode.INPUT:
            out.append(x_needs)
        elif ins.op is OpCode.PARAM:
            out.append(bool(param_needs[ins.index or 0]))
        else:  # a constant (no operands) needs none; an operation, if an operand does
            out.append(any(out[a] for a in ins.args))
    return out


def saved_values(plan: Plan, needs: Sequence[bool]) -> tuple[int, ...]:
    """Instructions whose forward values the backward reads (products' operands).

    Input columns and constants are excluded: the backward reads them from
    ``x`` and from literals.
    """
    program = plan.program
    keep: set[int] = set()
    for i, ins in enumerate(program.instrs):
        if not needs[i]:
            continue
        for p in SPECS[ins.op].partials(ins.const):  # d/d operand = coef * value(times)
            if p.times is not None and needs[ins.args[p.arg]]:
                keep.add(ins.args[p.times])
    return tuple(sorted(k for k in keep if program.instrs[k].op not in _TAKEN_OUTSIDE))


# ----------------------------------------------------------------------------- backward graph


def _contributions(ins: Any) -> list[tuple[int, float, int | None]]:
    """``(operand, coef, other)``: ``ins``'s adjoint times ``coef`` (times the value of
    instruction ``other``) flows to ``operand``; from the ``partials`` column of the op
    table. A product of an operand with itself contributes once (``x*x``: ``2x``)."""
    out: list[tuple[int, float, int | None]] = []
    merged: dict[tuple[int, int], int] = {}
    for p in SPECS[ins.op].partials(ins.const):
        target = ins.args[p.arg]
        other = None if p.times is None else ins.args[p.times]
        if other is not None and (target, other) in merged:
            n = merged[(target, other)]
            out[n] = (target, out[n][1] + float(p.coef), other)
            continue
        if other is not None:
            merged[(target, other)] = len(out)
        out.append((target, float(p.coef), other))
    return out


@dataclass(slots=True)
class _Buf:
    """An adjoint tensor in the backward graph; in-place updates need ``owned and refs == 1``."""

    node: fx.Node
    owned: bool
    refs: int = 1


@dataclass(slots=True)
class _Adj:
    """The adjoint of one instruction: ``coef * buf``."""

    buf: _Buf
    coef: float


@dataclass
class _Backward:
    g: fx.Graph
    plan: Plan
    needs: list[bool]
    x: fx.Node
    saved: dict[int, fx.Node]
    adj: list[_Adj | None] = field(default_factory=list)
    columns: dict[int, fx.Node] = field(default_factory=dict)
    pool: list[fx.Node] = field(default_factory=list)

    def release(self, buf: _Buf) -> None:
        """Drop one reference; a dead owned buffer goes back to the pool."""
        buf.refs -= 1
        if buf.refs == 0 and buf.owned:
            self.pool.append(buf.node)

    def fresh(
        self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
    ) -> fx.Node:
        """``fn(*args)`` into a pooled dead buffer when there is one (no allocation)."""
        kw = dict(kwargs or {})
        if self.pool:
            kw["out"] = self.pool.pop()
        return self.g.call_function(fn, args, kw)

    def resolved(self, target: int, coef: float = 1.0) -> tuple[int, float]:
        """Where a contribution ``coef * ...`` to ``target`` lands, and with which coefficient.

        Pass-through instructions (``shift``, ``scale``, ``neg``) without an
        adjoint of their own forward contributions to their operand.
        """
        program = self.plan.program
        while self.adj[target] is None:
            ins = program.instrs[target]
            partials = SPECS[ins.op].partials(ins.const)
            if len(ins.args) != 1 or partials[0].times is not None:
                break  # not a unary linear op (scale, neg, shift)
            coef *= float(partials[0].coef)
            target = ins.args[0]
        return target, coef

    # -- values of the forward pass
    def val(self, k: int) -> Any:
        ins = self.plan.program.instrs[k]
        if ins.op is OpCode.CONST:
            assert ins.const is not None
            return float(ins.const)
        if ins.op is OpCode.INPUT:
            if k not in self.columns:
                self.columns[k] = self.g.call_function(
                    operator.getitem, (self.x, _columns(ins.index or 0))
                )
            return self.columns[k]
        return self.saved[k]

    def scalar(self, k: int) -> bool:
        return self.plan.program.scalar[k]

    # -- accumulation
    def route(
        self, target: int, coef: float, G: _Adj, other: int | None, steal: bool, src: int
    ) -> None:
        """Add ``coef * G * value(other)`` (or ``coef * G``) to the adjoint of ``target``."""
        target, coef = self.resolved(target, coef)
        c = coef * G.coef
        g = self.g
        a = G.buf.node
        if self.scalar(target) and not self.scalar(src):
            # a coefficient used at every sample: reduce over the batch
            if other is None:
                term = g.call_method("sum", (a,))
            else:
                term = g.call_function(_dot, (a, self.val(other)))
            self.add_scalar(target, term, c)
            return
        if self.scalar(target):
            term = a if other is None else g.call_function(torch.mul, (a, self.val(other)))
            self.add_scalar(target, term, c)
            return
        cur = self.adj[target]
        if cur is None:
            if other is None:
                G.buf.refs += 1
                self.adj[target] = _Adj(G.buf, c)
            elif steal and G.buf.owned and G.buf.refs == 1:
                G.buf.node = g.call_method("mul_", (a, self.val(other)))
                G.buf.refs += 1
                self.adj[target] = _Adj(G.buf, c)
            else:
                node = self.fresh(torch.mul, (a, self.val(other)))
                self.adj[target] = _Adj(_Buf(node, owned=True), c)
            return
        ratio = c / cur.coef
        kw: dict[str, Any] = (
            {} if ratio == 1.0 else ({"alpha": ratio} if other is None else {"value": ratio})
        )
        B = cur.buf
        if B.owned and B.refs == 1:
            if other is None:
                B.node = g.call_method("add_", (B.node, a), kw)
            else:
                B.node = g.call_method("addcmul_", (B.node, a, self.val(other)), kw)
            return
        if other is None:
            node = self.fresh(torch.add, (B.node, a), kw)
        else:
            node = self.fresh(torch.addcmul, (B.node, a, self.val(other)), kw)
        self.release(B)
        self.adj[target] = _Adj(_Buf(node, owned=True), cur.coef)

    def add_scalar(self, target: int, term: fx.Node, c: float) -> None:
        g = self.g
        if c != 1.0:
            term = g.call_function(torch.mul, (term, c))
        cur = self.adj[target]
        if cur is None:
            self.adj[target] = _Adj(_Buf(term, owned=False), 1.0)
        else:
            base = cur.buf.node
            if cur.coef != 1.0:
                base = g.call_function(torch.mul, (base, cur.coef))
            self.adj[target] = _Adj(_Buf(g.call_function(torch.add, (base, term)), False), 1.0)

    def _needs_buffer(self, target: int, other: int | None) -> bool:
        t, _ = self.resolved(target)
        if self.scalar(t) or other is None:
            return False
        return self.adj[t] is None

    def materialise(self, k: int) -> fx.Node | None:
        """The adjoint of ``k`` with its coefficient applied (None = zero)."""
        A = self.adj[k]
        if A is None:
            return None
        if A.coef == 1.0:
            return A.buf.node
        if A.buf.owned and A.buf.refs == 1:
            return self.g.call_method("mul_", (A.buf.node, A.coef))
        return self.g.call_function(torch.mul, (A.buf.node, A.coef))

    def sweep(self) -> None:
        program = self.plan.program
        needs = self.needs
        for i in range(len(program.instrs) - 1, -1, -1):
            G = self.adj[i]
            ins = program.instrs[i]
            if G is None or not ins.args:
                continue
            contribs = _contributions(ins)
            contribs = [c for c in contribs if needs[c[0]]]
            # contributions that accumulate into existing buffers (or reduce) read G first;
            # one that needs a new buffer goes last, so it can take over G's buffer
            contribs.sort(key=lambda c: self._needs_buffer(c[0], c[2]))
            for n, (t, coef, other) in enumerate(contribs):
                self.route(t, coef, G, other, n == len(contribs) - 1, i)
            self.release(G.buf)
            self.adj[i] = None


def build_backward(
    plan: Plan,
    layout: Layout,
    needs: list[bool],
    saved: tuple[int, ...],
    present: tuple[bool, ...],
    x_needs: bool,
    param_needs: tuple[bool, ...],
) -> fx.GraphModule:
    """``backward(x, *saved, *grads) -> (grad_x, *grad_params)`` (``None`` where not needed).

    ``grads`` holds only the outputs flagged in ``present``.
    """
    program = plan.program
    g = fx.Graph()
    x = g.placeholder("x")
    saved_nodes = {k: g.placeholder(f"v{k}") for k in saved}
    b = _Backward(g, plan, needs, x, saved_nodes, [None] * len(program.instrs))
    for m, k in enumerate(layout.outputs):
        if not present[m]:
            continue
        grad = g.placeholder(f"grad_{m}")
        if not needs[k]:
            continue
        if program.scalar[k]:  # a broadcast coefficient-only output
            b.add_scalar(k, g.call_method("sum", (grad,)), 1.0)
        else:
            b.adj[k] = _Adj(_Buf(grad, owned=False), 1.0)
    b.sweep()
    results: list[Any] = []
    if x_needs:
        cols: list[Any] = []
        inputs = {ins.index: k for k, ins in enumerate(program.instrs) if ins.op is OpCode.INPUT}
        for j in range(len(plan.variables)):
            col = inputs.get(j)
            cols.append(None if col is None else b.materialise(col))
        if all(c is None for c in cols):
            results.append(g.call_function(torch.zeros_like, (x,)))
        elif len(cols) == 1:
            results.append(g.call_method("unsqueeze", (cols[0], -1)))
        else:
            ref = next(c for c in cols if c is not None)
            filled = [
                c if c is not None else g.call_function(torch.zeros_like, (ref,)) for c in cols
            ]
            results.append(g.call_function(torch.stack, (filled,), {"dim": -1}))
    else:
        results.append(None)
    params = {ins.index: k for k, ins in enumerate(program.instrs) if ins.op is OpCode.PARAM}
    for j, need in enumerate(param_needs):
        p = params.get(j)
        results.append(b.materialise(p) if need and p is not None else None)
    g.output(tuple(results))
    g.eliminate_dead_code()
    g.lint()
    return fx.GraphModule(nn.Module(), g, "RationalBackward")
