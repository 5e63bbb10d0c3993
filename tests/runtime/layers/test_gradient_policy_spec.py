"""Training's notion of bottom is deployment's: ``bottom_under_tau`` against ``zpml_core.spec``."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from zpml_core.spec import boundary_values, classify
from zpml_runtime.layers.gradient_policy import (
    GradientPolicy,
    apply_gradient_policy,
    bottom_under_tau,
)

TAU = 1e-3
VALUES = boundary_values("float32", [TAU])


@given(
    q=st.lists(st.sampled_from(VALUES), min_size=1, max_size=12),
    data=st.data(),
)
def test_bottom_under_tau_is_the_specified_bottom(q, data) -> None:
    n = len(q)
    p = data.draw(st.lists(st.sampled_from(VALUES), min_size=n, max_size=n))
    v = data.draw(st.lists(st.sampled_from(VALUES), min_size=n, max_size=n))
    P = torch.tensor(p, dtype=torch.float32)
    Q = torch.tensor(q, dtype=torch.float32)
    V = torch.tensor(v, dtype=torch.float32)[:, None]
    got = bottom_under_tau(P, Q, V, tau=TAU).numpy()
    want = np.array(
        [
            classify(pi, qi, [vi], tau_infer=TAU, taus=TAU, dtype="float32").bottom
            for pi, qi, vi in zip(P.tolist(), Q.tolist(), V[:, 0].tolist(), strict=True)
        ]
    )
    assert np.array_equal(got, want)


def test_project_zeroes_the_gradient_exactly_at_specified_bottoms() -> None:
    Q = torch.tensor(
        [0.0, -0.0, TAU, np.nextafter(TAU, 0, dtype=np.float32), 0.5], requires_grad=True
    )
    P = torch.ones(5, requires_grad=True)
    P2, Q2 = apply_gradient_policy(P, Q, policy=GradientPolicy.PROJECT, tau=TAU)
    (P2 * 2 + Q2 * 3).sum().backward()
    assert Q.grad.tolist() == [0.0, 0.0, 3.0, 0.0, 3.0]  # |Q| == tau is not bottom, just below is
    assert P.grad.tolist() == [0.0, 0.0, 2.0, 0.0, 2.0]
