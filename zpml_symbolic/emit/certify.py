"""Rigorous forward error bounds of the program's own evaluation (certified masks).

Floating-point evaluation can round an exact zero of ``Q`` or of a validity
factor to a tiny non-zero value (``x*y - fl(x*y) - err(x*y)`` is exactly 0 but
evaluates to ``-err``). :class:`ErrorBounds` computes, per sample, a bound
``B`` with ``|fl(V) - V| <= B`` for every program output ``V``, for the
program's evaluation order (every back end runs the same :class:`Program`,
bit for bit on the mask inputs). ``|fl(V)| > B`` then *certifies* ``V != 0``;
certified masks flag every finite ``V`` with ``not |fl(V)| > B`` as a
semantic bottom.

The bound (running-error analysis of a straight-line ``+ - *`` program, unit
roundoff ``u``, ``gamma_n = n*u/(1 - n*u)``, ``N`` the smallest normal):

* ``A``, the program with every value replaced by its absolute value, every
  subtraction by an addition, and ``N`` added after every multiplication
  (``|fl(ab) - ab| <= u*(|ab| + N)`` holds with gradual underflow);
* ``d``, the rounding depth: 0 for inputs, 1 for parameters and inexact
  constants, ``max(d_a, d_b) + 1`` for sums, ``d_a + d_b + 1`` for products;
* then ``|fl(V) - V| <= gamma_d * A`` (induction on the program), and ``A``
  itself is computed in floating point with relative error at most
  ``gamma_{2d+2}``, so the evaluator uses
  ``B = gamma_d * (1 + gamma_{2d+2}) * (1 + 4u) * fl(A)`` (the last factor
  covers the roundings of that product). An infinite or NaN ``fl(A)`` certifies nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import torch

from zpml_symbolic.emit.plan import Plan

__all__ = ["ErrorBounds"]

_UNIT = {torch.float16: 11, torch.bfloat16: 8, torch.float32: 24, torch.float64: 53}


def _gamma(n: int, p: int) -> Fraction:
    u = Fraction(1, 2**p)
    if n * u >= 1:
        return Fraction(10**9)
    return n * u / (1 - n * u)


def _exact_in(c: Fraction) -> bool:
    """Whether ``c`` is exact in every float dtype used (dyadic, at most 8 significant bits)."""
    d = c.denominator
    return d & (d - 1) == 0 and abs(c.numerator).bit_length() <= 8 and d.bit_length() < 100


class ErrorBounds:
    """Per-sample bounds ``|fl(out) - out| <= B`` for the outputs of one plan's program."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        program = plan.program
        depth: list[int] = []
        for ins in program.instrs:
            a = [depth[i] for i in ins.args]
            op = ins.op
            if op == "input":
                d = 0
            elif op == "param":
                d = 1  # a cast to the input dtype may round
            elif op == "const":
                d = 0 if ins.const is not None and _exact_in(ins.const) else 1
            elif op in ("add", "sub"):
                d = max(a) + 1
            elif op == "neg":
                d = a[0]
            elif op in ("mul", "square"):
                d = a[0] + a[-1] + 1
            elif op == "scale":
                d = a[0] + (0 if ins.const is not None and _exact_in(ins.const) else 1) + 1
            elif op == "shift":
                d = max(a[0], 0 if ins.const is not None and _exact_in(ins.const) else 1) + 1
            elif op == "axpy":
                c = 0 if ins.const is not None and _exact_in(ins.const) else 1
                d = max(a[0], a[1] + c + 1) + 1
            else:  # pragma: no cover - a new op must get a rule
                raise NotImplementedError(f"no error-bound rule for op {op!r}")
            depth.append(d)
        self.depth = depth

    def factor(self, name: str, dtype: torch.dtype) -> float:
        """The constant ``gamma_d * (1 + gamma_{2d+2}) * (1 + 4u)`` of output ``name``, rounded up."""
        p = _UNIT[dtype]
        d = self.depth[self.plan.program.outputs[name]]
        c = _gamma(d, p) * (1 + _gamma(2 * d + 2, p)) * (1 + Fraction(4, 2**p))
        f = float(c)
        return f if Fraction(f) >= c else float(Fraction(f) + Fraction(f) / 2**52)

    @torch.no_grad()
    def bounds(
        self, x: torch.Tensor, coefficients: Mapping[str, float], names: list[str]
    ) -> dict[str, torch.Tensor]:
        """``B`` for each output in ``names`` at ``x`` (shape ``[..., n_vars]``), in ``x.dtype``."""
        program = self.plan.program
        dt = x.dtype
        tiny = torch.finfo(dt).tiny
        ax = x.detach().abs()
        A: list[Any] = []
        for ins in program.instrs:
            op, a = ins.op, [A[i] for i in ins.args]
            c = abs(float(ins.const)) if ins.const is not None else 0.0
            if op == "input":
                A.append(ax[..., ins.index])
            elif op == "param":
                A.append(abs(coefficients[program.parameters[ins.index or 0]]))
            elif op == "const":
                A.append(c)
            elif op in ("add", "sub"):
                A.append(a[0] + a[1])
            elif op == "neg":
                A.append(a[0])
            elif op == "mul":
                A.append(a[0] * a[1] + tiny)
            elif op == "square":
                A.append(a[0] * a[0] + tiny)
            elif op == "scale":
                A.append(a[0] * c + tiny)
            elif op == "shift":
                A.append(a[0] + c)
            elif op == "axpy":
                A.append(a[0] + (a[1] * c + tiny))
        batch = x.shape[:-1]
        out = {}
        for name in names:
            v = A[program.outputs[name]]
            v = torch.as_tensor(v, dtype=dt, device=x.device).expand(batch)
            out[name] = v * self.factor(name, dt)
        return out


def uncertain(value: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """Finite ``value`` whose non-zeroness the bound does not certify (``not |value| > bound``)."""
    return torch.isfinite(value) & ~(value.detach().abs() > bound)
