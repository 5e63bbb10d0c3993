"""Thresholds are converted exactly and rounded up (issue 13, item 3).

A positive threshold must never silently become 0.0, rounding to nearest
would fail open by one ulp (``|Q| < fl(1/3)`` misses ``Q = fl(1/3) < 1/3``),
and out-of-range values must give a typed error, not a raw ``OverflowError``.
"""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zpml_core.errors import InvalidConfigError, ThresholdUnderflowError
from zpml_core.thresholds import ceil_to_dtype, exact_threshold, to_threshold
from zpml_runtime.inference import InferenceConfig, strict_inference

TINY = [Fraction(1, 10**400), np.longdouble("1e-400"), decimal.Decimal("1e-400")]


@pytest.mark.parametrize("value", TINY, ids=["Fraction", "longdouble", "Decimal"])
def test_positive_threshold_below_float64_is_refused_not_zero(value) -> None:
    if isinstance(value, np.longdouble) and value == 0:
        pytest.skip("this platform's longdouble is float64: 1e-400 is already 0")
    for field, make in (
        ("tau_infer", lambda: InferenceConfig(tau_infer=value)),
        ("tau_train", lambda: InferenceConfig(tau_infer=0.0, tau_train=value)),
        (
            "numerical_hazard_threshold",
            lambda: InferenceConfig(tau_infer=0.0, numerical_hazard_threshold=value),
        ),
        (
            "validity_taus",
            lambda: strict_inference(
                np.ones(2), np.ones(2), validity_factors=[np.ones(2)], validity_taus=value
            ),
        ),
    ):
        with pytest.raises(
            ThresholdUnderflowError, match=rf"{field}.*below the smallest positive float64"
        ) as info:
            make()
        assert isinstance(info.value, ValueError)


def test_decimal_string_for_command_lines() -> None:
    with pytest.raises(ThresholdUnderflowError, match=r"--tau-infer='1e-400'"):
        to_threshold("1e-400", "--tau-infer", text=True)
    with pytest.raises(ThresholdUnderflowError):  # no 10**(10**11) is ever built
        to_threshold("1e-99999999999", "--tau-infer", text=True)
    with pytest.raises(InvalidConfigError, match="exceeds the largest finite float64"):
        to_threshold("1e99999999999", "--tau-infer", text=True)
    assert to_threshold("1/3", "t", text=True) == to_threshold(Fraction(1, 3), "t")
    assert to_threshold(" 0.001 ", "t", text=True) == 0.001
    with pytest.raises(InvalidConfigError, match=r"--tau-infer='abc' is not a number"):
        to_threshold("abc", "--tau-infer", text=True)
    with pytest.raises(InvalidConfigError, match="must be a finite real number"):
        InferenceConfig(tau_infer="1e-3")  # typed APIs take numbers, not text


def test_one_third_rounds_up_not_to_nearest() -> None:
    third = Fraction(1, 3)
    nearest = 1 / 3  # round-to-nearest float64: below 1/3
    assert Fraction(nearest) < third
    cfg = InferenceConfig(tau_infer=third, tau_train=third)
    assert Fraction(cfg.tau_infer) >= third and Fraction(np.nextafter(cfg.tau_infer, 0)) < third
    for dtype, np_t in (("float32", np.float32), ("float64", np.float64), ("float16", np.float16)):
        t = cfg.thresholds_for(dtype)[0]
        assert Fraction(t) >= third and Fraction(float(np.nextafter(np_t(t), np_t(0)))) < third
        q = np.array([np_t(1 / 3), np_t(0.5)])  # fl(1/3) < 1/3 in float64; must be bottom there
        want = [bool(Fraction(float(v)) < third) for v in q]
        assert strict_inference(np.ones_like(q), q, config=cfg).bottom_mask.tolist() == want
        qt = torch.from_numpy(q)
        assert strict_inference(torch.ones_like(qt), qt, config=cfg).bottom_mask.tolist() == want
        r = strict_inference(
            np.ones_like(q), np.ones_like(q), validity_factors=[q], validity_taus=third
        )
        assert r.factor_semantic_masks[0].tolist() == want
    assert strict_inference(np.ones(1), np.array([1 / 3]), config=cfg).bottom_mask.tolist() == [
        True
    ]


