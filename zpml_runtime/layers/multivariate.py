"""``MultivariateRationalLayer``: ``P_j(h)/Q(h)`` with polynomials of given total degree.

Degrees <= 2 use a quadratic-form layout (one matmul ``[1, h] @ W`` and a
row-wise product and sum); higher degrees gather the monomials of ``[1, h]``
once and do one matmul with a ``[monomials, out + q_out]`` weight. Either way
every ``P_j`` and the shared (or per-output) ``Q`` come out of one matmul.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn

from ..errors import InvalidConfigError
from ._base import ProjectiveLayer, check_degree, check_input, check_positive_int
from .gradient_policy import GradientPolicy
from .projective import GaugePolicy

__all__ = ["MultivariateRationalLayer", "monomial_exponents"]

#: refuse feature sets larger than this (the weight would have this many rows)
MAX_MONOMIALS = 200_000


def monomial_exponents(in_features: int, degree: int) -> list[tuple[int, ...]]:
    """Sorted index tuples ``(i_1 <= ... <= i_degree)`` over ``[1, h_0, ..., h_{n-1}]``.

    Index 0 is the constant 1, so a tuple with ``k`` nonzero entries is a monomial
    of total degree ``k``; the list is ordered by total degree (constant first).
    """
    combos = itertools.combinations_with_replacement(range(in_features + 1), degree)
    return sorted(combos, key=lambda c: (sum(1 for i in c if i), c))


class MultivariateRationalLayer(ProjectiveLayer):
    """Rational head ``h [..., in_features] -> (P, Q)`` with ``P, Q [..., out_features]``.

    ``P_j`` is a polynomial of total degree ``numerator_degree`` in the features;
    ``Q`` has total degree ``denominator_degree`` and is one polynomial shared by
    every output (``shared_denominator=True``, broadcast to ``[..., out_features]``)
    or one per output. The number of monomials is ``C(in_features + d, d)``
    (``d = max`` of the degrees), so keep ``in_features`` small for ``d >= 3``.

    Initialisation: ``Q = 1`` exactly; ``P`` gets ``nn.Linear``-like uniform
    weights on its degree-1 monomials (``+-1/sqrt(in_features)``) and zero elsewhere,
    so the head starts as a linear map. ``Q`` can reach zero (no floor).
    """

    can_reach_bottom = True
    #: buffers: the per-column degree mask, and (degree >= 3) the monomial index rows
    _mask: torch.Tensor
    _index: torch.Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        numerator_degree: int,
        denominator_degree: int,
        *,
        shared_denominator: bool = True,
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
        self.in_features = check_positive_int(in_features, "in_features", name)
        self.out_features = check_positive_int(out_features, "out_features", name)
        self.numerator_degree = check_degree(numerator_degree, "numerator_degree", name)
        self.denominator_degree = check_degree(denominator_degree, "denominator_degree", name)
        if not isinstance(shared_denominator, bool):
            raise InvalidConfigError(
                f"{name}: shared_denominator must be a bool, got {shared_denominator!r}"
            )
        if dtype not in (torch.float32, torch.float64):
            raise InvalidConfigError(
                f"{name}: dtype must be torch.float32 or torch.float64, got {dtype}"
            )
        self.shared_denominator = shared_denominator
        d = max(self.numerator_degree, self.denominator_degree)
        count = math.comb(self.in_features + d, d)
        if count > MAX_MONOMIALS:
            raise InvalidConfigError(
                f"{name}: {count} monomials of total degree <= {d} in {self.in_features} features "
                f"exceed the limit {MAX_MONOMIALS}; lower the degree or project the features first"
            )
        self.num_monomials = count
        self._degree = d
        q_out = 1 if shared_denominator else self.out_features
        k = self.out_features + q_out
        degs = [self.numerator_degree] * self.out_features + [self.denominator_degree] * q_out
        if d <= 2:
            # quadratic-form layout: weight[j, a, b] (a <= b) multiplies aug_a * aug_b, aug = [1, h]
            n1 = self.in_features + 1
            tri = torch.triu(torch.ones(n1, n1, dtype=dtype))
            mask = torch.zeros(k, n1, n1, dtype=dtype)
            for j, dj in enumerate(degs):
                if dj >= 2:
                    mask[j] = tri
                elif dj == 1:
                    mask[j, 0, :] = 1
                else:
                    mask[j, 0, 0] = 1
            weight = torch.zeros(k, n1, n1, dtype=dtype)
            linear: tuple[Any, ...] = (slice(None), 0, slice(1, None))
        else:
            exps = monomial_exponents(self.in_features, d)
            index = torch.tensor(exps, dtype=torch.long).T.contiguous()
            self.register_buffer("_index", index, persistent=False)
            degrees = torch.tensor([sum(1 for i in c if i) for c in exps])
            mask = torch.stack([(degrees <= dj).to(dtype) for dj in degs], dim=-1)
            weight = torch.zeros(len(exps), k, dtype=dtype)
            linear = (degrees == 1, slice(None))
        self.register_buffer("_mask", mask, persistent=False)
        bound = 1 / math.sqrt(self.in_features)
        P_init = torch.empty(self.out_features, self.in_features, dtype=dtype).uniform_(
            -bound, bound
        )
        if d <= 2:
            if self.numerator_degree >= 1:
                weight[: self.out_features, 0, 1:] = P_init
            else:
                weight[: self.out_features, 0, 0] = 1.0
            weight[self.out_features :, 0, 0] = 1.0
        else:
            lin = linear[0]
            if self.numerator_degree >= 1:
                weight[lin, : self.out_features] = P_init.T
            else:
                weight[0, : self.out_features] = 1.0
            weight[0, self.out_features :] = 1.0
        #: coefficients: ``[k, in+1, in+1]`` (degree <= 2) or ``[num_monomials, k]``;
        #: ``k = out_features + (1 or out_features)``: the P columns, then Q
        self.weight = nn.Parameter(weight)
        self._needs_mask = bool((mask == 0).any())

    def monomial_coefficients(self) -> torch.Tensor:
        """``[num_monomials, k]``: coefficients in :func:`monomial_exponents` order (P, then Q)."""
        w = self.weight * self._mask
        if self._degree > 2:
            return w
        exps = monomial_exponents(self.in_features, max(self._degree, 2))
        keep = [e for e in exps if sum(1 for i in e if i) <= self._degree]
        a = torch.tensor([e[0] for e in keep])
        b = torch.tensor([e[1] for e in keep])
        return w[:, a, b].T

    @torch.no_grad()
    def set_monomial_coefficients(self, coefficients: torch.Tensor) -> None:
        """Load ``[num_monomials, k]`` coefficients (the layout of :meth:`monomial_coefficients`).

        Entries above a column's degree must be 0 (they would be masked anyway).
        """
        c = torch.as_tensor(coefficients, dtype=self.weight.dtype, device=self.weight.device)
        expected = (
            self.num_monomials,
            self.weight.shape[0] if self._degree <= 2 else self.weight.shape[1],
        )
        if tuple(c.shape) != expected:
            raise InvalidConfigError(
                f"{type(self).__name__}: coefficients must have shape {list(expected)}, got {list(c.shape)}"
            )
        if self._degree > 2:
            self.weight.copy_(c)
            return
        exps = monomial_exponents(self.in_features, 2)
        keep = [e for e in exps if sum(1 for i in e if i) <= self._degree]
        a = torch.tensor([e[0] for e in keep])
        b = torch.tensor([e[1] for e in keep])
        self.weight.zero_()
        self.weight[:, a, b] = c.T

    def monomials(self, h: torch.Tensor) -> torch.Tensor:
        """``[..., num_monomials]``: every monomial of total degree <= max degree (reference)."""
        aug = torch.cat([torch.ones_like(h[..., :1]), h], dim=-1)
        exps = monomial_exponents(self.in_features, max(self._degree, 1))
        exps = [e for e in exps if sum(1 for i in e if i) <= self._degree]
        feats = torch.ones(*h.shape[:-1], len(exps), dtype=h.dtype, device=h.device)
        for t in range(len(exps[0])):
            feats = feats * aug[..., torch.tensor([e[t] for e in exps], device=h.device)]
        return feats

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(P, Q)``, each ``[..., out_features]``."""
        check_input(type(self).__name__, h, dtype=self.weight.dtype, last_dim=self.in_features)
        if self._degree <= 1:  # P and Q affine in h: one fused matmul + bias, no augmented copy
            w0 = self.weight[:, 0, :]
            if self._needs_mask:
                w0 = w0 * self._mask[:, 0, :]
            out = torch.nn.functional.linear(h, w0[:, 1:], w0[:, 0])
            P = out[..., : self.out_features]
            Q = out[..., self.out_features :]
            if self.shared_denominator:
                Q = Q.expand(P.shape)
            return self.finish(P, Q)
        w = self.weight * self._mask if self._needs_mask else self.weight
        aug = torch.cat([torch.ones_like(h[..., :1]), h], dim=-1)
        if self._degree <= 2:
            k, n1 = w.shape[0], w.shape[1]
            G = torch.matmul(aug, w.permute(1, 0, 2).reshape(n1, k * n1))
            out = (G.view(*h.shape[:-1], k, n1) * aug.unsqueeze(-2)).sum(-1)
        else:
            feats = torch.index_select(aug, -1, self._index[0])
            for row in self._index[1:]:
                feats = feats * torch.index_select(aug, -1, row)
            out = torch.matmul(feats, w)
        P = out[..., : self.out_features]
        Q = out[..., self.out_features :]
        if self.shared_denominator:
            Q = Q.expand(P.shape)
        return self.finish(P, Q)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"numerator_degree={self.numerator_degree}, denominator_degree={self.denominator_degree}, "
            f"shared_denominator={self.shared_denominator}, monomials={self.num_monomials}, "
            f"{self._policy_repr()}"
        )
