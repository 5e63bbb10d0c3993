"""Learnable projective layers: each ``forward(x)`` returns ``(P, Q)`` or ``(P, Q, V)``.

* :class:`AngularProjectiveHead` (seed 004): unit-circle tuples ``(cos, sin)``;
* :class:`SCMRationalLayer`: elementwise univariate ``P/Q`` (monomial or Chebyshev);
* :class:`MultivariateRationalLayer`: ``P_j(h)/Q(h)`` of given total degree;
* :class:`RationalTemplateLayer`: compiled from a rational expression with parameters;
* :class:`GradientPolicy`, :func:`apply_gradient_policy`: gradients at bottom samples;
* :class:`GaugePolicy`, :class:`ProjectiveNormalize`: the projective gauge;
* :func:`fit_rational`: deterministic data-driven fit of a univariate or multivariate layer;
* :func:`pole_report`: exact real zeros of ``Q`` of a univariate layer, true poles vs spurious.

See ``docs/layers.md``.
"""

from .angular_projective import AngularProjectiveHead
from .fit import FitInfo, fit_rational
from .gradient_policy import GradientPolicy, apply_gradient_policy, bottom_under_tau
from .multivariate import MultivariateRationalLayer, monomial_exponents
from .poles import Pole, PoleReport, pole_report
from .projective import GaugePolicy, ProjectiveNormalize
from .rational import SCMRationalLayer
from .template import RationalTemplateLayer, TemplateError

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
    "apply_gradient_policy",
    "fit_rational",
    "bottom_under_tau",
    "monomial_exponents",
    "pole_report",
]
