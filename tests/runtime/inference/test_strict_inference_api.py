"""strict_inference: result object, shapes, errors, autograd and torch.compile."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch.utils import _pytree as pytree

from zpml_runtime.errors import (
    InvalidConfigError,
    ShapeMismatchError,
    UnsupportedInputError,
    ZeroProofRuntimeError,
)
from zpml_runtime.inference import (
    InferenceConfig,
    StrictInferenceResult,
    numerical_hazard_mask,
    strict_inference,
)

CFG = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
NAN, INF = math.nan, math.inf


def _pq():
    P = torch.tensor([1.0, INF, NAN, 0.0, 2.0, 3.0])
    Q = torch.tensor([0.0, 1.0, 1.0, 1e-8, 5e-5, 2.0])
    return P, Q


def test_result_unpacks_as_exactly_three_and_carries_provenance():
    result = strict_inference(*_pq(), config=CFG)
    decoded, bottom, gap = result
    assert len(result) == 3 and result[0] is decoded and list(result)[2] is gap
    with pytest.raises(ValueError, match="too many values to unpack"):
        _p, _q = result
    assert bottom.tolist() == [True, True, True, True, False, False]
    assert gap.tolist() == [False, False, False, False, True, False]
    assert result.fault_mask.tolist() == [False, True, True, False, False, False]
    assert result.bottom_provenance.dtype == torch.int8
    assert result.bottom_provenance.tolist() == [2, 1, 1, 2, 0, 0]
    assert decoded[4].item() == pytest.approx(2.0 / 5e-5) and decoded[5].item() == 1.5
    assert result.factor_values == result.factor_fault_masks == result.factor_semantic_masks == ()
    assert getattr(result, "fault_mask", None) is result.fault_mask


def test_default_config_is_exact_zeros_only():
    result = strict_inference(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1e-30]))
    assert result.bottom_mask.tolist() == [True, False]
    assert not result.gap_mask.any()


def test_as_dict_order_and_factor_names():
    P, Q = _pq()
    V = torch.stack([torch.ones(6), torch.tensor([1.0, 0.0, NAN, 1.0, 1e-3, 1.0])], dim=-1)
    result = strict_inference(P, Q, config=CFG, validity_factors=V, validity_taus=[0.0, 1e-2])
    keys = list(result.as_dict())
    assert keys[:6] == [
        "decoded",
        "bottom_mask",
        "gap_mask",
        "fault_mask",
        "semantic_bottom_mask",
        "bottom_provenance",
    ]
    assert keys[6:] == [
        f"structural_validity_factor_{i}_{name}"
        for i in range(2)
        for name in ("value", "fault_mask", "semantic_bottom_mask")
    ]
    assert list(result.as_dict(prefix="v"))[6] == "v_0_value"
    # factor 1 bottoms samples 1 (zero), 2 (NaN: fault) and 4 (|V| < 1e-2): the gap sample becomes bottom
    assert result.bottom_mask.tolist() == [True, True, True, True, True, False]
    assert result.factor_fault_masks[1].tolist() == [False, False, True, False, False, False]
    assert result.factor_semantic_masks[1].tolist() == [False, True, False, False, True, False]
    assert not result.gap_mask.any()


def test_result_is_a_pytree():
    result = strict_inference(*_pq(), config=CFG, validity_factors=[torch.ones(6)])
    leaves, spec = pytree.tree_flatten(result)
    assert len(leaves) == 8
    rebuilt = pytree.tree_unflatten(leaves, spec)
    assert isinstance(rebuilt, StrictInferenceResult) and rebuilt.num_factors == 1


#: one denominator per sample (rows) against several numerators (columns): exact zeros of
#: both signs (with finite, NaN and Inf numerators: semantic and mixed bottoms), |Q| below
#: tau_infer, |Q| in the gap band, regular rows, a small Q whose quotient overflows, Q = +-Inf, NaN
BROADCAST_Q = [0.0, -0.0, 5e-7, 5e-5, 2.0, -3.0, 1e-2, INF, NAN]
BROADCAST_P = [
    [1.0, NAN, 0.0, -2.0],
    [0.0, 1.0, INF, 3.0],
    [1.0, 2.0, 3.0, -4.0],
    [1.0, -1.0, 7.0, NAN],
    [1.0, 5.0, -7.0, 0.0],
    [1.0, 2.0, 1e30, -INF],
    [3e38, 1.0, -3e38, 0.5],
    [1.0, 0.0, -1.0, 2.0],
    [1.0, 0.0, -1.0, 2.0],
]


def _exact_strict_reference(P, Q, dtype, tau_infer: float, tau_train: float) -> dict[str, list]:
    """docs/semantics.md section 3 for ``P[b, k]`` over ``Q[b]``, decided with exact rationals:
    the thresholds as the exact values of the given floats, ``P/Q`` as an exact fraction
    (overflow when it rounds to infinity in ``dtype``)."""
    info = np.finfo(dtype)
    # round-to-nearest gives inf from max + half an ulp of max on
    overflow_at = Fraction(float(info.max)) + Fraction(2) ** (info.maxexp - info.nmant - 2)
    out: dict[str, list] = {
        k: [] for k in ("bottom", "fault", "semantic", "gap", "provenance", "value")
    }
    for p_row, q in zip(P, Q, strict=True):
        rows = {k: [] for k in out}
        for p in p_row:
            finite = math.isfinite(p) and math.isfinite(q)
            ratio = Fraction(p) / Fraction(q) if finite and q != 0 else None
            fault = not finite or (ratio is not None and abs(ratio) >= overflow_at)
            semantic = math.isfinite(q) and (q == 0 or abs(Fraction(q)) < Fraction(tau_infer))
            bottom = fault or semantic
            rows["fault"].append(fault)
            rows["semantic"].append(semantic)
            rows["bottom"].append(bottom)
            rows["gap"].append(
                not bottom and Fraction(tau_infer) <= abs(Fraction(q)) < Fraction(tau_train)
            )
            rows["provenance"].append(int(fault) + 2 * int(semantic))
            rows["value"].append(None if bottom else ratio)
        for k in out:
            out[k].append(rows[k])
    return out


@pytest.mark.parametrize(
    ("backend", "dtype"),
    [("torch", np.float32), ("torch", np.float64), ("numpy", np.float32), ("numpy", np.float64)],
)
def test_per_sample_denominator_broadcasts_over_outputs(backend: str, dtype) -> None:
    P = np.array(BROADCAST_P, dtype=dtype)
    Q = np.array(BROADCAST_Q, dtype=dtype)
    # the reference sees the values as stored in dtype (3e38 and 1e30 are rounded in float32)
    ref = _exact_strict_reference(P.tolist(), Q.tolist(), dtype, CFG.tau_infer, CFG.tau_train)
    if backend == "torch":
        result = strict_inference(torch.from_numpy(P), torch.from_numpy(Q), config=CFG)
    else:
        result = strict_inference(P, Q, config=CFG)
    assert tuple(result.bottom_mask.shape) == P.shape
    assert result.bottom_mask.tolist() == ref["bottom"]
    assert result.fault_mask.tolist() == ref["fault"]
    assert result.semantic_bottom_mask.tolist() == ref["semantic"]
    assert result.gap_mask.tolist() == ref["gap"]
    assert result.bottom_provenance.tolist() == ref["provenance"]
    # decoded: NaN exactly at bottoms, elsewhere P/Q correctly rounded (within half an ulp)
    half_ulp = Fraction(1, 2 ** (np.finfo(dtype).nmant + 1))
    for got_row, want_row in zip(result.decoded.tolist(), ref["value"], strict=True):
        for got, want in zip(got_row, want_row, strict=True):
            if want is None:
                assert math.isnan(got)
            else:
                assert math.isfinite(got) and abs(Fraction(got) - want) <= abs(want) * half_ulp
    # the reference is not vacuous: every kind of outcome occurs
    flat = [v for row in ref["provenance"] for v in row]
    assert {0, 1, 2, 3} <= set(flat) and any(map(any, ref["gap"]))


def test_square_p_with_per_sample_q():
    """(B, B) numerators with a (B,) denominator: one denominator per sample (row)."""
    square = strict_inference(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0.0, 2.0]))
    assert square.bottom_mask.tolist() == [[True, True], [False, False]]
    assert square.decoded[1].tolist() == [1.5, 2.0]


def test_numpy_broadcast_into_p_or_q_shape():
    P = np.ones((2, 3))
    result = strict_inference(P, np.array([[0.0], [1.0]]))
    assert result.bottom_mask.tolist() == [[True] * 3, [False] * 3]
    assert strict_inference(np.ones(3), np.array([[1.0, 0.0, 1.0]])).bottom_mask.shape == (1, 3)


@pytest.mark.parametrize(
    ("p_shape", "q_shape"),
    [((4,), (4, 1)), ((3,), (4,)), ((2, 3), (3, 2))],
)
def test_incompatible_shapes_are_refused(p_shape, q_shape):
    with pytest.raises(ShapeMismatchError, match=r"cannot align P .* with Q"):
        strict_inference(torch.ones(p_shape), torch.ones(q_shape))


def test_factor_shape_rules():
    P, Q = torch.ones(2, 3), torch.ones(2)
    per_sample = strict_inference(P, Q, validity_factors=[torch.tensor([0.0, 1.0])])
    assert per_sample.bottom_mask.tolist() == [[True] * 3, [False] * 3]
    assert per_sample.factor_semantic_masks[0].shape == (2,)
    with pytest.raises(ShapeMismatchError, match=r"validity_factors\[0\] has shape \(3,\)"):
        strict_inference(P, Q, validity_factors=[torch.ones(3)])
    with pytest.raises(ShapeMismatchError, match=r"shape \[\.\.\., k\]"):
        strict_inference(P, Q, validity_factors=torch.tensor(1.0))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: strict_inference([1.0], [1.0]),
            UnsupportedInputError,
            r"P must be a torch.Tensor or a numpy.ndarray, got list",
        ),
        (
            lambda: strict_inference(torch.ones(2), np.ones(2)),
            UnsupportedInputError,
            r"same backend",
        ),
        (
            lambda: strict_inference(torch.ones(2, dtype=torch.int64), torch.ones(2)),
            UnsupportedInputError,
            r"P has dtype int64",
        ),
        (
            lambda: strict_inference(np.ones(2), np.ones(2, dtype=np.complex64)),
            UnsupportedInputError,
            r"Q has dtype complex64",
        ),
        (
            lambda: strict_inference(torch.ones(2), torch.ones(2), config={"tau_infer": 0}),
            UnsupportedInputError,
            r"config must be an InferenceConfig",
        ),
        (
            lambda: strict_inference(
                torch.ones(2),
                torch.ones(2),
                validity_factors=[torch.ones(2)],
                validity_taus=[0.0, 1.0],
            ),
            InvalidConfigError,
            r"validity_taus has 2 entries but there are 1",
        ),
        (
            lambda: strict_inference(torch.ones(2), torch.ones(2), validity_factors=[np.ones(2)]),
            UnsupportedInputError,
            r"validity_factors\[0\] must be a torch.Tensor|validity_factors\[0\] is a ndarray",
        ),
        (
            lambda: strict_inference(
                torch.ones(2), torch.ones(2), validity_factors=[torch.ones(2)], validity_taus=-1.0
            ),
            InvalidConfigError,
            r"validity_taus must be finite",
        ),
        (
            lambda: strict_inference(torch.ones(2), torch.ones(2), validity_factors=7),
            UnsupportedInputError,
            r"validity_factors must be a tensor/array",
        ),
    ],
)
def test_user_errors_are_typed(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, ZeroProofRuntimeError)


def test_mixed_dtypes_promote():
    result = strict_inference(
        torch.ones(2, dtype=torch.float16), torch.tensor([0.0, 3.0], dtype=torch.float64)
    )
    assert result.decoded.dtype == torch.float64
    assert result.decoded[1].item() == 1 / 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_gradients_are_finite_and_zero_at_bottoms(dtype):
    P = torch.tensor([1.0, 2.0, 3.0, 60000.0, INF, 1.0], dtype=dtype, requires_grad=True)
    Q = torch.tensor([0.0, 1e-7, 2.0, 1e-3, 1.0, NAN], dtype=dtype, requires_grad=True)
    result = strict_inference(
        P, Q, config=InferenceConfig(tau_infer=1e-3 if dtype == torch.float16 else 1e-6)
    )
    torch.nansum(result.decoded.float()).backward()
    for grad in (P.grad, Q.grad):
        assert grad is not None and torch.isfinite(grad).all()
        assert (grad[result.bottom_mask] == 0).all()
    assert P.grad[2].item() == pytest.approx(0.5) and Q.grad[2].item() == pytest.approx(-0.75)


def test_grad_path_matches_no_grad_path():
    P = torch.tensor([1.0, 2.0, 3e38, -4.0, 0.0])
    Q = torch.tensor([0.0, 1e-7, 0.5, 3.0, -2.0])
    plain = strict_inference(P, Q, config=CFG)
    tracked = strict_inference(P.clone().requires_grad_(), Q, config=CFG)
    for a, b in zip(plain.as_dict().values(), tracked.as_dict().values(), strict=True):
        assert torch.equal(a.isnan(), b.isnan()) if a.is_floating_point() else torch.equal(a, b)
    assert torch.equal(plain.decoded.nan_to_num(), tracked.decoded.detach().nan_to_num())


def test_torch_compile_fullgraph_matches_eager():
    def fn(P, Q, V):
        return strict_inference(P, Q, config=CFG, validity_factors=V, validity_taus=1e-3)

    P = torch.tensor([[1.0, INF], [2.0, 3.0], [1.0, 1.0], [4.0, 5.0]])
    Q = torch.tensor([0.0, 1.0, 5e-5, 2.0])
    V = torch.tensor([[1.0], [NAN], [1.0], [1e-4]])
    eager = fn(P, Q, V)
    compiled = torch.compile(fn, fullgraph=True, backend="eager")(P, Q, V)
    assert isinstance(compiled, StrictInferenceResult)
    for (k, a), b in zip(eager.as_dict().items(), compiled.as_dict().values(), strict=True):
        if a.is_floating_point():
            assert torch.equal(a.nan_to_num(), b.nan_to_num()), k
        else:
            assert torch.equal(a, b), k


def test_numerical_hazard_mask_is_monitor_only():
    Q = torch.tensor([0.0, 1e-5, 1e-2, INF, NAN])
    assert numerical_hazard_mask(Q, threshold=1e-3).tolist() == [True, True, False, False, False]
    assert numerical_hazard_mask(Q.numpy(), threshold=1e-3).tolist() == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_scalars_empty_and_strided_inputs():
    scalar = strict_inference(np.float64(1.0), np.float64(0.0), config=CFG)
    assert all(isinstance(a, np.ndarray) and a.shape == () for a in scalar.as_dict().values())
    assert bool(scalar.bottom_mask) and int(scalar.bottom_provenance) == 2
    assert strict_inference(torch.tensor(1.0), torch.tensor(0.0)).bottom_mask.item()
    empty = strict_inference(torch.ones(0, 3), torch.ones(0), config=CFG)
    assert empty.bottom_mask.shape == (0, 3) and empty.decoded.shape == (0, 3)
    base = torch.tensor([[1.0, 0.0], [2.0, 4.0]])
    strided = strict_inference(base[:, 0], base[:, 1], config=CFG)
    assert strided.bottom_mask.tolist() == [True, False] and strided.decoded[1].item() == 0.5
