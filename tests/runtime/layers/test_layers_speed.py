"""Rational head vs MLP head of the same width: fwd+bwd time ratio (slow; prints the numbers).

Run directly for a table: ``.venv/bin/python tests/runtime/layers/test_layers_speed.py``.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from zpml_runtime.layers import MultivariateRationalLayer


def head_ratio(batch: int, width: int, degree: int = 2, rounds: int = 30, reps: int = 20) -> float:
    """Median over interleaved rounds of t(rational head) / t(Linear+ReLU+Linear head)."""
    torch.manual_seed(0)
    h = torch.randn(batch, width, requires_grad=True)
    mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
    rat = MultivariateRationalLayer(width, 1, degree, degree)

    def run_mlp() -> None:
        mlp(h).sum().backward()

    def run_rat() -> None:
        P, Q = rat(h)
        (P.sum() + Q.sum()).backward()

    ratios = []
    for _ in range(rounds):
        times = []
        for fn in (run_mlp, run_rat):
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            times.append(time.perf_counter() - start)
        ratios.append(times[1] / times[0])
    return sorted(ratios)[len(ratios) // 2]


@pytest.mark.slow
def test_rational_head_cost_is_reported():
    ratio = head_ratio(1024, 32)
    print(f"rational head (degree 2, width 32, batch 1024) / MLP head: {ratio:.2f}x")
    assert (
        ratio < 5.0
    )  # measured 1.9-3.6x on a shared machine; the 1.25x target is NOT met (docs/layers.md)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for batch in (256, 1024, 4096):
        for width in (16, 32, 64):
            print(f"batch {batch:5d} width {width:3d}: {head_ratio(batch, width):.2f}x")
