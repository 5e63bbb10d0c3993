"""Bundle the calibrated model, then run strict inference through the bundle with a DLS fallback.

``export_validated_bundle``: ``SCMInferenceWrapper`` -> ``export_bundle`` ->
``validate_bundle`` -> ``run_bundle_reference_smoke_test``. ``run_strict``:
onnxruntime inference on the test rows, ``route_to_analytic_solver`` to the DLS
solver on bottom rows (policy ``bottom``) and on bottom-or-gap rows (policy
``bottom_or_gap``), a ``StrictInferenceMonitor`` and a JSONL event log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zpml_runtime.robotics.dataset import BUCKET_LABELS, IKDataset

__all__ = [
    "SMOKE_RTOL",
    "StrictRun",
    "export_validated_bundle",
    "recorded_warnings",
    "row_any",
    "run_strict",
]

#: relative tolerance of the bundle-vs-torch smoke test on ``decoded``: onnxruntime's and torch's
#: ``sin`` may differ by an ulp, and rows near ``theta2 = pi`` amplify that by ``1/|sin theta2|``
SMOKE_RTOL = 1e-6


@contextlib.contextmanager
def recorded_warnings(into: list[str]) -> Iterator[None]:
    """Collect the messages of warnings raised inside (e.g. a traced bundle loads as unverified) into ``into``.

    The run records them in its summary instead of printing them; the set is deduplicated.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in into:
            into.append(text)


def row_any(mask: Any) -> np.ndarray:
    """``[n]``: a row is flagged when any of its outputs is."""
    m = np.asarray(mask, dtype=bool)
    return np.asarray(m.reshape(m.shape[0], -1).any(axis=1))


def export_validated_bundle(
    model: Any, inference_config: Any, test: IKDataset, bundle_dir: Path, bundle_id: str
) -> tuple[Any, Any]:
    """Export ``model`` under ``inference_config`` and check it; returns ``(wrapper, smoke_report)``.

    The smoke inputs are up to 8 test rows of every ``|det J|`` bucket.
    """
    import torch

    from zpml_runtime.bundle import export_bundle, run_bundle_reference_smoke_test, validate_bundle
    from zpml_runtime.inference import SCMInferenceWrapper

    wrapped = SCMInferenceWrapper(model.cpu(), config=inference_config).eval()
    smoke = np.concatenate([test.inputs[test.bucket == b][:8] for b in range(len(BUCKET_LABELS))])
    export_bundle(wrapped, bundle_dir, example_inputs=(torch.tensor(smoke),), bundle_id=bundle_id)
    validate_bundle(bundle_dir)
    report = run_bundle_reference_smoke_test(
        bundle_dir, wrapped, (torch.tensor(smoke),), rtol=SMOKE_RTOL
    )
    return wrapped, report


@dataclasses.dataclass(frozen=True)
class StrictRun:
    """What strict inference through the bundle produced on the test rows."""

    result: Any  # the runtime's result (decoded, bottom_mask, gap_mask, fault_mask, ...)
    decoded: np.ndarray
    bottom_row: np.ndarray
    gap_row: np.ndarray
    routed_bottom: np.ndarray
    route_bottom: np.ndarray
    routed_gap: np.ndarray
    route_gap: np.ndarray
    monitor: Any


def run_strict(
    bundle_dir: Path, test: IKDataset, solver: Any, events_path: Path, bundle_id: str
) -> StrictRun:
    """Strict inference on ``test`` through the bundle runtime, fallback routing and monitoring."""
    from zpml_runtime.bundle import load_onnx_runtime_bundle
    from zpml_runtime.inference import StrictInferenceMonitor, route_to_analytic_solver
    from zpml_runtime.logging import JsonlLogger

    runtime = load_onnx_runtime_bundle(bundle_dir, providers=["CPUExecutionProvider"])
    result = runtime.run(np.ascontiguousarray(test.inputs))
    decoded, bottom_mask, gap_mask = result
    events = JsonlLogger(events_path)
    monitor = StrictInferenceMonitor(
        bundle_id=bundle_id, event_logger=events, acceptance_rate_drift_threshold=0.1
    )
    routed_bottom, route_bottom = route_to_analytic_solver(
        decoded,
        bottom_mask=bottom_mask,
        analytic_solver=solver,
        inputs=test.inputs,
        event_logger=events,
    )
    monitor.update(
        row_any(bottom_mask),
        row_any(gap_mask),
        fault_mask=row_any(result.fault_mask),
        semantic_bottom_mask=row_any(result.semantic_bottom_mask),
        route_mask=np.asarray(route_bottom),
    )
    routed_gap, route_gap = route_to_analytic_solver(
        decoded,
        bottom_mask=bottom_mask,
        gap_mask=gap_mask,
        analytic_solver=solver,
        inputs=test.inputs,
        event_logger=events,
    )
    events.log(
        event="route_masks",
        policy_bottom=np.flatnonzero(route_bottom),
        policy_gap=np.flatnonzero(route_gap),
    )
    return StrictRun(
        result=result,
        decoded=np.asarray(decoded, dtype=np.float64),
        bottom_row=row_any(bottom_mask),
        gap_row=row_any(gap_mask),
        routed_bottom=np.asarray(routed_bottom, dtype=np.float64),
        route_bottom=np.asarray(route_bottom),
        routed_gap=np.asarray(routed_gap, dtype=np.float64),
        route_gap=np.asarray(route_gap),
        monitor=monitor,
    )
