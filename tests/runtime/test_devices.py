"""Every torch path runs on every available device and agrees with the CPU.

CUDA cases are skipped on machines without a GPU (CI is CPU-only); on a GPU
machine they check that no path moves data to the CPU behind the user's back
(outputs stay on the input's device) and that the results match the CPU's.
"""

from __future__ import annotations

import pytest
import torch

import zpml_symbolic as zs
from zpml_core.strict import strict_inference
from zpml_runtime.inference import InferenceConfig
from zpml_runtime.layers import MultivariateRationalLayer, SCMRationalLayer

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]
EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
CFG = InferenceConfig(tau_infer=1e-6)


def _inputs(dtype: torch.dtype) -> torch.Tensor:
    # rows on Q == 0 (x == y), on the validity factor (x == 0), inside the tau band, and ordinary
    return torch.tensor(
        [[1.0, 1.0], [0.0, 2.0], [1.0 + 2**-22, 1.0], [0.5, -3.0], [7.0, 2.0]], dtype=dtype
    )


@pytest.mark.parametrize("device", DEVICES)
def test_to_torch_outputs_stay_on_device(device: str) -> None:
    module = zs.to_torch(EXPR).to(device)
    x = _inputs(torch.float64).to(device)
    out = module(x)  # P, Q and the validity factor values
    ref = zs.to_torch(EXPR)(_inputs(torch.float64))
    assert len(out) == len(ref) >= 2
    for got, want in zip(out, ref, strict=True):
        assert got.device.type == device
        torch.testing.assert_close(got.cpu(), want, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_strict_evaluator_masks_match_cpu(device: str, dtype: torch.dtype) -> None:
    evaluator = zs.strict_evaluator(EXPR, config=CFG).to(device)
    res = evaluator(_inputs(dtype).to(device))
    ref = zs.strict_evaluator(EXPR, config=CFG)(_inputs(dtype))
    for name in ("bottom_mask", "gap_mask", "fault_mask", "semantic_bottom_mask"):
        got = getattr(res, name)
        assert got.device.type == device, name
        assert torch.equal(got.cpu(), getattr(ref, name)), name
    assert res.bottom_mask.cpu().tolist() == [True, True, True, False, False]
    torch.testing.assert_close(res.decoded.cpu(), ref.decoded, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_strict_inference_on_device(device: str) -> None:
    P = torch.tensor([1.0, 2.0, 3.0, float("inf")], dtype=torch.float64, device=device)
    Q = torch.tensor([0.0, 1e-9, 2.0, 1.0], dtype=torch.float64, device=device)
    res = strict_inference(P, Q, config=CFG)
    decoded, bottom, gap = res
    assert decoded.device.type == device and bottom.device.type == device
    assert bottom.cpu().tolist() == [True, True, False, True]  # P = inf is a fault: bottom
    assert decoded.cpu()[2].item() == 1.5


@pytest.mark.parametrize("device", DEVICES)
def test_layers_forward_backward_on_device(device: str) -> None:
    torch.manual_seed(0)
    uni = SCMRationalLayer(3, 2, dtype=torch.float64)
    multi = MultivariateRationalLayer(2, 1, 2, 1, dtype=torch.float64)
    x = torch.linspace(-1, 1, 17, dtype=torch.float64)
    h = torch.stack([x, x.flip(0)], dim=-1)
    ref_uni, ref_multi = uni(x), multi(h)
    uni, multi = uni.to(device), multi.to(device)
    out_uni, out_multi = uni(x.to(device)), multi(h.to(device))
    for got, ref in zip((*out_uni, *out_multi), (*ref_uni, *ref_multi), strict=True):
        assert got.device.type == device
        torch.testing.assert_close(got.detach().cpu(), ref.detach(), rtol=1e-12, atol=1e-12)
    (out_uni[0].sum() + out_multi[1].sum()).backward()
    for p in (*uni.parameters(), *multi.parameters()):
        assert p.grad is not None and p.grad.device.type == device
