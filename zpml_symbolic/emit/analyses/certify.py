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

from zpml_symbolic.emit.lowering.interpreter import Interpreter, ProgramLike, column
from zpml_symbolic.emit.lowering.plan import Plan

__all__ = ["AbsoluteBound", "ErrorBounds", "RoundingDepth"]

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
        self.depth = RoundingDepth(plan.program).run()

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
        A = AbsoluteBound(program, x.detach().abs(), coefficients, torch.finfo(dt).tiny).run()
        batch = x.shape[:-1]
        out = {}
        for name in names:
            v = A[program.outputs[name]]
            v = torch.as_tensor(v, dtype=dt, device=x.device).expand(batch)
            out[name] = v * self.factor(name, dt)
        return out


def _rounds(c: Fraction) -> int:
    """1 if the constant ``c`` may round when cast to the evaluation dtype, else 0."""
    return 0 if _exact_in(c) else 1


@column("rounding_depth")
class RoundingDepth(Interpreter[int]):
    """The rounding depth ``d`` of every instruction (see the module docstring)."""

    def input(self, column: int) -> int:
        return 0

    def param(self, index: int) -> int:
        return 1  # a cast to the input dtype may round

    def const(self, value: Fraction) -> int:
        return _rounds(value)

    def add(self, a: int, b: int) -> int:
        return max(a, b) + 1

    def sub(self, a: int, b: int) -> int:
        return max(a, b) + 1

    def mul(self, a: int, b: int) -> int:
        return a + b + 1

    def square(self, a: int) -> int:
        return a + a + 1

    def neg(self, a: int) -> int:
        return a

    def scale(self, a: int, c: Fraction) -> int:
        return a + _rounds(c) + 1

    def shift(self, a: int, c: Fraction) -> int:
        return max(a, _rounds(c)) + 1

    def axpy(self, a: int, b: int, c: Fraction) -> int:
        return max(a, b + _rounds(c) + 1) + 1


@column("absolute_bound")
class AbsoluteBound(Interpreter[Any]):
    """``A``: the program on ``|x|`` with every subtraction an addition and ``tiny`` (the
    smallest normal) added after every multiplication, evaluated in ``ax.dtype``."""

    def __init__(
        self, program: ProgramLike, ax: torch.Tensor, coefficients: Mapping[str, float], tiny: float
    ) -> None:
        super().__init__(program)
        self.ax, self.coefficients, self.tiny = ax, coefficients, tiny

    def input(self, column: int) -> Any:
        return self.ax[..., column]

    def param(self, index: int) -> Any:
        return abs(self.coefficients[self.program.parameters[index]])

    def const(self, value: Fraction) -> Any:
        return abs(float(value))

    def add(self, a: Any, b: Any) -> Any:
        return a + b

    def sub(self, a: Any, b: Any) -> Any:
        return a + b

    def mul(self, a: Any, b: Any) -> Any:
        return a * b + self.tiny

    def square(self, a: Any) -> Any:
        return a * a + self.tiny

    def neg(self, a: Any) -> Any:
        return a

    def scale(self, a: Any, c: Fraction) -> Any:
        return a * abs(float(c)) + self.tiny

    def shift(self, a: Any, c: Fraction) -> Any:
        return a + abs(float(c))

    def axpy(self, a: Any, b: Any, c: Fraction) -> Any:
        return a + (b * abs(float(c)) + self.tiny)


def uncertain(value: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """Finite ``value`` whose non-zeroness the bound does not certify (``not |value| > bound``)."""
    return torch.isfinite(value) & ~(value.detach().abs() > bound)