def test_huge_threshold_is_a_typed_error() -> None:
    for value in (10**400, Fraction(10**400, 3), decimal.Decimal("1e400"), 2**1024):
        with pytest.raises(
            InvalidConfigError, match="tau_infer=.* exceeds the largest finite float64"
        ) as info:
            InferenceConfig(tau_infer=value)
        assert isinstance(info.value, ValueError) and not isinstance(info.value, OverflowError)
    assert to_threshold(np.finfo(np.float64).max, "t") == np.finfo(np.float64).max
    assert ceil_to_dtype(1e5, "float16") == math.inf  # above float16's range: every finite |v|


@pytest.mark.parametrize(
    "bad", [-1, -0.5, math.nan, math.inf, np.longdouble("inf"), True, None, [0.1], "1e-3"]
)
def test_bad_values_are_refused(bad) -> None:
    with pytest.raises(InvalidConfigError, match="tau_infer"):
        InferenceConfig(tau_infer=bad)


def test_other_threshold_consumers_use_the_converter() -> None:
    from zpml_core.strict import numerical_hazard_mask
    from zpml_runtime.inference.monitor import StrictInferenceMonitor

    with pytest.raises(ThresholdUnderflowError):
        numerical_hazard_mask(np.ones(2), threshold=Fraction(1, 10**400))
    with pytest.raises(ThresholdUnderflowError):
        StrictInferenceMonitor(bundle_id="b", numerical_hazard_threshold=Fraction(1, 10**400))
    assert numerical_hazard_mask(np.array([1 / 3]), threshold=Fraction(1, 3)).tolist() == [True]


def test_onnx_threshold_initializers_round_up() -> None:
    from onnx import numpy_helper

    from zpml_symbolic.emit.backends.onnx import to_onnx

    third = Fraction(1, 3)
    model = to_onnx("1/x", config=InferenceConfig(tau_infer=third), dtype="float64", tile_rows=None)
    t = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == "zpml_t_infer")
    assert Fraction(float(t)) >= third


_fractions = st.builds(
    lambda n, d, e: Fraction(n, d) * Fraction(2) ** e,
    st.integers(1, 2**70),
    st.integers(1, 2**70),
    st.integers(-1100, 1000),
)


@settings(max_examples=300, deadline=None)
@given(_fractions, st.sampled_from(["float16", "bfloat16", "float32", "float64"]))
def test_ceil_is_the_smallest_dtype_value_at_or_above(x: Fraction, dtype: str) -> None:
    tdt = {
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float32": torch.float32,
        "float64": torch.float64,
    }[dtype]
    finfo = torch.finfo(tdt)
    smallest = Fraction(finfo.tiny) * Fraction(2) ** (
        1 - {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}[dtype]
    )
    if x < smallest:
        with pytest.raises(ThresholdUnderflowError):
            ceil_to_dtype(x, dtype)
        return
    if x > Fraction(np.finfo(np.float64).max):  # thresholds are stored as float64
        with pytest.raises(InvalidConfigError, match="exceeds the largest finite float64"):
            ceil_to_dtype(x, dtype)
        with pytest.raises(InvalidConfigError):
            exact_threshold(x, "t")
        return
    t = ceil_to_dtype(x, dtype)
    if t == math.inf:
        assert x > Fraction(finfo.max)
        return
    assert float(torch.tensor(t, dtype=torch.float64).to(tdt)) == t  # a dtype value
    assert Fraction(t) >= x
    below = torch.nextafter(torch.tensor(t, dtype=tdt), torch.tensor(0.0, dtype=tdt))
    assert Fraction(float(below)) < x
