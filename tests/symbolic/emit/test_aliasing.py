"""Outputs never alias the caller's input (issue 13, item 7).

``1/x`` has ``Q = x``, ``x/y`` has ``P = x`` and ``Q = y``, ``y/(x*y)`` keeps
the validity factor ``x``: each of these outputs is "just an input column"
and used to be a view of ``x``, so ``Q.mul_(0)`` zeroed the caller's ``x``
and reusing the input buffer changed returned results.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zpml_symbolic as zs

EXPRS = ["1/x", "x/y", "y/(x*y)", "x*y/y + 1/(x*z)", "x/(x*y) + 1/(y - 1)"]


def _tensors(out) -> list[torch.Tensor]:
    flat: list[torch.Tensor] = []
    for o in out if isinstance(out, tuple) else (out,):
        if isinstance(o, torch.Tensor):
            flat.append(o)
        elif isinstance(o, tuple):
            flat.extend(_tensors(o))
    return flat


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _check_no_alias(outputs: list[torch.Tensor], x: torch.Tensor) -> None:
    ptrs = [_storage(o) for o in outputs if o.numel()]
    assert _storage(x) not in ptrs
    assert len(set(ptrs)) == len(ptrs), "two outputs share memory"


@pytest.mark.parametrize("expr", EXPRS)
@pytest.mark.parametrize("mode", ["no_grad", "grad", "grad_autograd_only"])
@pytest.mark.parametrize("method", ["forward", "forward_factors"])
def test_module_outputs_do_not_alias_input(expr: str, mode: str, method: str) -> None:
    m = zs.to_torch(expr, dtype=torch.float64)
    m.generated_backward = mode != "grad_autograd_only"
    x = torch.rand(6, len(m.variables), dtype=torch.float64) + 0.5
    x.requires_grad_(mode != "no_grad")
    out = getattr(m, method)(x)
    outputs = _tensors(out)
    _check_no_alias(outputs, x.detach())
    if mode == "no_grad":
        before = x.clone()
        kept = [o.clone() for o in outputs]
        for o in outputs:
            o.mul_(0)  # writing into a result leaves x alone
        assert torch.equal(x, before)
        x2 = torch.rand(6, len(m.variables), dtype=torch.float64)
        out2 = getattr(m, method)(x2)
        fresh = [o.clone() for o in _tensors(out2)]
        x2.fill_(7.0)  # reusing the input buffer does not change returned results
        assert all(torch.equal(a, b) for a, b in zip(_tensors(out2), fresh, strict=True))
        del kept


@pytest.mark.parametrize("expr", EXPRS)
def test_strict_evaluator_outputs_do_not_alias_input(expr: str) -> None:
    ev = zs.strict_evaluator(expr, dtype=torch.float64)
    n = len(ev.model.variables)
    x = torch.rand(6, n, dtype=torch.float64) + 0.5
    r = ev(x)
    outputs = [r.decoded, r.bottom_mask, *r.factor_values]
    _check_no_alias(outputs, x)
    snapshot = [v.clone() for v in r.factor_values]
    x.fill_(0.0)  # factor values are not views of x
    assert all(torch.equal(a, b) for a, b in zip(r.factor_values, snapshot, strict=True))
    for v in r.factor_values:
        v.mul_(0)
    assert torch.equal(x, torch.zeros_like(x))


def test_q_mul_does_not_zero_callers_x() -> None:
    """The reported case: ``P, Q = to_torch('1/x')(x); Q.mul_(0)``."""
    m = zs.to_torch("1/x")
    x = torch.tensor([[2.0], [3.0]])
    with torch.no_grad():
        _, Q = m(x)
    Q.mul_(0)
    assert x.tolist() == [[2.0], [3.0]]


@pytest.mark.parametrize("expr", EXPRS)
def test_numpy_evaluator_outputs_do_not_alias_input(expr: str) -> None:
    ev = zs.numpy_evaluator(expr)
    x = np.random.default_rng(0).random((6, len(ev.plan.variables))) + 0.5
    P, Q, V = ev.evaluate(x)
    r = ev(x)
    for a in (P, Q, V, *r.factor_values, r.decoded):
        assert not np.shares_memory(a, x)
