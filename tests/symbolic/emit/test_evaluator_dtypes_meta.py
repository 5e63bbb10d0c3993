"""Input dtypes and ``meta`` tensors of the compiled evaluators and of ``strict_inference``.

The compiled torch module and the strict evaluator take float32/float64 inputs
only (what their error text says, as the numpy evaluator and ONNX); the
half-precision types are refused with a cast hint, never half-evaluated.
``strict_inference`` decodes float16/bfloat16 ``P``/``Q`` (documented there).
A ``meta`` tensor has no values, so strict masks cannot be decided: a typed
:class:`UnsupportedInputError`, not a raw torch error.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

import zpml_symbolic as zs
from zpml_core.errors import UnsupportedInputError
from zpml_runtime.inference import InferenceConfig, strict_inference

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
HALF = [torch.float16, torch.bfloat16] + [
    getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n)
]
X = [[1.0, 2.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.25], [-1.0, 3.0]]


def _callers() -> dict[str, object]:
    ev = zs.strict_evaluator(EXPR, config=InferenceConfig(tau_infer=1e-6))
    par = zs.strict_evaluator("a*x/(x - b) + y", parameters=["a", "b"], init={"a": 2.0, "b": 0.5})
    return {
        "RationalModule": zs.to_torch(EXPR),
        "StrictEvaluator": ev,
        "StrictEvaluator.explain": ev.explain,
        "StrictEvaluator ": par,  # with coefficients (float32 parameters)
    }


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_precision_inputs_are_refused_as_the_text_says(dtype: torch.dtype) -> None:
    x = torch.tensor(X).to(dtype)
    for where, f in _callers().items():
        with pytest.raises(UnsupportedInputError) as info:
            f(x)  # type: ignore[operator]
        text = str(info.value)
        assert (
            f"{where.strip()}: x must have a real floating dtype (float32 or float64), got {dtype}"
            in text
        )
        assert "x.to(torch.float32)" in text


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_float32_and_float64_are_evaluated_strictly(dtype: torch.dtype) -> None:
    """The accepted dtypes evaluate: masks match the exact rational evaluation at the
    inputs (exact here: every input and ``Q`` is a dyadic rational far from tau)."""
    ev = zs.strict_evaluator(EXPR, config=InferenceConfig(tau_infer=1e-6))
    r = ev(torch.tensor(X, dtype=dtype))
    assert r.decoded.dtype == dtype
    for i, (x, y) in enumerate(X):
        fx, fy = Fraction(x), Fraction(y)
        bottom = fx == 0 or fx == fy or 1 + 1 / fx == 0
        assert bool(r.bottom_mask[i]) == bottom
        if not bottom:
            exact = (fx**2 + 1) / (fx - fy) + 1 / (1 + 1 / fx)
            assert float(r.decoded[i]) == pytest.approx(float(exact), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_strict_inference_decodes_half_precision(dtype: torch.dtype) -> None:
    """strict_inference keeps its documented float16/bfloat16 support: masks equal those
    of the same values in float64 (the values are exact in both)."""
    P = torch.tensor([1.0, 2.0, 0.0, -3.0, 5.0, float("inf")])
    Q = torch.tensor([2.0, 0.0, 1.0, 2.0**-10, 2.0**-3, 1.0])
    cfg = InferenceConfig(tau_infer=2.0**-8)
    half = strict_inference(P.to(dtype), Q.to(dtype), config=cfg)
    wide = strict_inference(P.double(), Q.double(), config=cfg)
    assert half.decoded.dtype == dtype
    assert torch.equal(half.bottom_mask, wide.bottom_mask)
    assert torch.equal(half.fault_mask, wide.fault_mask)
    assert half.bottom_mask.tolist() == [False, True, False, True, False, True]
    ok = ~wide.bottom_mask
    assert torch.equal(half.decoded[ok].double(), wide.decoded[ok].to(dtype).double())


def test_meta_inputs_to_the_strict_evaluator_are_typed_errors() -> None:
    meta = torch.empty(5, 2, device="meta")
    ev = zs.strict_evaluator(EXPR)
    for f, where in ((ev, "StrictEvaluator"), (ev.explain, "StrictEvaluator.explain")):
        with pytest.raises(UnsupportedInputError, match=rf"{where}: x is on the 'meta' device"):
            f(meta)
    multi = zs.strict_evaluator(["1/x", "x/(x - y)"])
    with pytest.raises(UnsupportedInputError, match="'meta' device"):
        multi(meta)
    with torch.enable_grad(), pytest.raises(UnsupportedInputError, match="'meta' device"):
        ev(meta.requires_grad_(True))


def test_evaluator_built_on_meta_is_a_typed_error() -> None:
    """A module moved to 'meta' (as ``with torch.device('meta')`` initialisation does)."""
    ev = zs.strict_evaluator("a*x/(x - b)", parameters=["a", "b"], init={"a": 2.0, "b": 0.5}).to(
        "meta"
    )
    with pytest.raises(UnsupportedInputError, match="'meta' device"):
        ev(torch.empty(3, 1, device="meta"))
    with pytest.raises(UnsupportedInputError, match="coefficients are on meta"):
        ev(torch.ones(3, 1))


def test_meta_tensors_in_strict_inference_are_typed_errors() -> None:
    meta, cpu = torch.empty(4, device="meta"), torch.ones(4)
    with pytest.raises(UnsupportedInputError, match="P is on the 'meta' device"):
        strict_inference(meta, meta)
    with pytest.raises(UnsupportedInputError, match="Q is on the 'meta' device"):
        strict_inference(cpu, meta.clone())
    with pytest.raises(
        UnsupportedInputError, match=r"validity_factors\[0\] is on the 'meta' device"
    ):
        strict_inference(cpu, cpu, validity_factors=[torch.empty(4, device="meta")])
    with torch.enable_grad(), pytest.raises(UnsupportedInputError, match="'meta' device"):
        strict_inference(torch.empty(4, device="meta", requires_grad=True), meta)


def test_numpy_evaluator_text_matches_its_behaviour() -> None:
    f = zs.numpy_evaluator(EXPR)
    for dt in (np.float16, np.int64):
        with pytest.raises(UnsupportedInputError, match="float32 or float64 array"):
            f(np.ones((3, 2), dtype=dt))
    assert f(np.ones((3, 2), dtype=np.float32)) is not None
