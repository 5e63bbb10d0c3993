"""zero_set_report(..., box=): certified verdicts on a fitted multivariate layer's Q."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp
import torch

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.layers import fit_rational, zero_set_report


def _layer() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    h = torch.rand(400, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = h[:, 0] / (h[:, 1] - 0.5)  # singular set {h1 = 1/2}
    return fit_rational(h, y, 1, 1)


def test_box_containing_the_singular_set_vanishes_with_an_exact_witness() -> None:
    rep = zero_set_report(_layer(), ("a", "b"), box={"a": (-1, 1), "b": (0, 1)})
    (dom,) = rep.domain
    assert not dom.defined_everywhere and dom.vanishing
    (Q,) = rep.denominators
    b = sp.Symbol("b")
    # the fitted Q is linear in b with a zero in [0, 1]: recheck the verdict exactly
    root = sp.solve(sp.Eq(Q, 0), b)[0]
    assert 0 <= root <= 1 and abs(Fraction(str(root)) - Fraction(1, 2)) < Fraction(1, 10**6)
    assert "Q on the box" in str(rep)


def test_box_away_from_the_singular_set_is_certified_nonzero() -> None:
    rep = zero_set_report(_layer(), ("a", "b"), box="a=-1:1,b=0.6:1")
    (dom,) = rep.domain
    assert dom.defined_everywhere
    (Q,) = rep.denominators
    b = sp.Symbol("b")
    # the certified lower bound holds at the box's nearest point to the zero (b = 0.6)
    factor = dom.factors[0]
    assert factor.verdict == "nonzero" and factor.lower_bound > 0
    q06 = abs(Q.subs(b, sp.Rational(3, 5)))
    assert q06 > 0


def test_box_errors_name_the_culprit() -> None:
    layer = _layer()
    with pytest.raises(InvalidConfigError, match="not features of the layer"):
        zero_set_report(layer, ("a", "b"), box={"c": (0, 1), "b": (0, 1)})
    with pytest.raises(InvalidConfigError, match="no interval for b"):
        zero_set_report(layer, ("a", "b"), box={"a": (0, 1)})
