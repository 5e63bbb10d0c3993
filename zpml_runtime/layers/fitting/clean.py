"""``remove_spurious_poles``: divide the spurious real poles out of a univariate layer and refit ``P``."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as Pm

from ...errors import UnsupportedInputError
from .._pole_class import ChebForm
from .._roots import clusters
from ..poles import PoleReport, pole_report
from ..rational import SCMRationalLayer
from ._core import Problem, refit_fixed_q
from ._data import as_array, check_domain, lift
from ._spurious import CLUSTER_RADIUS, deflate

__all__ = ["remove_spurious_poles"]


def remove_spurious_poles(
    layer: SCMRationalLayer,
    x: Any,
    y: Any,
    *,
    interval: tuple[float, float] | None = None,
    cluster_tol: float = 1e-5,
) -> tuple[SCMRationalLayer, PoleReport]:
    """A copy of ``layer`` without its spurious real poles, and the report of the result.

    The poles are classified by :func:`pole_report` with ``data=(x, y)`` on
    ``interval`` (default: the range of ``x``). Each spurious pole's factor is
    divided out of ``Q`` (its other zeros stay where they are) and ``P`` is
    refitted by least squares on the data (relative error, bottom targets
    allowed). Degrees, basis, domain, dtype and layer options are kept; the
    freed leading coefficients of ``Q`` are 0. Returns the layer unchanged
    (a copy) when there is nothing to remove.
    """
    if not isinstance(layer, SCMRationalLayer):
        raise UnsupportedInputError(
            f"remove_spurious_poles expects an SCMRationalLayer, got {type(layer).__name__}"
        )
    xa = as_array(x, "x").reshape(-1)
    ya = as_array(y, "y").reshape(-1)
    interval = check_domain(interval, xa)
    report = pole_report(layer, interval, data=(xa, ya), cluster_tol=cluster_tol)
    out = copy.deepcopy(layer)
    if not report.spurious:
        return out, report
    dom = layer.domain if layer.basis == "chebyshev" else interval
    lo, hi = (Fraction(v) for v in dom)
    QF = ChebForm(report.denominator, lo, hi)
    found = clusters(QF.roots_t(), CLUSTER_RADIUS)
    targets = []
    for pole in report.spurious:
        t = complex(QF.to_t(pole.location))
        best = min(found, key=lambda c: abs(c.centre - t))
        if best not in targets:
            targets.append(best)
    b = deflate(QF.coef, targets)
    n, m = layer.numerator_degree, layer.denominator_degree
    yn, yd = lift(ya)
    ts = QF.to_t(xa)
    prob = Problem(
        C.chebvander(ts, n), C.chebvander(ts, m), yn[:, None], yd[:, None], np.ones((xa.size, 1))
    )
    bq = np.zeros(m + 1)
    bq[: b.size] = b[: m + 1]
    a = refit_fixed_q(prob, bq[:, None])[:, 0]
    top = float(np.abs(bq).max())
    a, bq = a / top, bq / top
    if layer.basis == "monomial":
        a = _monomial(a, dom, n)
        bq = _monomial(bq, dom, m)
    with torch.no_grad():
        out.numerator.copy_(torch.as_tensor(a, dtype=out.numerator.dtype))
        out.denominator.copy_(torch.as_tensor(bq, dtype=out.denominator.dtype))
    return out, pole_report(out, interval, data=(xa, ya), cluster_tol=cluster_tol)


def _monomial(c: np.ndarray, dom: tuple[float, float], degree: int) -> np.ndarray:
    poly = C.Chebyshev(c, domain=list(dom)).convert(kind=Pm.Polynomial)
    res = np.zeros(degree + 1)
    res[: poly.coef.size] = poly.coef[: degree + 1]
    return res
