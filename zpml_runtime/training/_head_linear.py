"""The linear start of a head fit: an exact :func:`~zpml_runtime.layers.fit_rational`
solution loaded into a rational head (``SCMRationalLayer``, ``MultivariateRationalLayer``)
before the L-BFGS refinement of :func:`~zpml_runtime.training.fit_head`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from .head_fit import _Cache

__all__ = ["load_linear_fit"]


def _flat_targets(cache: _Cache) -> tuple[np.ndarray, np.ndarray]:
    """Targets as values (``+-inf`` for bottom) and row weights (0 for excluded rows)."""
    ys, ws = [], []
    for y_n, y_d, mask in cache.targets:
        yn = y_n.detach().cpu().to(torch.float64)
        yd = y_d.detach().cpu().to(torch.float64)
        y = torch.where(
            yd != 0,
            yn / torch.where(yd != 0, yd, torch.ones_like(yd)),
            torch.where(yn >= 0, math.inf, -math.inf),
        )
        m = mask.detach().cpu()
        ys.append(torch.where(m, y, torch.zeros_like(y)))
        ws.append(m.to(torch.float64))
    return torch.cat([t.reshape(t.shape[0], -1) for t in ys]).numpy(), torch.cat(
        [t.reshape(t.shape[0], -1) for t in ws]
    ).numpy()


def load_linear_fit(head: nn.Module, cache: _Cache) -> bool:
    """Load a :func:`fit_rational` solution into a rational head; False when not applicable."""
    from ..layers import MultivariateRationalLayer, SCMRationalLayer, fit_rational

    y, w = _flat_targets(cache)
    dtype = next(head.parameters()).dtype
    if isinstance(head, SCMRationalLayer):
        x = (
            torch.cat([h.reshape(-1) for h in cache.inputs])
            .detach()
            .cpu()
            .to(torch.float64)
            .numpy()
        )
        y, w = y.reshape(-1), w.reshape(-1)
        if x.shape != y.shape or not np.any(w > 0):
            return False
        fitted = fit_rational(
            x,
            y,
            head.numerator_degree,
            head.denominator_degree,
            domain=head.domain,
            basis=head.basis,
            weights=w,
        )
        if not isinstance(fitted, SCMRationalLayer):  # 1-D x: always the univariate layer
            return False
        with torch.no_grad():
            head.numerator.copy_(fitted.numerator.to(dtype))
            head.denominator.copy_(fitted.denominator.to(dtype))
        return True
    if isinstance(head, MultivariateRationalLayer):
        h = (
            torch.cat([t.reshape(-1, t.shape[-1]) for t in cache.inputs])
            .detach()
            .cpu()
            .to(torch.float64)
            .numpy()
        )
        if y.shape[0] != h.shape[0] or y.shape[1] != head.out_features:
            return False
        rows = w.min(axis=1)  # a row counts when all of its outputs do
        if not np.any(rows > 0):
            return False
        fitted = fit_rational(
            h,
            y if head.out_features > 1 else y[:, 0],
            head.numerator_degree,
            head.denominator_degree,
            shared_denominator=head.shared_denominator,
            weights=rows,
        )
        if not isinstance(fitted, MultivariateRationalLayer):  # 2-D x: the multivariate layer
            return False
        with torch.no_grad():
            head.set_monomial_coefficients(fitted.monomial_coefficients().to(dtype))
        return True
    return False
