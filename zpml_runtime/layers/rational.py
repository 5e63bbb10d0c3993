"""``SCMRationalLayer``: an elementwise univariate rational function ``P(x)/Q(x)``.

Both polynomials have learnable coefficients in a monomial or Chebyshev basis.
Nothing keeps ``Q`` away from zero (no softplus floor, no ``1 + |.|``): the
layer can learn a pole, and a sample where ``Q`` vanishes decodes to bottom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import sympy as sp
import torch
from torch import nn

from zpml_symbolic.frontend.decimal_number import DecimalNumber, decimal_text

from ..errors import InvalidConfigError, ShapeMismatchError
from ._base import ProjectiveLayer, check_degree, check_input
from ._exact import check_digits, exact_value
from .gradient_policy import GradientPolicy
from .projective import GaugePolicy

__all__ = ["BASES", "SCMRationalLayer"]

#: the supported coefficient bases
BASES = ("monomial", "chebyshev")


def _basis(t: torch.Tensor, degree: int, basis: str) -> torch.Tensor:
    """``[..., degree + 1]``: ``t**k`` or ``T_k(t)`` for ``k = 0..degree``."""
    cols = [torch.ones_like(t)]
    if degree >= 1:
        cols.append(t)
    for _ in range(2, degree + 1):
        if basis == "monomial":
            cols.append(cols[-1] * t)
        else:
            cols.append(2 * t * cols[-1] - cols[-2])
    return torch.stack(cols, dim=-1)


def _exact_basis_polys(degree: int, basis: str, lo: Fraction, hi: Fraction) -> list[sp.Poly]:
    """The basis functions as exact polynomials in ``x`` (Chebyshev mapped from ``[lo, hi]``)."""
    x = sp.Symbol("x")
    if basis == "monomial":
        t = sp.Poly(x, x, domain=sp.QQ)
    else:
        scale = sp.Rational(2) / sp.Rational(hi - lo)
        mid = sp.Rational(hi + lo) / 2
        t = sp.Poly(scale * (x - mid), x, domain=sp.QQ)
    polys = [sp.Poly(1, x, domain=sp.QQ), t]
    for _ in range(2, degree + 1):
        polys.append(polys[-1] * t if basis == "monomial" else 2 * t * polys[-1] - polys[-2])
    return polys[: degree + 1]


class SCMRationalLayer(ProjectiveLayer):
    """Elementwise ``P(x)/Q(x)`` of degrees ``(numerator_degree, denominator_degree)``.

    ``forward(x)`` accepts a floating tensor of any shape (the layer's dtype) and
    returns ``(P, Q)`` of the same shape. Coefficients are the parameters
    ``numerator`` (``[numerator_degree + 1]``) and ``denominator``
    (``[denominator_degree + 1]``), lowest degree first, in the chosen basis:

    * ``"monomial"``: ``P(x) = sum_k a_k x**k``;
    * ``"chebyshev"``: ``P(x) = sum_k a_k T_k(t)`` with ``t = (2x - (lo + hi)) / (hi - lo)``
      mapping ``domain = (lo, hi)`` onto ``[-1, 1]`` (better conditioned than
      monomials for degrees above ~4). Inputs outside the domain are evaluated
      too, but ``T_k`` grows like ``|t|**k`` there.

    Default initialisation: ``P(x) = x`` (``P = 1`` when ``numerator_degree == 0``)
    and ``Q(x) = 1``, i.e. the identity, far from any pole; pass
    ``numerator_init``/``denominator_init`` (coefficient sequences in the basis)
    to override.
    """

    can_reach_bottom = True

    def __init__(
        self,
        numerator_degree: int,
        denominator_degree: int,
        *,
        basis: str = "monomial",
        domain: tuple[float, float] = (-1.0, 1.0),
        numerator_init: Sequence[float] | torch.Tensor | None = None,
        denominator_init: Sequence[float] | torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        gradient_policy: GradientPolicy | str = GradientPolicy.PASSTHROUGH,
        tau_train: float = 0.0,
        gauge: GaugePolicy | str = GaugePolicy.CANONICAL_DENOMINATOR,
        clamp_value: float = 1.0,
    ) -> None:
        super().__init__(
            gradient_policy=gradient_policy,
            tau_train=tau_train,
            gauge=gauge,
            clamp_value=clamp_value,
        )
        name = type(self).__name__
        self.numerator_degree = check_degree(numerator_degree, "numerator_degree", name)
        self.denominator_degree = check_degree(denominator_degree, "denominator_degree", name)
        if basis not in BASES:
            raise InvalidConfigError(
                f"{name}: unknown basis {basis!r}; expected one of {', '.join(map(repr, BASES))}"
            )
        self.basis = basis
        self.domain = self._check_domain(domain, name)
        if dtype not in (torch.float32, torch.float64):
            raise InvalidConfigError(
                f"{name}: dtype must be torch.float32 or torch.float64, got {dtype}"
            )
        lo, hi = self.domain
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        identity = [mid, half] if basis == "chebyshev" else [0.0, 1.0]
        p0 = identity if self.numerator_degree >= 1 else [1.0]
        self.numerator = nn.Parameter(
            self._init("numerator_init", numerator_init, self.numerator_degree, p0, dtype)
        )
        self.denominator = nn.Parameter(
            self._init("denominator_init", denominator_init, self.denominator_degree, [1.0], dtype)
        )

    @staticmethod
    def _check_domain(domain: Any, name: str) -> tuple[float, float]:
        try:
            lo, hi = (float(v) for v in domain)
        except (TypeError, ValueError):
            raise InvalidConfigError(
                f"{name}: domain must be a pair (lo, hi) of finite numbers, got {domain!r}"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InvalidConfigError(
                f"{name}: domain must satisfy lo < hi with finite ends, got {domain!r}"
            )
        return lo, hi

    def _init(
        self, field: str, value: Any, degree: int, default: list[float], dtype: torch.dtype
    ) -> torch.Tensor:
        if value is None:
            out = torch.zeros(degree + 1, dtype=dtype)
            out[: len(default)] = torch.tensor(default, dtype=dtype)
            return out
        out = torch.as_tensor(value, dtype=dtype).detach().clone().reshape(-1)
        if out.numel() != degree + 1:
            raise ShapeMismatchError(
                f"{type(self).__name__}: {field} needs {degree + 1} coefficients "
                f"(degree {degree}), got {out.numel()}"
            )
        if not torch.isfinite(out).all():
            raise InvalidConfigError(
                f"{type(self).__name__}: {field} must be finite, got {value!r}"
            )
        return out

    def _t(self, x: torch.Tensor) -> torch.Tensor:
        if self.basis == "monomial":
            return x
        lo, hi = self.domain
        return (x - (lo + hi) / 2) * (2 / (hi - lo))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(P(x), Q(x))`` elementwise, same shape as ``x``."""
        check_input(type(self).__name__, x, dtype=self.numerator.dtype)
        n, m = self.numerator_degree, self.denominator_degree
        d = max(n, m)
        B = _basis(self._t(x), d, self.basis)
        a = self.numerator if n == d else nn.functional.pad(self.numerator, (0, d - n))
        b = self.denominator if m == d else nn.functional.pad(self.denominator, (0, d - m))
        PQ = torch.matmul(B, torch.stack([a, b], dim=-1))
        return self.finish(PQ[..., 0], PQ[..., 1])

    def exact_polynomials(self, digits: int | None = None) -> tuple[sp.Poly, sp.Poly]:
        """``(P, Q)`` as exact polynomials in ``x`` over QQ (monomial basis).

        Each coefficient is the exact binary rational of its float value (or its
        rounding to ``digits`` significant digits); the Chebyshev basis and the
        domain map are expanded exactly.
        """
        digits = check_digits(digits)
        lo, hi = (Fraction(v) for v in self.domain)
        d = max(self.numerator_degree, self.denominator_degree)
        basis = _exact_basis_polys(d, self.basis, lo, hi)
        x = sp.Symbol("x")
        out = []
        for coeffs in (self.numerator, self.denominator):
            poly = sp.Poly(0, x, domain=sp.QQ)
            for k, c in enumerate(coeffs.detach().cpu().tolist()):
                f = exact_value(c, digits)
                poly = poly + basis[k] * sp.Rational(f.numerator, f.denominator)
            out.append(poly)
        return out[0], out[1]

    def to_sympy(self, digits: int | None = None) -> sp.Expr:
        """``P(x)/Q(x)`` as a sympy expression in ``x`` (monomial form, unevaluated division).

        ``digits=None`` keeps the exact rationals of the float coefficients
        (``float()`` of each gives the parameter back bit for bit); ``digits=k``
        shows them rounded to ``k`` significant digits, as decimals that compile
        to exactly those decimals (``zs.flatten`` of the result or of its text).
        """
        digits = check_digits(digits)
        P, Q = self.exact_polynomials(None)
        x = sp.Symbol("x")

        def show(poly: sp.Poly) -> sp.Expr:
            if digits is None:
                terms = [c * x**k for (k,), c in sorted(poly.terms())]
                return sp.Add(*terms) if terms else sp.Integer(0)
            shown = []
            for (k,), c in sorted(poly.terms()):
                num = DecimalNumber(decimal_text(float(c), digits))
                shown.append(num if k == 0 else sp.Mul(num, x**k, evaluate=False))
            if not shown:
                return sp.Integer(0)
            return shown[0] if len(shown) == 1 else sp.Add(*shown, evaluate=False)

        return sp.Mul(show(P), sp.Pow(show(Q), -1, evaluate=False), evaluate=False)

    def extra_repr(self) -> str:
        return (
            f"numerator_degree={self.numerator_degree}, denominator_degree={self.denominator_degree}, "
            f"basis={self.basis!r}, domain={self.domain}, {self._policy_repr()}"
        )
