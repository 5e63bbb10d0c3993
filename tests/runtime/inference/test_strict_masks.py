"""Property tests: strict_inference masks equal the exact oracle of docs/semantics.md section 3."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    DTYPES,
    as_bools,
    as_floats,
    oracle,
    same_floats,
    smallest_subnormal,
    tau_pairs,
    thresholds,
    to_numpy,
    to_torch,
    value_lists,
)

from zpml_core import kernels as K
from zpml_runtime.errors import ThresholdUnderflowError
from zpml_runtime.inference import InferenceConfig, strict_inference

SIZE = st.integers(min_value=1, max_value=12)


@st.composite
def problems(draw, with_factors: bool = False):
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(SIZE)
    P = draw(value_lists(dtype, n))
    Q = draw(value_lists(dtype, n))
    tau, tau_train = draw(tau_pairs(dtype))
    factors: tuple[list[float], ...] = ()
    factor_taus: tuple[float, ...] = ()
    if with_factors:
        k = draw(st.integers(min_value=1, max_value=3))
        factors = tuple(draw(value_lists(dtype, n)) for _ in range(k))
        factor_taus = tuple(draw(thresholds(dtype)) for _ in range(k))
    return dtype, P, Q, tau, tau_train, factors, factor_taus


def _inputs(backend, dtype, P, Q):
    if backend == "torch":
        return to_torch(P, dtype), to_torch(Q, dtype)
    p, q = to_numpy(P, dtype), to_numpy(Q, dtype)
    if p is None:
        pytest.skip("numpy bfloat16 needs ml_dtypes")
    return p, q


def _check_against_oracle(result, ref):
    assert as_bools(result.fault_mask) == ref["fault"]
    assert as_bools(result.semantic_bottom_mask) == ref["semantic"]
    assert as_bools(result.bottom_mask) == ref["bottom"]
    assert as_bools(result.gap_mask) == ref["gap"]
    assert same_floats(as_floats(result.decoded), ref["decoded"])


def _check_invariants(result):
    decoded, bottom, gap = result
    b, g = np.asarray(as_bools(bottom)), np.asarray(as_bools(gap))
    f, s = (
        np.asarray(as_bools(result.fault_mask)),
        np.asarray(as_bools(result.semantic_bottom_mask)),
    )
    prov = np.asarray(as_floats(result.bottom_provenance))
    d = np.asarray(as_floats(decoded))
    assert np.array_equal(b, f | s)
    assert not np.any(b & g)
    assert np.array_equal(prov, f * 1 + s * 2)
    assert np.array_equal(b, prov != 0)
    assert np.all(np.isnan(d[b])) and np.all(np.isfinite(d[~b]))


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@given(problems())
def test_masks_match_exact_oracle(backend, problem):
    dtype, P, Q, tau, tau_train, _, _ = problem
    p, q = _inputs(backend, dtype, P, Q)
    cfg = InferenceConfig(tau_infer=tau, tau_train=tau_train)
    result = strict_inference(p, q, config=cfg)
    _check_against_oracle(result, oracle(P, Q, dtype, tau, tau_train))
    _check_invariants(result)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@given(problems(with_factors=True), st.booleans())
def test_factor_masks_match_exact_oracle(backend, problem, stacked):
    dtype, P, Q, tau, tau_train, factors, factor_taus = problem
    p, q = _inputs(backend, dtype, P, Q)
    vs = [_inputs(backend, dtype, v, v)[0] for v in factors]
    if stacked:
        vs = torch.stack(vs, dim=-1) if backend == "torch" else np.stack(vs, axis=-1)
    cfg = InferenceConfig(tau_infer=tau, tau_train=tau_train)
    result = strict_inference(
        p, q, config=cfg, validity_factors=vs, validity_taus=list(factor_taus)
    )
    _check_against_oracle(result, oracle(P, Q, dtype, tau, tau_train, factors, factor_taus))
    _check_invariants(result)
    assert result.num_factors == len(factors)
    for v, t, value, fault, semantic in zip(
        factors,
        factor_taus,
        result.factor_values,
        result.factor_fault_masks,
        result.factor_semantic_masks,
        strict=True,
    ):
        assert same_floats(as_floats(value), v)
        assert as_bools(fault) == [not math.isfinite(x) for x in v]
        assert as_bools(semantic) == [math.isfinite(x) and (x == 0 or abs(x) < t) for x in v]


@given(problems(with_factors=True))
def test_torch_and_numpy_give_identical_outputs(problem):
    dtype, P, Q, tau, tau_train, factors, factor_taus = problem
    p_np = to_numpy(P, dtype)
    if p_np is None:
        pytest.skip("numpy bfloat16 needs ml_dtypes")
    cfg = InferenceConfig(tau_infer=tau, tau_train=tau_train)
    kwargs = {"config": cfg, "validity_taus": list(factor_taus)}
    rt = strict_inference(
        to_torch(P, dtype),
        to_torch(Q, dtype),
        validity_factors=[to_torch(v, dtype) for v in factors],
        **kwargs,
    )
    rn = strict_inference(
        p_np, to_numpy(Q, dtype), validity_factors=[to_numpy(v, dtype) for v in factors], **kwargs
    )
    for (key, a), (key2, b) in zip(rt.as_dict().items(), rn.as_dict().items(), strict=True):
        assert key == key2
        if key == "bottom_provenance" or a.dtype == torch.bool:
            assert as_bools(a) == as_bools(b), key
        else:
            assert same_floats(as_floats(a), as_floats(b)), key


@given(problems())
def test_fast_and_functional_torch_kernels_agree(problem):
    dtype, P, Q, tau, tau_train, _, _ = problem
    p, q = to_torch(P, dtype), to_torch(Q, dtype)
    t, tr = InferenceConfig(tau_infer=tau, tau_train=tau_train).thresholds_for(dtype)
    fast = K.torch_core_fast(p, q, t, tr)
    functional = K.torch_core_functional(p, q, t, tr)
    nonbottom = ~(fast[1] | fast[2])
    assert torch.equal(fast[1], functional[1]) and torch.equal(fast[2], functional[2])
    assert (fast[3] is None) == (functional[3] is None)
    if fast[3] is not None:
        assert torch.equal(fast[3], functional[3])
    assert torch.equal(fast[0][nonbottom], functional[0][nonbottom])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_exact_zero_is_bottom_for_every_threshold(dtype, backend):
    """No setting fails open: exact zeros (either sign) are semantic bottoms."""
    for tau in (0.0, smallest_subnormal(dtype), 1e-3, 1e5):
        p, q = _inputs(backend, dtype, [1.0, 0.0, -2.0, 0.0], [0.0, 0.0, -0.0, 1.0])
        result = strict_inference(p, q, config=InferenceConfig(tau_infer=tau))
        assert as_bools(result.semantic_bottom_mask)[:3] == [True, True, True]
        assert as_bools(result.fault_mask) == [False] * 4


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_threshold_below_dtype_resolution_is_refused(dtype, backend):
    tau = smallest_subnormal(dtype) / 3
    p, q = _inputs(backend, dtype, [1.0], [0.0])
    with pytest.raises(
        ThresholdUnderflowError, match=rf"tau_infer=.* below the smallest positive {dtype}"
    ):
        strict_inference(p, q, config=InferenceConfig(tau_infer=tau))
    with pytest.raises(ThresholdUnderflowError, match=rf"tau_train=.*{dtype}"):
        strict_inference(p, q, config=InferenceConfig(tau_infer=0.0, tau_train=tau))
    with pytest.raises(ThresholdUnderflowError, match=r"validity_taus\[0\]"):
        strict_inference(p, q, validity_factors=[p], validity_taus=tau)


def test_float16_threshold_is_applied_exactly():
    """1e-7 is not a float16 value; |Q| < 1e-7 is decided as for real numbers."""
    q = torch.tensor(
        [5.960464477539063e-08, 1.1920928955078125e-07], dtype=torch.float16
    )  # 2**-24, 2**-23
    result = strict_inference(torch.ones_like(q), q, config=InferenceConfig(tau_infer=1e-7))
    assert result.semantic_bottom_mask.tolist() == [True, False]


def test_overflow_is_a_fault_and_can_be_mixed():
    P = torch.tensor([3e38, 3e38, 1e30], dtype=torch.float32)
    Q = torch.tensor([0.5, 2.0, 1e-30], dtype=torch.float32)
    result = strict_inference(P, Q, config=InferenceConfig(tau_infer=1e-6))
    assert result.fault_mask.tolist() == [True, False, True]
    assert result.bottom_provenance.tolist() == [1, 0, 3]
