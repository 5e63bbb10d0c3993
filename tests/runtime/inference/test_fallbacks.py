"""Fallbacks: reject, route to an analytic solver, sentinel encoding, 3-way censoring."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from zpml_runtime.errors import (
    AnalyticSolverError,
    InvalidConfigError,
    SentinelCollisionError,
    ShapeMismatchError,
    UnsupportedInputError,
)
from zpml_runtime.inference import (
    CENSOR_ABOVE,
    CENSOR_BELOW,
    CENSOR_IN_RANGE,
    CENSOR_UNKNOWN,
    InferenceConfig,
    decode_strict_censored_3way,
    fill_bottom_with_sentinel,
    reject_on_bottom,
    reject_on_gap,
    route_to_analytic_solver,
    strict_inference,
)
from zpml_runtime.logging import JsonlLogger

NAN, INF = math.nan, math.inf
CFG = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)


def _result(backend="torch"):
    P = [1.0, 2.0, 3.0, 4.0]
    Q = [0.0, 5e-5, 2.0, 4.0]
    if backend == "torch":
        return strict_inference(torch.tensor(P), torch.tensor(Q), config=CFG)
    return strict_inference(np.array(P), np.array(Q), config=CFG)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_reject_on_bottom_and_gap(backend):
    decoded, bottom, gap = _result(backend)
    safe, accept = reject_on_bottom(decoded, bottom)
    assert list(accept) == [False, True, True, True]
    assert math.isnan(float(safe[0])) and float(safe[2]) == 1.5
    safe, accept = reject_on_gap(decoded, bottom, gap)
    assert list(accept) == [False, False, True, True]
    _, accept = reject_on_bottom(decoded, bottom, fill_value=0.0)
    assert list(accept) == [False, True, True, True]


def test_reject_fails_closed_on_inconsistent_inputs():
    decoded = torch.tensor([1.0, NAN, INF])
    _, accept = reject_on_bottom(decoded, torch.zeros(3, dtype=torch.bool))
    assert accept.tolist() == [True, False, False]


def test_mask_errors():
    decoded = torch.ones(2, 3)
    with pytest.raises(UnsupportedInputError, match="bottom_mask must be a boolean mask"):
        reject_on_bottom(decoded, torch.zeros(2, 3))
    with pytest.raises(
        ShapeMismatchError, match=r"bottom_mask has shape \(3,\) but decoded has shape \(2, 3\)"
    ):
        reject_on_bottom(decoded, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(UnsupportedInputError, match="decoded must be a floating array"):
        reject_on_bottom(torch.ones(2, dtype=torch.int64), torch.zeros(2, dtype=torch.bool))
    safe, accept = reject_on_bottom(decoded, torch.tensor([True, False]))  # one flag per sample
    assert accept.tolist() == [[False] * 3, [True] * 3]


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_route_to_analytic_solver_routes_every_bottom_and_logs(backend, tmp_path, caplog):
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    decoded, bottom, gap = _result(backend)
    inputs = torch.tensor(x) if backend == "torch" else x
    calls = []

    def solver(rows):
        calls.append(rows)
        return rows[:, 0] * 10.0

    events = JsonlLogger(tmp_path / "events.jsonl")
    with caplog.at_level(logging.INFO, logger="zpml_runtime.inference"):
        resolved, route = route_to_analytic_solver(
            decoded, bottom_mask=bottom, analytic_solver=solver, inputs=inputs, event_logger=events
        )
    assert list(route) == [True, False, False, False]
    assert [float(v) for v in resolved] == [0.0, 2.0 / 5e-5, 1.5, 1.0]
    assert len(calls) == 1 and len(calls[0]) == 1
    assert math.isnan(float(decoded[0]))  # the input is not modified
    (event,) = events.read()
    assert event["event"] == "route_to_analytic_solver"
    assert (event["n_routed"], event["routed_indices"], event["route_rate"]) == (1, [0], 0.25)
    assert "route_to_analytic_solver" in caplog.text

    resolved, route = route_to_analytic_solver(
        decoded, bottom_mask=bottom, gap_mask=gap, analytic_solver=solver, inputs=inputs
    )
    assert list(route) == [True, True, False, False]
    assert [float(v) for v in resolved[:2]] == [0.0, 10.0]


def test_route_rows_for_multi_output_and_tuple_inputs():
    decoded = torch.tensor([[1.0, NAN], [2.0, 3.0]])
    bottom = torch.tensor([[False, True], [False, False]])
    seen = {}

    def solver(args):
        a, b = args
        seen["shapes"] = (tuple(a.shape), tuple(b.shape))
        return np.full((1, 2), 7.0)

    resolved, route = route_to_analytic_solver(
        decoded,
        bottom_mask=bottom,
        analytic_solver=solver,
        inputs=(torch.zeros(2, 3), np.zeros((2, 1))),
    )
    assert route.tolist() == [True, False]
    assert resolved.tolist() == [[7.0, 7.0], [2.0, 3.0]]
    assert seen["shapes"] == ((1, 3), (1, 1))


def test_route_with_nothing_to_route_does_not_call_solver():
    decoded = torch.tensor([1.0, 2.0])

    def solver(rows):  # pragma: no cover - must not be called
        raise AssertionError("called")

    resolved, route = route_to_analytic_solver(
        decoded,
        bottom_mask=torch.zeros(2, dtype=torch.bool),
        analytic_solver=solver,
        inputs=torch.zeros(2, 1),
    )
    assert not route.any() and torch.equal(resolved, decoded)


@pytest.mark.parametrize(
    ("solver", "match"),
    [
        (
            lambda rows: torch.full((len(rows),), NAN),
            r"non-finite values for 1 of 1 routed rows \(first: input row 0\)",
        ),
        (
            lambda rows: torch.zeros(len(rows), 2),
            r"returned shape \(1, 2\) for 1 routed rows; expected \(1,\)",
        ),
        (lambda rows: object(), r"cannot be converted"),
    ],
)
def test_route_checks_solver_output(solver, match):
    decoded, bottom, _ = _result()
    with pytest.raises(AnalyticSolverError, match=match):
        route_to_analytic_solver(
            decoded, bottom_mask=bottom, analytic_solver=solver, inputs=torch.zeros(4, 1)
        )


def test_route_checks_batch_size():
    decoded, bottom, _ = _result()
    with pytest.raises(ShapeMismatchError, match="batch size 4"):
        route_to_analytic_solver(
            decoded, bottom_mask=bottom, analytic_solver=lambda r: r, inputs=torch.zeros(3, 1)
        )


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_sentinel_encoding(backend):
    decoded, bottom, _ = _result(backend)
    encoded, reject = fill_bottom_with_sentinel(decoded, bottom, sentinel=-1.0)
    assert [float(v) for v in encoded][::2] == [-1.0, 1.5] and list(reject) == [
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(
        SentinelCollisionError,
        match=r"equals 1 accepted decoded value\(s\) \(first at index \(2,\)\)",
    ):
        fill_bottom_with_sentinel(decoded, bottom, sentinel=1.5)
    with pytest.raises(SentinelCollisionError, match="finite real number"):
        fill_bottom_with_sentinel(decoded, bottom, sentinel=NAN)


def test_sentinel_must_be_representable():
    decoded = torch.ones(2, dtype=torch.float16)
    with pytest.raises(SentinelCollisionError, match="not exactly representable in torch.float16"):
        fill_bottom_with_sentinel(decoded, torch.zeros(2, dtype=torch.bool), sentinel=-999.9)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_censored_3way_without_direction_head(backend):
    P = [2.0, -2.0, 2.0, 1.0, INF, 0.0]
    Q = [1e-9, 1e-9, 0.0, 4.0, 1.0, 1e-9]
    xp = torch.tensor if backend == "torch" else np.array
    decoded, bottom, cls = decode_strict_censored_3way(xp(P), xp(Q), tau_infer=1e-6)
    assert list(cls) == [
        CENSOR_ABOVE,
        CENSOR_BELOW,
        CENSOR_UNKNOWN,
        CENSOR_IN_RANGE,
        CENSOR_UNKNOWN,
        CENSOR_UNKNOWN,
    ]
    assert list(bottom) == [True, True, True, False, True, True]
    assert float(decoded[3]) == 0.25


def test_censored_3way_with_direction_logits():
    P = torch.tensor([[2.0], [2.0], [INF], [1.0]])
    Q = torch.tensor([[1e-9], [0.0], [1.0], [4.0]])
    logits2 = torch.tensor([[0.1, 2.0], [3.0, -1.0], [0.0, 5.0], [9.0, 0.0]])
    _, bottom, cls = decode_strict_censored_3way(
        P.squeeze(-1), Q.squeeze(-1), tau_infer=1e-6, direction_logits=logits2
    )
    assert cls.tolist() == [CENSOR_ABOVE, CENSOR_BELOW, CENSOR_ABOVE, CENSOR_IN_RANGE]
    signed = torch.tensor([-1.0, NAN, 0.0, 1.0])
    _, _, cls = decode_strict_censored_3way(
        P.squeeze(-1), Q.squeeze(-1), tau_infer=1e-6, direction_logits=signed
    )
    assert cls.tolist() == [CENSOR_BELOW, CENSOR_UNKNOWN, CENSOR_UNKNOWN, CENSOR_IN_RANGE]
    with pytest.raises(InvalidConfigError, match=r"direction_logits has shape \(4, 3\)"):
        decode_strict_censored_3way(
            P.squeeze(-1), Q.squeeze(-1), tau_infer=1e-6, direction_logits=torch.zeros(4, 3)
        )
