"""StrictInferenceMonitor and JsonlLogger."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
import torch

from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError, UnsupportedInputError
from zpml_runtime.inference import InferenceConfig, StrictInferenceMonitor, strict_inference
from zpml_runtime.logging import JsonlLogger, dumps_strict, to_jsonable

NAN, INF = math.nan, math.inf


def _masks(n_bottom: int, n: int = 10, n_gap: int = 0):
    bottom = torch.zeros(n, dtype=torch.bool)
    bottom[:n_bottom] = True
    gap = torch.zeros(n, dtype=torch.bool)
    gap[n_bottom : n_bottom + n_gap] = True
    return bottom, gap


def test_rates_from_masks_and_results(tmp_path):
    monitor = StrictInferenceMonitor(bundle_id="b1", event_logger=JsonlLogger(tmp_path / "e.jsonl"))
    assert monitor.rates()["bottom_rate"] is None
    monitor.update(*_masks(2, n_gap=1))
    rates = monitor.rates()
    assert (
        rates["bottom_rate"] == 0.2 and rates["gap_rate"] == 0.1 and rates["acceptance_rate"] == 0.8
    )
    assert (
        rates["fault_rate"] is None and rates["route_rate"] is None
    )  # never provided: unknown, not 0
    result = strict_inference(
        torch.tensor([1.0, INF, 1.0, 2.0]),
        torch.tensor([0.0, 0.0, 5e-5, 1.0]),
        config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4),
    )
    monitor.update(result, route_mask=torch.tensor([True, True, False, False]))
    rates = monitor.rates()
    assert rates["bottom_rate"] == pytest.approx(4 / 14)
    assert (
        rates["fault_rate"] == 0.25
        and rates["semantic_bottom_rate"] == 0.5
        and rates["mixed_rate"] == 0.25
    )
    assert rates["route_rate"] == rates["fallback_rate"] == 0.5


def test_denominator_minimum_histogram_and_hazard():
    monitor = StrictInferenceMonitor(bundle_id="b", numerical_hazard_threshold=1e-3)
    q = np.array([0.0, 1e-7, 5e-4, 0.5, INF, NAN])
    bottom = np.array([True, True, False, False, True, True])
    summary = monitor.update(bottom, np.zeros(6, bool), q_abs=q)
    assert summary["q_abs_min"] == 0.0 and summary["q_abs_min_accepted"] == 5e-4
    state = monitor.export_state(include_histograms=True)
    assert state["denominator"] == {"q_abs_min": 0.0, "q_abs_min_accepted": 5e-4, "n_nonfinite": 2}
    hist = state["histograms"]["q_abs"]
    assert hist["zero"] == 1 and hist["nonfinite"] == 2 and sum(hist["counts"]) == 3
    assert monitor.rates()["numerical_hazard_rate"] == pytest.approx(3 / 6)
    with pytest.raises(InvalidConfigError, match="absolute values"):
        monitor.update(bottom, q_abs=-q)


def test_per_row_q_abs_for_multi_output_masks():
    monitor = StrictInferenceMonitor(bundle_id="b")
    summary = monitor.update(
        torch.tensor([[True, True], [False, False]]), q_abs=torch.tensor([0.0, 2.0])
    )
    assert summary["q_abs_min_accepted"] == 2.0
    with pytest.raises(ShapeMismatchError, match="q_abs has 3 entries"):
        monitor.update(torch.zeros(2, 2, dtype=torch.bool), q_abs=torch.ones(3))


def test_drift_against_baseline_and_window(tmp_path):
    events = JsonlLogger(tmp_path / "events.jsonl")
    monitor = StrictInferenceMonitor(
        bundle_id="robotics_rr_ik_v1",
        event_logger=events,
        acceptance_rate_drift_threshold=0.1,
        baseline={"acceptance_rate": 0.9},
        window_size=3,
    )
    for _ in range(3):
        monitor.update(*_masks(1))  # acceptance 0.9
    assert not monitor.drift()["alert"] and events.read() == []
    monitor.update(*_masks(6))  # batch 0.4: window (0.9, 0.9, 0.4) = 0.733
    drift = monitor.drift()
    assert drift["alert"] and drift["drift_vs_window"] == pytest.approx(0.5)
    assert drift["drift_vs_baseline"] == pytest.approx(0.9 - 22 / 30)
    kinds = sorted(e["kind"] for e in events.read())
    assert kinds == ["baseline", "window"]
    assert all(e["bundle_id"] == "robotics_rr_ik_v1" for e in events.read())
    assert len(monitor.alerts) == 2


def test_memory_is_bounded_and_state_is_strict_json():
    monitor = StrictInferenceMonitor(
        bundle_id="b",
        max_batch_summaries=5,
        window_size=4,
        max_alerts=3,
        baseline={"acceptance_rate": 1.0},
    )
    for i in range(50):
        monitor.update(*_masks(i % 10))
    state = monitor.export_state(include_histograms=True, include_batch_summaries=True)
    assert len(state["batch_summaries"]) == 5 and state["batch_summaries_dropped"] == 45
    assert len(state["alerts"]) == 3
    # the drift window holds the last 4 batches only: bottoms 6..9 of 10 (accepted 4+3+2+1),
    # and the window before the last batch bottoms 5..8 (accepted 5+4+3+2)
    drift = monitor.drift()
    assert drift["window_acceptance_rate"] == pytest.approx(10 / 40)
    assert drift["previous_window_acceptance_rate"] == pytest.approx(14 / 40)
    assert state["n_batches"] == 50 and state["n_entries"] == 500
    json.dumps(state, allow_nan=False)
    assert state["histograms"]["provenance"] is None


def test_monitor_argument_errors():
    with pytest.raises(InvalidConfigError, match="bundle_id must be a non-empty string"):
        StrictInferenceMonitor(bundle_id="")
    with pytest.raises(InvalidConfigError, match="acceptance_rate_drift_threshold must be finite"):
        StrictInferenceMonitor(bundle_id="b", acceptance_rate_drift_threshold=NAN)
    with pytest.raises(InvalidConfigError, match="unknown baseline rate 'accept'"):
        StrictInferenceMonitor(bundle_id="b", baseline={"accept": 0.9})
    with pytest.raises(InvalidConfigError, match="must lie in"):
        StrictInferenceMonitor(bundle_id="b", baseline={"acceptance_rate": 2.0})
    with pytest.raises(InvalidConfigError, match="window_size must be a positive integer"):
        StrictInferenceMonitor(bundle_id="b", window_size=0)
    with pytest.raises(UnsupportedInputError, match="event_logger must have"):
        StrictInferenceMonitor(bundle_id="b", event_logger=42)
    monitor = StrictInferenceMonitor(bundle_id="b")
    with pytest.raises(UnsupportedInputError, match="bottom_mask must be a boolean mask"):
        monitor.update(torch.zeros(3))
    with pytest.raises(ShapeMismatchError, match="gap_mask has 2 entries but bottom_mask has 3"):
        monitor.update(torch.zeros(3, dtype=torch.bool), torch.zeros(2, dtype=torch.bool))


def test_jsonl_logger_nan_as_null_and_thread_safe(tmp_path):
    logger = JsonlLogger(tmp_path / "sub" / "log.jsonl", add_timestamp=False)
    logger.log(
        {"x": NAN, "y": [INF, 1.0], "t": torch.tensor([1.0, NAN]), "a": np.float32(2.5)}, z=-INF
    )
    assert logger.read() == [{"x": None, "y": [None, 1.0], "t": [1.0, None], "a": 2.5, "z": None}]

    def worker(k):
        for i in range(50):
            logger({"worker": k, "i": i, "pad": "x" * 200})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "sub" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 401
    assert all(json.loads(line) for line in lines)  # no interleaved, broken lines
    with pytest.raises(UnsupportedInputError, match="expects a mapping"):
        logger.log([1, 2])  # type: ignore[arg-type]


def test_timestamp_and_to_jsonable_errors(tmp_path):
    logger = JsonlLogger(tmp_path / "t.jsonl")
    logger.log(event="x")
    assert "timestamp" in logger.read()[0]
    assert dumps_strict({"v": NAN}) == '{"v": null}'
    with pytest.raises(UnsupportedInputError, match="cannot serialise object"):
        to_jsonable(object())
