"""The seed documents' runtime snippets, run as written (imports moved to ``zpml_runtime``).

Seeds: 000 (Inference & Deployment), 002 (Mask Provenance Guide), 004 (Gauge
Policy). Snippets needing bundles, training or layers belong to other modules
and are tested there. Each test first builds the small synthetic data the
snippet assumes (``P``, ``Q``, ``model``, ``x``, ...), then runs the snippet body
unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture
def PQ():
    P = torch.tensor([[1.0], [2.0], [3.0], [4.0], [float("inf")]])
    Q = torch.tensor([[0.0], [5e-5], [2.0], [1e-7], [1.0]])
    return P, Q


class _Model(nn.Module):
    def forward(self, x):
        return x[:, 0] * 2.0, x[:, 0] - 0.5


@pytest.fixture
def model_x():
    return _Model(), torch.tensor([[0.5], [1.0], [0.50005], [2.0]])


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets write relative paths


def test_seed000_strict_decode(PQ):
    P, Q = PQ
    from zpml_runtime.inference import InferenceConfig, strict_inference

    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    decoded, bottom_mask, gap_mask = strict_inference(P, Q, config=cfg)

    assert bottom_mask.flatten().tolist() == [True, False, False, True, True]
    assert gap_mask.flatten().tolist() == [False, True, False, False, False]


def test_seed000_choosing_tau_infer(tmp_path):
    rng = np.random.default_rng(0)
    q_abs_held_out = np.abs(rng.standard_normal(1000)) * 1e-4
    is_in_range = q_abs_held_out > 5e-6
    from zpml_runtime.metrics import tau_infer_sweep_from_q_abs, write_tau_infer_sweep

    curves = tau_infer_sweep_from_q_abs(
        q_abs=q_abs_held_out,
        is_in_range=is_in_range,
        taus=[1e-6, 3e-6, 1e-5, 3e-5, 1e-4],
    )
    write_tau_infer_sweep(
        "results/tau_calibration",
        curves,
        provenance={"split": "held_out"},
    )

    # The written sweep holds, per threshold, exactly the counts of the strict rule
    # (docs/semantics.md section 3: |Q| < tau is bottom; here every |Q| is finite).
    import json

    from zpml_core import spec

    data = json.loads((tmp_path / "results/tau_calibration/tau_infer_sweep.json").read_text())
    assert data["provenance"] == {"split": "held_out"}
    assert (data["n_total"], data["n_in_range"]) == (1000, int(is_in_range.sum()))
    assert [row["tau_infer"] for row in data["rows"]] == [1e-6, 3e-6, 1e-5, 3e-5, 1e-4]
    for row in data["rows"]:
        bottom = np.array(
            [spec.below_threshold(float(q), row["tau_infer"]) for q in q_abs_held_out]
        )
        assert row["n_bottom"] == int(bottom.sum())
        assert row["n_false_bottom"] == int((bottom & is_in_range).sum())
        assert row["n_unsafe_accept"] == int((~bottom & ~is_in_range).sum())
        assert row["coverage"] == pytest.approx(1 - bottom.mean())
    # a larger threshold never accepts more out-of-range samples
    unsafe = [row["n_unsafe_accept"] for row in data["rows"]]
    assert unsafe == sorted(unsafe, reverse=True) and unsafe[0] > 0 == unsafe[-1]
    md = (tmp_path / "results/tau_calibration/tau_infer_sweep.md").read_text()
    for row in data["rows"]:  # the table shows the same rates
        assert f"| {row['tau_infer']:g} | {row['bottom_rate']:.4f} | {row['coverage']:.4f} |" in md


def test_seed000_wrapping_a_model(model_x):
    model, x = model_x
    from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

    wrapped = SCMInferenceWrapper(
        model,
        config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4),
    ).eval()

    decoded, bottom_mask, gap_mask = wrapped(x)

    assert bottom_mask.tolist() == [True, False, False, False]
    assert gap_mask.tolist() == [False, False, True, False]


def test_seed000_fallback_patterns(model_x):
    model, x = model_x
    from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper

    decoded, bottom_mask, gap_mask = SCMInferenceWrapper(
        model, config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    ).eval()(x)

    def solver(rows):
        return rows[:, 0] * 2.0 / (rows[:, 0] - 0.5 + 1.0)

    from zpml_runtime.inference import reject_on_bottom

    decoded_safe, accept_mask = reject_on_bottom(decoded, bottom_mask)

    from zpml_runtime.inference import reject_on_gap

    decoded_safe, accept_mask = reject_on_gap(decoded, bottom_mask, gap_mask)

    from zpml_runtime.inference import route_to_analytic_solver

    resolved, route_mask = route_to_analytic_solver(
        decoded,
        bottom_mask=bottom_mask,
        analytic_solver=solver,
        inputs=x,
    )

    assert accept_mask.tolist() == [False, True, False, True]
    assert route_mask.tolist() == [True, False, False, False]
    assert torch.isfinite(resolved).all()


def test_seed000_monitoring(PQ, tmp_path):
    from zpml_runtime.inference import InferenceConfig, strict_inference

    decoded, bottom_mask, gap_mask = strict_inference(
        *PQ, config=InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    )
    from zpml_runtime.inference import StrictInferenceMonitor
    from zpml_runtime.logging import JsonlLogger

    events = JsonlLogger("strict_inference_events.jsonl")
    monitor = StrictInferenceMonitor(
        bundle_id="robotics_rr_ik_v1",
        event_logger=events,
        acceptance_rate_drift_threshold=0.1,
    )

    monitor.update(bottom_mask, gap_mask)
    rates = monitor.rates()
    state = monitor.export_state(
        include_histograms=True,
        include_batch_summaries=True,
    )

    assert rates["bottom_rate"] == 0.6 and rates["gap_rate"] == 0.2
    assert state["bundle_id"] == "robotics_rr_ik_v1" and len(state["batch_summaries"]) == 1


def test_seed000_optional_provenance_diagnostics(PQ):
    P, Q = PQ
    from zpml_runtime.inference import InferenceConfig, strict_inference

    cfg = InferenceConfig(
        tau_infer=1e-6,
        tau_train=1e-4,
        provenance="experimental",
        provenance_representation="split_masks",
    )

    result = strict_inference(P, Q, config=cfg)
    decoded, bottom_mask, gap_mask = result

    fault_mask = getattr(result, "fault_mask", None)
    semantic_bottom_mask = getattr(result, "semantic_bottom_mask", None)
    bottom_provenance = getattr(result, "bottom_provenance", None)

    assert fault_mask.flatten().tolist() == [False, False, False, False, True]
    assert semantic_bottom_mask.flatten().tolist() == [True, False, False, True, False]
    assert bottom_provenance.flatten().tolist() == [2, 0, 0, 2, 1]


def test_seed000_direction_aware_censoring(PQ):
    P, Q = PQ
    direction_logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    from zpml_runtime.inference import decode_strict_censored_3way

    decoded, bottom_mask, class_id = decode_strict_censored_3way(
        P.squeeze(-1),
        Q.squeeze(-1),
        tau_infer=1e-6,
        direction_logits=direction_logits,
    )

    assert class_id.tolist() == [2, 1, 1, 0, 2]


def test_seed002_accessing_provenance(PQ):
    P, Q = PQ
    from zpml_runtime.inference import strict_inference

    result = strict_inference(P, Q)
    decoded, bottom_mask, gap_mask = result
    fault_mask = result.fault_mask
    semantic_bottom_mask = result.semantic_bottom_mask
    bottom_provenance = result.bottom_provenance

    assert torch.equal(bottom_mask, fault_mask | semantic_bottom_mask)
    assert torch.equal(bottom_mask, bottom_provenance != 0)


def test_seed002_recommended_consumer_pattern(PQ):
    from zpml_runtime.inference import strict_inference

    result = strict_inference(*PQ)
    decoded, bottom_mask, gap_mask = result
    fault_mask = getattr(result, "fault_mask", None)
    semantic_bottom_mask = getattr(result, "semantic_bottom_mask", None)
    bottom_provenance = getattr(result, "bottom_provenance", None)

    # The pattern's three provenance views exist and say what docs/semantics.md
    # section 3 says for the fixture rows (Q = 0, 5e-5, 2, 1e-7, 1 with P = inf in
    # the last row; tau_infer = 0: exact zeros only).
    from zpml_core import spec

    P, Q = (t.flatten().tolist() for t in PQ)
    want = [spec.classify(p, q, tau_infer=0.0, dtype="float32") for p, q in zip(P, Q, strict=True)]
    assert fault_mask.flatten().tolist() == [v.fault for v in want] == [False] * 4 + [True]
    assert semantic_bottom_mask.flatten().tolist() == [v.semantic for v in want]
    assert bottom_provenance.flatten().tolist() == [v.provenance for v in want] == [2, 0, 0, 0, 1]
    assert bottom_mask.flatten().tolist() == [v.bottom for v in want]
    assert gap_mask.flatten().tolist() == [False] * 5  # no tau_train: no gap
    accepted = ~bottom_mask
    assert torch.equal(decoded[accepted], (PQ[0] / PQ[1])[accepted])
    assert bool(torch.isnan(decoded[bottom_mask]).all())


def test_seed004_gauge_policy(PQ):
    P, Q = PQ
    from zpml_runtime.projective import GaugePolicy, ProjectiveNormalize

    normalize = ProjectiveNormalize(GaugePolicy.UNIT_L2_PROJECTIVE)
    P_hat, Q_hat = normalize(P, Q)

    norms = torch.hypot(P_hat, Q_hat)[:4]
    assert torch.allclose(norms, torch.ones_like(norms))
