"""``RationalTemplateLayer``: a layer compiled from a rational expression with learnable coefficients.

The expression (text, parsed safely, or a sympy tree) is flattened by
:func:`zpml_symbolic.flatten` into ``P/Q`` plus validity factors and compiled by
:func:`zpml_symbolic.to_torch`; the declared parameters become ``nn.Parameter``
scalars. Strict semantics are kept: a sample where ``Q`` or a validity factor
vanishes decodes to bottom, in training (gradient policy) and in eval (inside
``SCMInferenceWrapper``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sympy as sp
import torch

import zpml_symbolic as zs
from zpml_symbolic.frontend.decimal_number import fold_negated_numbers, with_decimals
from zpml_symbolic.frontend.equation import Equation, default_variables, parse_equation

from ..errors import InvalidConfigError, TemplateError, UnsupportedInputError
from ._base import ProjectiveLayer, check_input
from ._exact import check_digits, exact_value
from .gradient_policy import GradientPolicy
from .projective import GaugePolicy

__all__ = ["RationalTemplateLayer", "TemplateError"]


def _names(items: Any, field: str) -> tuple[str, ...]:
    if isinstance(items, str | sp.Symbol):
        items = [items]
    try:
        names = tuple(s.name if isinstance(s, sp.Symbol) else s for s in items)
    except TypeError:
        raise TemplateError(
            f"{field} must be a sequence of names or sympy Symbols, got {items!r}"
        ) from None
    for n in names:
        if not isinstance(n, str):
            raise TemplateError(f"{field} must contain names or sympy Symbols, got {n!r}")
    if len(set(names)) != len(names):
        raise TemplateError(f"{field} lists a name twice: {list(names)}")
    return names


class RationalTemplateLayer(ProjectiveLayer):
    """``forward(x [..., n_vars]) -> (P, Q)`` or ``(P, Q, V)`` of a compiled rational template.

    * ``expr``: text (``"(a0 + a1*x)/(b0 + b1*x)"``, parsed by :func:`zpml_symbolic.parse`,
      never ``eval``) or a sympy expression (build it with ``evaluate=False``
      to keep its bottoms, see docs/frontend.md).
    * ``parameters``: the names of the learnable coefficients. Each must occur in
      the expression. With ``variables`` given, every other symbol must be one
      of them (input columns in that order); without it, the remaining symbols
      are the inputs, sorted by name.
    * ``init``: initial values by parameter name; parameters not listed start at 1.0.

    ``P``, ``Q`` have the batch shape ``x.shape[:-1]``; ``V`` (``[..., k]``) is
    returned when the flattened expression has retained validity factors
    (:attr:`has_validity_factors`). Default gradient policy: ``PROJECT``, so
    the samples where ``Q`` or a factor vanishes (or is below ``tau_train``)
    get no gradient.
    """

    can_reach_bottom = True

    def __init__(
        self,
        expr: str | sp.Expr,
        parameters: Sequence[str | sp.Symbol],
        *,
        init: Mapping[str, float] | None = None,
        variables: Sequence[str | sp.Symbol] | None = None,
        dtype: torch.dtype = torch.float32,
        gradient_policy: GradientPolicy | str = GradientPolicy.PROJECT,
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
        if dtype not in (torch.float32, torch.float64):
            raise InvalidConfigError(
                f"RationalTemplateLayer: dtype must be torch.float32 or torch.float64, got {dtype}"
            )
        params = _names(parameters, "parameters")
        if not isinstance(expr, str | sp.Basic):
            raise UnsupportedInputError(
                f"RationalTemplateLayer: expr must be a string or a sympy expression, got {type(expr).__name__}"
            )
        try:
            tree = zs.parse(expr, parameters=params) if isinstance(expr, str) else expr
            symbols = {s.name for s in tree.free_symbols if isinstance(s, sp.Symbol)}
        except zs.ZeroProofError as exc:
            raise TemplateError(f"RationalTemplateLayer: cannot parse the template: {exc}") from exc
        missing = [p for p in params if p not in symbols]
        if missing:
            raise TemplateError(
                f"RationalTemplateLayer: declared parameters {missing} do not occur in the template "
                f"{str(tree)!r}; remove them from parameters"
            )
        if variables is not None:
            var_names = _names(variables, "variables")
            both = sorted(set(var_names) & set(params))
            if both:
                raise TemplateError(
                    f"RationalTemplateLayer: {both} listed both as variables and as parameters"
                )
            undeclared = sorted(symbols - set(params) - set(var_names))
            if undeclared:
                raise TemplateError(
                    f"RationalTemplateLayer: symbols {undeclared} of the template are neither declared "
                    f"parameters nor variables; add them to parameters=[...] or variables=[...]"
                )
        values = {p: 1.0 for p in params}
        for key, val in (init or {}).items():
            name = key.name if isinstance(key, sp.Symbol) else key
            if name not in values:
                raise TemplateError(
                    f"RationalTemplateLayer: init gives a value for {name!r}, which is not a declared "
                    f"parameter {list(params)}"
                )
            values[name] = val
        try:
            self.fru = zs.flatten(tree, parameters=params, variables=variables)
            if not self.fru.variables:
                raise TemplateError(
                    f"RationalTemplateLayer: the template {str(tree)!r} has no input variable"
                )
            self.module = zs.to_torch(self.fru, init=values, dtype=dtype)
        except zs.ZeroProofError as exc:
            raise TemplateError(f"RationalTemplateLayer: {exc}") from exc
        self.parameter_names: tuple[str, ...] = tuple(self.module.parameter_names)
        self.variables: tuple[str, ...] = tuple(self.module.variables)
        self._dtype = dtype
        #: the parsed equation when built by :meth:`from_equation` (else None)
        self.equation: Equation | None = None

    @classmethod
    def from_equation(
        cls,
        text: str,
        *,
        variables: Sequence[str | sp.Symbol] | None = None,
        prefix: str = "c",
        dialect: str = "pysr",
        dtype: torch.dtype = torch.float32,
        gradient_policy: GradientPolicy | str = GradientPolicy.PROJECT,
        tau_train: float = 0.0,
        gauge: GaugePolicy | str = GaugePolicy.CANONICAL_DENOMINATOR,
        clamp_value: float = 1.0,
    ) -> RationalTemplateLayer:
        """A layer from an equation with numeric constants, e.g. one found by symbolic regression.

        Every float literal (``1.7``, ``-0.5``, ``2.0``, ``1e-3``) becomes a learnable
        coefficient ``c0, c1, ...`` (written order; a literal after a unary minus
        carries the sign) initialised to its value; integer literals and exponents
        (``x**2``, ``x0 ^ 2.0``, ``square(x)``) stay exact. ``variables``: the input
        columns in order; default: ``x0 .. x<max k>`` for PySR's ``x<k>`` names, else
        the names in natural sort order. ``layer.equation`` keeps the parsed
        equation (its ``literals`` and exact ``constants``).

        Raises :class:`~zpml_symbolic.errors.NotRationalTextError` naming the function
        or power when the equation is not rational (``sin(x0)``, ``x0 ^ 2.5``),
        :class:`~zpml_symbolic.errors.ParseError` for malformed text and
        :class:`TemplateError` for inconsistent names.
        """
        if not isinstance(text, str):
            raise UnsupportedInputError(
                f"RationalTemplateLayer.from_equation: text must be a str, got {type(text).__name__}"
            )
        eq = parse_equation(text, prefix=prefix, dialect=dialect)
        if variables is None:
            variables = default_variables(eq.identifiers)
            if not variables:
                raise TemplateError(
                    f"RationalTemplateLayer.from_equation: the equation {text!r} uses no input "
                    "variable; pass variables=[...] (the data's columns)"
                )
        layer = cls(
            eq.expr,
            eq.parameters,
            init=eq.initial_values(),
            variables=variables,
            dtype=dtype,
            gradient_policy=gradient_policy,
            tau_train=tau_train,
            gauge=gauge,
            clamp_value=clamp_value,
        )
        layer.equation = eq
        return layer

    @property
    def dtype(self) -> torch.dtype:
        """The coefficients' dtype (inputs must have it too)."""
        return self._dtype

    @property
    def has_validity_factors(self) -> bool:
        """True when ``forward`` returns ``V`` (retained validity factors)."""
        return bool(self.fru.validity_factors)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(P, Q[, V])`` at ``x`` of shape ``[..., len(variables)]``."""
        check_input(type(self).__name__, x, dtype=self._dtype, last_dim=len(self.variables))
        return self.finish(*self.module(x))

    def coefficient_values(self) -> dict[str, float]:
        """Current coefficient values as floats, by parameter name."""
        return dict(self.module.coefficient_values())

    def exact_coefficients(self, digits: int | None = None) -> dict[str, sp.Rational]:
        """Coefficients as exact rationals of their floats (or rounded to ``digits``)."""
        digits = check_digits(digits)
        out = {}
        for n, v in self.coefficient_values().items():
            f = exact_value(v, digits)
            out[n] = sp.Rational(f.numerator, f.denominator)
        return out

    def to_sympy(self, digits: int | None = None) -> sp.Expr:
        """The template as written, with the trained coefficients substituted.

        ``digits=None``: each coefficient is the exact rational of its float, so
        compiling the result again gives the same outputs bit for bit.
        ``digits=k``: each coefficient rounded to ``k`` significant digits and shown
        as a decimal (``x0/(x1 - 1.7)``) that compiles to exactly that decimal
        (:class:`~zpml_symbolic.frontend.DecimalNumber`): ``zs.flatten`` of the
        result, ``zs.parse(str(result))`` and ``from_equation(str(result))`` all read
        ``1.7`` as ``17/10``.
        """
        digits = check_digits(digits)
        if digits is None:
            with sp.evaluate(False):
                return fold_negated_numbers(self.module.to_sympy())
        values = self.coefficient_values()
        for v in values.values():
            exact_value(v)  # a diverged (non-finite) coefficient is an error, not "nan"
        return with_decimals(zs.to_sympy(self.fru.root), values, digits)

    def exact_polynomials(
        self, digits: int | None = None
    ) -> tuple[sp.Expr, sp.Expr, tuple[sp.Expr, ...]]:
        """``(P, Q, validity factors)`` with the coefficients substituted exactly (sympy expressions)."""
        coeffs = self.exact_coefficients(digits)
        subs = {
            s: coeffs[s.name]
            for s in self.fru.numerator.free_symbols
            | self.fru.denominator.free_symbols
            | set().union(*(v.free_symbols for v in self.fru.validity_factors))
            if zs.is_coefficient(s)
        }
        P = sp.expand(self.fru.numerator.xreplace(subs))
        Q = sp.expand(self.fru.denominator.xreplace(subs))
        V = tuple(sp.expand(v.xreplace(subs)) for v in self.fru.validity_factors)
        return P, Q, V

    def extra_repr(self) -> str:
        return (
            f"expr={str(zs.to_sympy(self.fru.root))!r}, parameters={list(self.parameter_names)}, "
            f"variables={list(self.variables)}, {self._policy_repr()}"
        )
