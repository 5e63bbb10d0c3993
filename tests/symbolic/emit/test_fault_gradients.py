"""Gradients are finite (zero) at fault samples of the strict evaluator (issue 13, item 9).

``a*x/(x - b) + 1/y`` at ``(x, y) = (3e38, 1e-38)`` in float32 with ``a = 2``:
``a*x`` overflows, the sample is a fault, and the backward pass used to
compute ``0 * inf = NaN`` for its input gradient even when the sample was
left out of the loss.
"""

from __future__ import annotations

import math

import pytest
import torch

import zpml_symbolic as zs

EXPR = "a*x/(x - b) + 1/y"


def _evaluator(generated: bool) -> zs.StrictEvaluator:
    ev = zs.strict_evaluator(EXPR, parameters=["a", "b"], init={"a": 2.0, "b": 0.5})
    ev.model.generated_backward = generated
    return ev


def _grads(ev, rows: list[list[float]], loss_rows: list[int] | None):
    x = torch.tensor(rows, dtype=torch.float32, requires_grad=True)
    r = ev(x)
    d = torch.where(r.bottom_mask, 0.0, r.decoded)
    loss = d.sum() if loss_rows is None else d[loss_rows].sum()
    ev.zero_grad()
    loss.backward()
    return r, x.grad, [p.grad.clone() for p in ev.parameters()]


@pytest.mark.parametrize("generated", [True, False])
@pytest.mark.parametrize("loss_rows", [None, [1]], ids=["masked_loss", "row_excluded"])
@pytest.mark.parametrize(
    "bad_row", [[3e38, 1e-38], [math.nan, 2.0], [1.0, math.inf]], ids=["overflow", "nan", "inf"]
)
def test_gradients_are_finite_and_zero_at_faults(generated, loss_rows, bad_row) -> None:
    ev = _evaluator(generated)
    good = [1.0, 2.0]
    r, gx, gp = _grads(ev, [bad_row, good], loss_rows)
    assert r.fault_mask.tolist() == [True, False]
    assert torch.isfinite(gx).all() and gx[0].tolist() == [0.0, 0.0]
    assert all(torch.isfinite(g).all() for g in gp)
    # the healthy sample's value and gradients are those of a batch without the fault
    r1, gx1, gp1 = _grads(ev, [good], None)
    assert torch.equal(r.decoded[1], r1.decoded[0]) and torch.equal(gx[1], gx1[0])
    assert all(torch.equal(a, b) for a, b in zip(gp, gp1, strict=True))


def test_masks_and_factor_values_are_those_of_the_real_input() -> None:
    ev = zs.strict_evaluator("x/(x*y) + a/(y - 1)", parameters=["a"], init={"a": 1.0})
    x = torch.tensor([[3e38, 3e38], [0.0, 2.0], [1.0, 2.0]], requires_grad=True)
    r = ev(x)
    with torch.no_grad():
        ref = ev(x.detach())
    for name in ("bottom_mask", "fault_mask", "semantic_bottom_mask", "gap_mask"):
        assert torch.equal(getattr(r, name), getattr(ref, name)), name
    assert torch.equal(r.factor_values[0].detach(), ref.factor_values[0])
    assert r.bottom_provenance.tolist() == ref.bottom_provenance.tolist()
    torch.where(r.bottom_mask, 0.0, r.decoded).sum().backward()
    assert torch.isfinite(x.grad).all()
