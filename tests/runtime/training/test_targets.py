"""Targets: lift_targets / lift_semantic_targets / SemanticTargets (issue 11, item 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zpml_runtime.errors import (
    ShapeMismatchError,
    UnsupportedInputError,
    ZeroProofRuntimeError,
)
from zpml_runtime.inference import InferenceConfig, strict_inference
from zpml_runtime.training.targets import (
    BOTTOM,
    FINITE,
    MISSING,
    STATUS_CODES,
    STATUS_NAMES,
    InvalidTargetError,
    SemanticTargets,
    lift_semantic_targets,
    lift_targets,
)

INF, NAN = math.inf, math.nan
LABELS = tuple(STATUS_CODES)


# --------------------------------------------------------------------------- lift_targets


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lift_targets_maps_each_kind(backend: str, dtype: str) -> None:
    raw = [2.5, -3.0, 0.0, INF, -INF, NAN]
    t = (
        torch.tensor(raw, dtype=getattr(torch, dtype))
        if backend == "torch"
        else np.array(raw, dtype)
    )
    y_n, y_d = lift_targets(t)
    assert type(y_n) is type(t) and type(y_d) is type(t)
    assert str(y_n.dtype).endswith(dtype) and str(y_d.dtype).endswith(dtype)
    assert np.asarray(y_n).tolist() == [2.5, -3.0, 0.0, 1.0, -1.0, 1.0]
    assert np.asarray(y_d).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_lift_targets_keeps_shape_detaches_and_casts_integers() -> None:
    t = torch.randn(4, 3, requires_grad=True)
    y_n, y_d = lift_targets(t)
    assert y_n.shape == y_d.shape == (4, 3) and not y_n.requires_grad
    yi_n, yi_d = lift_targets(torch.tensor([1, -2]))
    assert yi_n.dtype == torch.get_default_dtype() and yi_n.tolist() == [1.0, -2.0]
    yn_np, _ = lift_targets(np.array([3, 4]))
    assert yn_np.dtype == np.float64
    yl, yd = lift_targets([1.0, INF])
    assert yl.tolist() == [1.0, 1.0] and yd.tolist() == [1.0, 0.0]


def test_lift_targets_rejects_bad_types() -> None:
    with pytest.raises(UnsupportedInputError, match="targets must be"):
        lift_targets({"y": 1.0})
    with pytest.raises(UnsupportedInputError, match="complex"):
        lift_targets(torch.tensor([1 + 2j]))
    with pytest.raises(TypeError, match="dtype"):
        lift_targets(np.array(["a"]))


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    ),
    st.sampled_from(["torch", "numpy"]),
)
def test_lift_targets_round_trips_through_strict_decode(values: np.ndarray, backend: str) -> None:
    t = torch.from_numpy(values) if backend == "torch" else values
    y_n, y_d = lift_targets(t)
    result = strict_inference(y_n, y_d, config=InferenceConfig(tau_infer=0.0))
    finite = np.isfinite(values)
    decoded = np.asarray(result.decoded)
    assert np.array_equal(np.asarray(result.bottom_mask), ~finite)
    # finite targets come back exactly (bit for bit, signed zeros included)
    assert np.array_equal(decoded[finite].view(np.int64), values[finite].view(np.int64))
    assert np.isnan(decoded[~finite]).all()


# --------------------------------------------------------------------------- semantic targets


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_semantic_targets_each_label(backend: str) -> None:
    values = [1.5, INF, -INF, NAN, 2.0, -4.0, -INF, NAN, 7.0]
    labels = [
        "finite",
        "bottom",
        "bottom",
        "bottom",
        "censored_below",
        "censored_above",
        "domain_invalid",
        "missing",
        "fault",
    ]
    v = torch.tensor(values) if backend == "torch" else np.array(values)
    t = lift_semantic_targets(v, labels)
    as_list = lambda x: np.asarray(x).tolist()  # noqa: E731
    assert as_list(t.y_n) == [1.5, 1.0, -1.0, 1.0, 2.0, -4.0, -1.0, 0.0, 0.0]
    assert as_list(t.y_d) == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert as_list(t.status) == [STATUS_CODES[label] for label in labels]
    assert as_list(t.loss_mask) == [True] * 7 + [False, False]
    assert as_list(t.oriented_mask) == [False, True, True, False, False, False, True, False, False]
    assert as_list(t.finite_mask) == [True] + [False] * 8
    assert as_list(t.singular_mask) == [False, True, True, True, False, False, True, False, False]
    assert as_list(t.bottom_mask) == [False, True, True, True] + [False] * 5
    assert as_list(t.domain_invalid_mask) == [False] * 6 + [True, False, False]
    assert as_list(t.censored_below_mask) == [False] * 4 + [True] + [False] * 4
    assert as_list(t.censored_above_mask) == [False] * 5 + [True] + [False] * 3
    assert as_list(t.censored_mask) == [False] * 4 + [True, True] + [False] * 3
    assert as_list(t.missing_mask) == [False] * 7 + [True, False]
    assert as_list(t.fault_mask) == [False] * 8 + [True]
    assert type(t.y_n) is type(v)


def test_missing_rows_never_become_a_finite_zero_target() -> None:
    t = lift_semantic_targets(torch.tensor([0.0, NAN, 5.0]), ["missing", "missing", "missing"])
    # (0, 1) would be the finite target 0; the null tuple decodes to bottom instead
    assert not bool((t.y_d != 0).any())
    r = strict_inference(t.y_n, t.y_d)
    assert bool(r.bottom_mask.all())
    assert not bool(t.loss_mask.any())


def test_integer_codes_rows_and_one_label_for_all() -> None:
    v = torch.arange(6.0).reshape(3, 2)
    t = lift_semantic_targets(v, torch.tensor([FINITE, BOTTOM, MISSING]))
    assert t.status.shape == (3, 2)
    assert t.y_d.tolist() == [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    assert t.loss_mask.tolist() == [[True, True], [True, True], [False, False]]
    t_np = lift_semantic_targets(np.zeros(4), np.array([0, 1, 0, 1]))
    assert t_np.y_d.tolist() == [1.0, 0.0, 1.0, 0.0]
    all_bottom = lift_semantic_targets([1.0, 2.0], "bottom")
    assert all_bottom.y_d.tolist() == [0.0, 0.0] and len(all_bottom) == 2
    assert STATUS_NAMES[STATUS_CODES["censored_above"]] == "censored_above"


def test_device_and_dtype_follow_the_values() -> None:
    v = torch.tensor([1.0, INF], dtype=torch.float64)
    t = lift_semantic_targets(v, np.array(["finite", "bottom"]))
    assert t.y_n.dtype == torch.float64 and t.status.dtype == torch.int64
    assert t.status.device == v.device and t.loss_mask.dtype == torch.bool
    moved = t.to(torch.float32)
    assert moved.y_n.dtype == torch.float32 and moved.status.dtype == torch.int64


def test_unpacking_len_indexing_select() -> None:
    t = lift_semantic_targets(
        torch.tensor([1.0, INF, 3.0, 4.0]), ["finite", "bottom", "missing", "finite"]
    )
    y_n, y_d = t
    assert y_n is t.y_n and y_d is t.y_d
    assert len(t) == 4 and t.shape == (4,)
    sub = t.select(t.loss_mask)
    assert isinstance(sub, SemanticTargets) and len(sub) == 3
    assert sub.y_n.tolist() == [1.0, 1.0, 4.0] and sub.status.tolist() == [0, 1, 0]
    assert t[1:3].oriented.tolist() == [True, False]
    with pytest.raises(AttributeError):
        t.y_n = torch.zeros(4)  # type: ignore[misc]  # frozen


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_nan_in_finite_row_names_the_row(backend: str) -> None:
    values = [1.0, 2.0, 3.0, NAN, 5.0]
    v = torch.tensor(values) if backend == "torch" else np.array(values)
    with pytest.raises(InvalidTargetError, match=r"row 3 is labelled finite but holds nan"):
        lift_semantic_targets(v, ["finite"] * 5)
    assert issubclass(InvalidTargetError, ValueError)
    assert issubclass(InvalidTargetError, ZeroProofRuntimeError)


def test_nonfinite_value_errors_name_row_and_fix() -> None:
    v = torch.tensor([[1.0, 2.0], [3.0, INF]])
    with pytest.raises(InvalidTargetError, match=r"row 1 \(element \(1, 1\)\).*finite.*'bottom'"):
        lift_semantic_targets(v, ["finite", "finite"])
    with pytest.raises(
        InvalidTargetError, match=r"row 0 is labelled censored.*finite censoring bound"
    ):
        lift_semantic_targets([NAN], ["censored_above"])


def test_unknown_labels_and_codes() -> None:
    with pytest.raises(InvalidTargetError, match=r"unknown label 'bottomm'.*finite, bottom"):
        lift_semantic_targets([1.0, 2.0], ["finite", "bottomm"])
    with pytest.raises(InvalidTargetError, match=r"unknown code 9 at index \(1,\)"):
        lift_semantic_targets([1.0, 2.0], torch.tensor([0, 9]))
    with pytest.raises(UnsupportedInputError, match="status_labels has dtype torch.float32"):
        lift_semantic_targets([1.0], torch.tensor([0.0]))
    with pytest.raises(UnsupportedInputError, match="status_labels has dtype float64"):
        lift_semantic_targets([1.0], np.array([0.0]))


def test_label_shape_mismatch_names_expected_and_got() -> None:
    with pytest.raises(
        ShapeMismatchError, match=r"shape \(3,\); expected the values' shape \(2, 4\)"
    ):
        lift_semantic_targets(torch.zeros(2, 4), ["finite"] * 3)
    with pytest.raises(ShapeMismatchError, match=r"shape \(1,\).*\(2,\)"):
        lift_semantic_targets([1.0, 2.0], ["finite"])


def test_to_requires_torch_fields() -> None:
    t = lift_semantic_targets(np.array([1.0]), ["finite"])
    with pytest.raises(UnsupportedInputError, match="needs torch fields"):
        t.to("cpu")


@given(
    st.lists(
        st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(LABELS)),
        min_size=1,
        max_size=20,
    )
)
def test_semantic_lift_invariants(rows: list[tuple[float, str]]) -> None:
    values = np.array([v for v, _ in rows])
    labels = [label for _, label in rows]
    needs_finite = np.array(
        [lab in ("finite", "censored_below", "censored_above") for lab in labels]
    )
    if (needs_finite & ~np.isfinite(values)).any():
        with pytest.raises(InvalidTargetError, match="row"):
            lift_semantic_targets(values, labels)
        return
    t = lift_semantic_targets(torch.from_numpy(values), labels)
    status = t.status.numpy()
    y_n, y_d = t.y_n.numpy(), t.y_d.numpy()
    excluded = (status == STATUS_CODES["missing"]) | (status == STATUS_CODES["fault"])
    assert np.array_equal(t.loss_mask.numpy(), ~excluded)
    assert (y_n[excluded] == 0).all() and (y_d[excluded] == 0).all()
    assert (
        np.array_equal(y_n[needs_finite], values[needs_finite]) and (y_d[needs_finite] == 1).all()
    )
    sing = t.singular_mask.numpy()
    assert (y_d[sing] == 0).all() and (np.abs(y_n[sing]) == 1).all()
    assert np.array_equal(t.oriented.numpy(), sing & np.isinf(values))
    assert (y_n[sing & (values == -INF)] == -1).all()
    # every included row is a point of the projective line (never the null tuple)
    assert ((y_n != 0) | (y_d != 0))[~excluded].all()
