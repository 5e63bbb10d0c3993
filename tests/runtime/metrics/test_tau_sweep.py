"""tau_infer calibration: sweep, strict JSON/Markdown/plot artifacts, recommendation."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from zpml_runtime.errors import (
    CalibrationError,
    InvalidConfigError,
    ShapeMismatchError,
    UnsupportedInputError,
)
from zpml_runtime.inference import InferenceConfig, strict_inference
from zpml_runtime.metrics import (
    TauInferSweep,
    recommend_tau_infer,
    tau_infer_sweep_from_q_abs,
    write_tau_infer_sweep,
)

TAUS = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4]


def _data():
    q = np.array([0.0, 2e-6, 5e-6, 2e-5, 1.0, 2.0, np.nan, np.inf, 4e-5, 1e-7])
    in_range = np.array([False, True, True, True, True, True, True, False, False, False])
    return q, in_range


def test_sweep_counts_and_rates():
    q, r = _data()
    c = tau_infer_sweep_from_q_abs(q_abs=q, is_in_range=r, taus=TAUS)
    assert (c.n_total, c.n_in_range, c.n_out_of_range, c.n_nonfinite) == (10, 6, 4, 2)
    # in range: 2e-6, 5e-6, 2e-5, 1, 2, NaN (NaN always bottom)
    assert c.n_false_bottom == (1, 2, 3, 4, 4)
    # out of range: 0 (bottom), inf (bottom), 4e-5, 1e-7
    assert c.n_unsafe_accept == (1, 1, 1, 1, 0)
    assert c.false_bottom_rate[0] == pytest.approx(1 / 6) and c.unsafe_accept_rate[-1] == 0.0
    assert c.coverage[0] == pytest.approx(1 - c.bottom_rate[0])


def test_sweep_agrees_with_strict_inference_float32():
    rng = np.random.default_rng(1)
    q = np.abs(rng.standard_normal(500) * 1e-4).astype(np.float32)
    q[:3] = [0.0, np.nan, np.inf]
    c = tau_infer_sweep_from_q_abs(
        q_abs=torch.from_numpy(q), is_in_range=np.ones(500, bool), taus=TAUS
    )
    for tau, n_bottom in zip(TAUS, c.n_bottom, strict=True):
        result = strict_inference(np.ones_like(q), q, config=InferenceConfig(tau_infer=tau))
        assert int(result.bottom_mask.sum()) == n_bottom


@given(
    st.lists(
        st.one_of(st.floats(min_value=0, allow_infinity=True), st.just(math.nan)),
        min_size=0,
        max_size=30,
    ),
    st.data(),
)
def test_sweep_never_crashes_and_rates_are_defined_or_none(qs, data):
    r = data.draw(st.lists(st.booleans(), min_size=len(qs), max_size=len(qs)))
    c = tau_infer_sweep_from_q_abs(
        q_abs=np.array(qs, dtype=float), is_in_range=np.array(r, dtype=bool), taus=[0.0, 1e-3, 1.0]
    )
    for rate, den in (
        (c.false_bottom_rate, c.n_in_range),
        (c.unsafe_accept_rate, c.n_out_of_range),
    ):
        assert all((v is None) == (den == 0) for v in rate)
        assert all(v is None or 0.0 <= v <= 1.0 for v in rate)
    assert list(c.n_false_bottom) == sorted(c.n_false_bottom)  # monotone in tau
    json.dumps(c.to_dict(), allow_nan=False)


def test_empty_classes_and_empty_input():
    c = tau_infer_sweep_from_q_abs(q_abs=[], is_in_range=np.array([], bool), taus=[1e-6])
    assert c.bottom_rate == (None,) and c.false_bottom_rate == (None,)
    with pytest.raises(CalibrationError, match="no in-range samples"):
        recommend_tau_infer(c, max_false_bottom_rate=0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"q_abs": [-1.0], "is_in_range": [True], "taus": [0.0]},
            InvalidConfigError,
            r"pass np.abs\(Q\)",
        ),
        (
            {"q_abs": [1.0, 2.0], "is_in_range": [True], "taus": [0.0]},
            ShapeMismatchError,
            "2 samples but is_in_range has 1",
        ),
        (
            {"q_abs": [1.0], "is_in_range": [0.5], "taus": [0.0]},
            UnsupportedInputError,
            "is_in_range must be boolean",
        ),
        (
            {"q_abs": [1.0], "is_in_range": [True], "taus": []},
            InvalidConfigError,
            "non-empty sequence",
        ),
        (
            {"q_abs": [1.0], "is_in_range": [True], "taus": [math.nan]},
            InvalidConfigError,
            r"taus\[0\] must be finite",
        ),
        (
            {"q_abs": "abc", "is_in_range": [True], "taus": [0.0]},
            UnsupportedInputError,
            "q_abs must be an array",
        ),
    ],
)
def test_sweep_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        tau_infer_sweep_from_q_abs(**kwargs)


def test_recommendation():
    q, r = _data()
    c = tau_infer_sweep_from_q_abs(q_abs=q, is_in_range=r, taus=TAUS)
    rec = recommend_tau_infer(c, max_false_bottom_rate=0.34)
    assert rec.tau_infer == 3e-6 and rec.false_bottom_rate == pytest.approx(2 / 6)
    assert "largest of 5 swept thresholds" in rec.reason
    with pytest.raises(CalibrationError, match=r"smallest is 0.1667 at tau_infer=1e-06"):
        recommend_tau_infer(c, max_false_bottom_rate=0.1)
    with pytest.raises(InvalidConfigError, match="must lie in"):
        recommend_tau_infer(c, max_false_bottom_rate=1.5)


def test_recommendation_refuses_a_sweep_with_undefined_rates_but_in_range_samples():
    q, r = _data()
    c = tau_infer_sweep_from_q_abs(q_abs=q, is_in_range=r, taus=TAUS)
    rates = list(c.false_bottom_rate)
    rates[2] = None
    bad = dataclasses.replace(c, false_bottom_rate=tuple(rates))
    for target in (0.34, 0.1):  # with and without a threshold that meets the target
        with pytest.raises(CalibrationError, match="4 defined rates for 5 swept thresholds"):
            recommend_tau_infer(bad, max_false_bottom_rate=target)


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_write_artifacts(tmp_path, fmt):
    q, r = _data()
    curves = tau_infer_sweep_from_q_abs(q_abs=q, is_in_range=r, taus=[0.0, *TAUS])
    paths = write_tau_infer_sweep(
        tmp_path / "tau_calibration",
        curves,
        provenance={"split": "held_out", "seed": np.int64(3)},
        plot_format=fmt,
        max_false_bottom_rate=0.2,
    )
    text = paths["json"].read_text()
    assert "NaN" not in text and "Infinity" not in text
    payload = json.loads(text)
    assert payload["provenance"] == {"split": "held_out", "seed": 3}
    assert payload["recommendation"]["tau_infer"] == 1e-6
    assert len(payload["rows"]) == 6
    md = paths["markdown"].read_text()
    assert "| tau_infer |" in md and "Recommendation: tau_infer = 1e-06" in md
    assert paths["plot"].stat().st_size > 1000 and paths["plot"].suffix == f".{fmt}"


def test_write_reports_failed_recommendation_and_validates(tmp_path):
    c = tau_infer_sweep_from_q_abs(q_abs=[1.0], is_in_range=[False], taus=[1e-6])
    paths = write_tau_infer_sweep(tmp_path, c, max_false_bottom_rate=0.1)
    assert "no in-range samples" in json.loads(paths["json"].read_text())["recommendation"]["error"]
    assert "n/a" in paths["markdown"].read_text()
    with pytest.raises(InvalidConfigError, match="plot_format"):
        write_tau_infer_sweep(tmp_path, c, plot_format="pdf")
    with pytest.raises(UnsupportedInputError, match="curves must be a TauInferSweep"):
        write_tau_infer_sweep(tmp_path, {"rows": []})  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInputError, match="cannot serialise"):
        write_tau_infer_sweep(tmp_path, c, provenance={"x": object()})
    assert isinstance(c, TauInferSweep)
