"""``BundleResult`` (from ``load_onnx_runtime_bundle(...).run(x)``) has the protocol of the
torch ``StrictInferenceResult``: unpacking, iteration, indexing, ``len`` and attributes."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import zpml_symbolic as zs
from zpml_runtime.bundle import BundleResult, export_bundle, load_onnx_runtime_bundle
from zpml_runtime.inference import InferenceConfig

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"  # one validity factor (x)
X = torch.tensor(
    [[2.0, 1.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 3.0], [math.nan, 1.0], [3.0, 3.0002], [1.0, 2.0]]
)


@pytest.fixture(scope="module", params=["float32", "float64"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    dtype = getattr(torch, request.param)
    ev = zs.strict_evaluator(
        zs.parse(EXPR), config=InferenceConfig(tau_infer=1e-6, tau_train=1e-3), dtype=dtype
    )
    x = X.to(dtype)
    out = tmp_path_factory.mktemp("res") / "b"
    export_bundle(ev, out, example_inputs=(x,))
    return load_onnx_runtime_bundle(out).run(x), ev(x)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def test_indexing_iteration_and_len_match_the_torch_result(pair) -> None:  # noqa: ANN001
    res, ref = pair
    assert isinstance(res, BundleResult)
    assert len(res) == len(ref) == 3
    decoded, bottom, gap = res
    assert res[0] is decoded and res[1] is bottom and res[2] is gap
    assert res[-1] is gap and res[-3] is decoded
    assert res[:2] == (decoded, bottom) and res[::2] == (decoded, gap)
    assert [a is b for a, b in zip(list(res), (decoded, bottom, gap), strict=True)] == [True] * 3
    for i in range(3):  # same values as the torch result's item i
        np.testing.assert_array_equal(res[i], _np(ref[i]))
    assert bottom.tolist() == [False, True, True, True, True, False, False]
    with pytest.raises(IndexError):
        res[3]
    with pytest.raises(TypeError, match="use res.fault_mask or res.as_dict"):
        res["fault_mask"]


def test_attributes_match_the_torch_result(pair) -> None:  # noqa: ANN001
    res, ref = pair
    for name in ("decoded", "bottom_mask", "gap_mask", "fault_mask", "semantic_bottom_mask"):
        np.testing.assert_array_equal(getattr(res, name), _np(getattr(ref, name)))
    np.testing.assert_array_equal(res.bottom_provenance, _np(ref.bottom_provenance))
    assert res.num_factors == ref.num_factors == 1
    for ours, theirs in (
        (res.factor_values, ref.factor_values),
        (res.factor_fault_masks, ref.factor_fault_masks),
        (res.factor_semantic_masks, ref.factor_semantic_masks),
    ):
        assert len(ours) == len(theirs) == 1
        np.testing.assert_array_equal(ours[0], _np(theirs[0]))
    assert res.structural_validity_factor_0_value is res.factor_values[0]
    assert list(res.as_dict()) == list(ref.as_dict())
    with pytest.raises(AttributeError, match="no output 'nope'"):
        res.nope  # noqa: B018


def test_factor_groups_are_in_factor_order_for_many_factors(tmp_path: Path) -> None:
    # three validity factors (x, y, x - 1): outputs ..._0_, ..._1_, ..._2_ in order
    ev = zs.strict_evaluator(zs.parse("1/(1 + 1/x) + 1/(1 + 1/y) + 1/(2 + 1/(x - 1))"))
    x = torch.tensor([[0.0, 2.0], [2.0, 0.0], [1.0, 3.0], [2.0, 2.0], [-3.0, 5.0]])
    export_bundle(ev, tmp_path / "b", example_inputs=(x,))
    res, ref = load_onnx_runtime_bundle(tmp_path / "b").run(x), ev(x)
    assert res.num_factors == ref.num_factors == 3
    for i in range(3):
        np.testing.assert_array_equal(res.factor_values[i], _np(ref.factor_values[i]))
        np.testing.assert_array_equal(
            res.factor_semantic_masks[i], _np(ref.factor_semantic_masks[i])
        )
    assert [m.tolist() for m in res.factor_semantic_masks][:2] == [
        [True, False, False, False, False],
        [False, True, False, False, False],
    ]


def test_copy_keeps_the_protocol() -> None:
    res = BundleResult(
        OrderedDict(decoded=np.zeros(2), bottom_mask=np.zeros(2, bool), gap_mask=np.ones(2, bool))
    )
    dup = copy.copy(res)
    assert dup[0] is res[0] and dup.num_factors == 0 and dup.factor_values == ()
