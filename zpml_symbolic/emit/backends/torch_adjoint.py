"""Generated reverse mode for compiled programs (a ``torch.autograd.Function``).

Autograd through the forward program records one node per operation and
saves both inputs of every product, then runs a generic backward per node
(allocating each partial result). For a straight-line rational program we
know the whole computation ahead of time, so we generate its adjoint instead:

* the forward is the in-place inference graph, except that the values the
  backward reads (one operand of each product whose other operand needs a
  gradient) are kept (``protect``);
* the backward is one FX graph over the program in reverse order. Each
  instruction's adjoint is accumulated in place (``addcmul_``/``add_``) into
  a buffer it owns; pass-through instructions (``shift``, ``scale``,
  ``neg``) forward contributions straight to their operand (a coefficient
  rides along instead of a multiplication); sums alias their result's
  adjoint instead of copying it; an adjoint whose last reader is a product
  lends its buffer to the product's partial (``g.mul_(v)``); gradients of
  0-d coefficients are reductions (``torch.dot``) computed once per use.
* Only what needs a gradient is computed: forward and backward graphs are
  built per combination of ``x.requires_grad`` and the coefficients'
  ``requires_grad`` (and of which outputs receive a gradient), and cached.

Double backward (``create_graph=True``) recomputes the outputs with the
functional graph under autograd and differentiates that, so higher-order
derivatives stay exact. ``torch.compile``, TorchScript and ``torch.func``
transforms use the functional graph (see
:meth:`~zpml_symbolic.emit.backends.torch_emit.RationalModule.forward`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import fx, nn

from zpml_symbolic.emit.backends.adjoint_graph import (
    Layout,
    build_backward,
    needs_grad,
    saved_values,
)
from zpml_symbolic.emit.backends.torch_columns import gather_columns
from zpml_symbolic.emit.backends.torch_graph import RationalGraph, _BatchShape, emit_values
from zpml_symbolic.emit.lowering.plan import Plan

__all__ = ["AdjointRunner", "Layout", "needs_grad", "saved_values"]


# ----------------------------------------------------------------------------- runner


class _RationalFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        runner: AdjointRunner,
        key: tuple[bool, ...],
        x: torch.Tensor,
        *params: torch.Tensor,
    ) -> Any:
        fwd = runner.forward_graph(key)
        outs, saved = fwd(x)
        ctx.runner = runner
        ctx.key = key
        ctx.n_params = len(params)
        ctx.save_for_backward(x, *params, *saved)
        ctx.set_materialize_grads(False)
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        runner: AdjointRunner = ctx.runner
        tensors = ctx.saved_tensors
        x = tensors[0]
        params = tensors[1 : 1 + ctx.n_params]
        saved = tensors[1 + ctx.n_params :]
        x_needs, param_needs = ctx.key[0], ctx.key[1:]
        if torch.is_grad_enabled():  # create_graph=True: differentiate a recorded recompute
            return (None, None, *runner.recorded_backward(x, params, grads, x_needs, param_needs))
        present = tuple(gr is not None for gr in grads)
        bwd = runner.backward_graph(ctx.key, present)
        out = bwd(x, *saved, *(gr for gr in grads if gr is not None))
        gx = out[0]
        gp = tuple(
            None if gr is None else gr.to(p.dtype) for gr, p in zip(out[1:], params, strict=True)
        )
        return (None, None, gx, *gp)


class AdjointRunner:
    """Runs a :class:`~zpml_symbolic.emit.backends.torch_emit.RationalModule`'s program
    through :class:`_RationalFunction` (generated forward-with-saving and backward)."""

    def __init__(self, plan: Plan, holder: nn.Module) -> None:
        self.plan = plan
        self.layout = Layout.of(plan)
        self.holder = holder
        self._forward: dict[tuple[bool, ...], fx.GraphModule] = {}
        self._backward: dict[tuple[Any, ...], fx.GraphModule] = {}
        self._recorded: fx.GraphModule | None = None

    def _needs(self, key: tuple[bool, ...]) -> list[bool]:
        return needs_grad(self.plan, key[0], key[1:])

    def forward_graph(self, key: tuple[bool, ...]) -> fx.GraphModule:
        """``forward(x) -> (outputs, saved)`` for the gradient needs ``key`` (cached)."""
        gm = self._forward.get(key)
        if gm is None:
            saved = saved_values(self.plan, self._needs(key))
            gm = RationalGraph(
                self.holder, self._flat_graph(saved, inplace=True), "RationalForward"
            )
            self._forward[key] = gm
        return gm

    def _flat_graph(self, saved: tuple[int, ...], *, inplace: bool) -> fx.Graph:

        g = fx.Graph()
        x = g.placeholder("x")
        if inplace:
            columns, layout = gather_columns(g, x, self.plan)
            values = emit_values(
                g,
                self.plan,
                x,
                inplace=True,
                protect=frozenset(saved),
                columns=columns,
                layout=layout,
            )
        else:
            values = emit_values(g, self.plan, x, autograd_reuse=True)
        batch = _BatchShape(g, x, self.plan, values)
        outs = tuple(batch.full(k) for k in self.layout.outputs)
        g.output((outs, tuple(values[k] for k in saved)))
        g.eliminate_dead_code()
        g.lint()
        return g

    def backward_graph(self, key: tuple[bool, ...], present: tuple[bool, ...]) -> fx.GraphModule:
        """The generated backward for ``key`` and the outputs that received a gradient."""
        gm = self._backward.get((key, present))
        if gm is None:
            needs = self._needs(key)
            gm = build_backward(
                self.plan,
                self.layout,
                needs,
                saved_values(self.plan, needs),
                present,
                key[0],
                tuple(key[1:]),
            )
            self._backward[(key, present)] = gm
        return gm

    def recorded_backward(
        self,
        x: torch.Tensor,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor | None],
        x_needs: bool,
        param_needs: Sequence[bool],
    ) -> tuple[torch.Tensor | None, ...]:
        """Backward for ``create_graph=True``: recompute under autograd, then differentiate."""

        if self._recorded is None:
            self._recorded = RationalGraph(
                self.holder, self._flat_graph((), inplace=False), "RationalRecorded"
            )
        outs, _ = self._recorded(x)
        pairs = [(o, gr) for o, gr in zip(outs, grads, strict=True) if gr is not None]
        wrt = ([x] if x_needs else []) + [p for p, n in zip(params, param_needs, strict=True) if n]
        if not pairs or not wrt:
            return (None,) * (1 + len(params))
        got = list(
            torch.autograd.grad(
                [o for o, _ in pairs],
                wrt,
                [gr for _, gr in pairs],
                create_graph=True,
                allow_unused=True,
            )
        )
        gx = got.pop(0) if x_needs else None
        gp = tuple(got.pop(0) if n else None for n in param_needs)
        return (gx, *gp)

    def __call__(self, x: torch.Tensor, params: Sequence[torch.Tensor]) -> dict[int, torch.Tensor]:
        """Run the program on ``x``; returns the computed outputs by instruction."""
        key = (x.requires_grad, *(p.requires_grad for p in params))
        outs = _RationalFunction.apply(self, key, x, *params)
        return dict(zip(self.layout.outputs, outs, strict=True))
