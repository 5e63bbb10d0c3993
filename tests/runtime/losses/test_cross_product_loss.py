"""``cross_product_loss``: the gauge-keeping projective loss."""

from __future__ import annotations

import pytest
import torch

from zpml_runtime.errors import ShapeMismatchError
from zpml_runtime.losses import cross_product_loss, implicit_loss
from zpml_runtime.training import lift_targets


def test_value_matches_the_formula_and_keeps_the_gauge() -> None:
    P = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    Q = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    y_n, y_d = lift_targets(torch.tensor([3.0, 0.25, float("inf")], dtype=torch.float64))
    got = cross_product_loss(P, Q, y_n, y_d)
    s = torch.maximum(y_n.abs(), y_d.abs())
    want = ((P * y_d / s - Q * y_n / s) ** 2).mean()
    assert torch.allclose(got, want)
    # unlike implicit_loss it changes with the scale of (P, Q) ...
    assert not torch.allclose(cross_product_loss(2 * P, 2 * Q, y_n, y_d), got)
    assert torch.allclose(implicit_loss(2 * P, 2 * Q, y_n, y_d), implicit_loss(P, Q, y_n, y_d))
    # ... but not with the scale of the targets
    assert torch.allclose(cross_product_loss(P, Q, 7 * y_n, 7 * y_d), got)
    got.backward()
    assert torch.isfinite(P.grad).all()


def test_zero_exactly_on_proportional_tuples_and_bottom_rows_train_q() -> None:
    P = torch.tensor([1.0, -4.0])
    Q = torch.tensor([2.0, 0.0], requires_grad=True)
    assert cross_product_loss(P, Q, torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])) == 0
    Q2 = torch.tensor([2.0, 0.3], requires_grad=True)
    loss = cross_product_loss(P, Q2, torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0]))
    loss.backward()
    assert Q2.grad[1] != 0 and Q2.grad[0] == 0  # the bottom row pushes Q to 0


def test_mask_excludes_rows_even_with_nan() -> None:
    P = torch.tensor([1.0, float("nan")], requires_grad=True)
    Q = torch.tensor([1.0, 1.0])
    loss = cross_product_loss(
        P, Q, torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.0]), mask=torch.tensor([True, False])
    )
    loss.backward()
    assert loss.item() == pytest.approx(0.25) and P.grad[1] == 0


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ShapeMismatchError, match="cross_product_loss"):
        cross_product_loss(torch.ones(3, 1), torch.ones(3, 1), torch.ones(3), torch.ones(3))
