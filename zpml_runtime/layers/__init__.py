"""Learnable projective layers: each ``forward(x)`` returns ``(P, Q)`` or ``(P, Q, V)``.

* :class:`AngularProjectiveHead` (seed 004): unit-circle tuples ``(cos, sin)``;
* :class:`SCMRationalLayer`: elementwise univariate ``P/Q`` (monomial or Chebyshev);
* :class:`MultivariateRationalLayer`: ``P_j(h)/Q(h)`` of given total degree;
* :class:`RationalTemplateLayer`: compiled from a rational expression with parameters;
* :class:`GradientPolicy`, :func:`apply_gradient_policy`: gradients at bottom samples;
* :class:`GaugePolicy`, :class:`ProjectiveNormalize`: the projective gauge;
* :func:`fit_rational`: deterministic data-driven fit of a univariate or multivariate layer;
* :func:`pole_report`: exact real zeros of ``Q`` of a univariate layer, true poles vs spurious;
  :func:`remove_spurious_poles` divides the spurious ones out and refits;
* :func:`zero_set_report`: exact factors of a multivariate layer's denominator, and slices.

See ``docs/layers.md``.
"""

from ..errors import TemplateError
from .angular_projective import AngularProjectiveHead
from .fit import FitInfo, fit_rational
from .fitting.clean import remove_spurious_poles
from .gradient_policy import GradientPolicy, apply_gradient_policy, bottom_under_tau
from .multivariate import MultivariateRationalLayer, monomial_exponents
from .poles import Pole, PoleReport, pole_report
from .projective import GaugePolicy, ProjectiveNormalize
from .rational import SCMRationalLayer
from .template import RationalTemplateLayer
from .zero_set import ZeroSetReport, zero_set_report

__all__ = [
    "AngularProjectiveHead",
    "FitInfo",
    "GaugePolicy",
    "GradientPolicy",
    "MultivariateRationalLayer",
    "Pole",
    "PoleReport",
    "ProjectiveNormalize",
    "RationalTemplateLayer",
    "SCMRationalLayer",
    "TemplateError",
    "ZeroSetReport",
    "apply_gradient_policy",
    "fit_rational",
    "bottom_under_tau",
    "monomial_exponents",
    "pole_report",
    "remove_spurious_poles",
    "zero_set_report",
]
