"""The reference robotics deployment end to end (issue 12): the default command is a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.reference_robotics_deployment import (
    ReferenceRoboticsDeploymentConfig,
    load_reference_robotics_artifacts,
    main,
    run_reference_robotics_deployment,
)
from zpml_runtime.robotics.contract import ArtifactIntegrityError

ROOT = Path(__file__).resolve().parents[2]
NONSINGULAR = ("[1e-5,1e-4)", "[1e-4,1e-3)", "[1e-3,1e-2)", "[1e-2,inf)")


def _buckets(summary: dict) -> dict[str, dict]:
    return {r["bucket"]: r for r in summary["buckets"]}


@pytest.fixture(scope="module")
def inverse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rr") / "inverse"
    artifacts = run_reference_robotics_deployment(ReferenceRoboticsDeploymentConfig(output_dir=out))
    return artifacts


def test_default_command_meets_the_inverse_label_targets(inverse_run) -> None:
    s = inverse_run.summary
    b = _buckets(s)
    assert b["all"]["bottom_precision"] == 1.0 and b["all"]["bottom_recall"] == 1.0
    assert b["det=0"]["bottom_rate"] == 1.0
    for k in NONSINGULAR:
        assert b[k]["model.median_rel_err"] <= 1e-4, k
        assert b[k]["bottom_rate"] == 0.0, k
        # the same-run baselines are far worse: the MLP of the same width and the DLS solver
        assert b[k]["mlp.median_rel_err"] > 100 * b[k]["model.median_rel_err"], k
    assert b["[1e-5,1e-4)"]["dls.median_rel_err"] > 0.5  # DLS is not the inverse near singularities
    assert s["timings_s"]["total_s"] <= 60


def test_artifacts_reload_and_cross_check(inverse_run) -> None:
    loaded = load_reference_robotics_artifacts(inverse_run.output_dir)
    files = set(loaded["files"])
    for name in (
        "inference_summary.json",
        "strict_inference_audit.json",
        "VALIDATION_REPORT.md",
        "VALIDATION_REPORT.summary.json",
        "VALIDATION_REPORT.summary.svg",
        "bundle/model.onnx",
        "bundle/metadata.json",
        "training_log.jsonl",
        "loss_curve.svg",
        "strict_inference_events.jsonl",
    ):
        assert name in files, name
    audit = loaded["strict_inference_audit.json"]
    assert audit["bottom_rows"] == audit["true_singular_rows"]  # bottom exactly at det J == 0
    assert audit["route_rows"]["bottom"] == audit["bottom_rows"]  # every bottom row was routed
    summary = loaded["inference_summary.json"]
    assert summary["smoke_test_passed"] is True
    assert inverse_run.bundle_model_path.is_file()
    # the route mask is in the event log
    events = [json.loads(line) for line in inverse_run.events_path.read_text().splitlines()]
    masks = [e for e in events if e.get("event") == "route_masks"]
    assert masks and masks[0]["policy_bottom"] == audit["route_rows"]["bottom"]
    # training log has one record per epoch and the loss went down
    records = [json.loads(line) for line in inverse_run.training_log_path.read_text().splitlines()]
    epochs = [r for r in records if r.get("event") == "epoch"]
    assert len(epochs) == 2 and epochs[-1]["train_loss"] < epochs[0]["train_loss"]


def test_tampered_artifacts_are_detected(inverse_run, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(inverse_run.output_dir, copy)
    summary = copy / "inference_summary.json"
    summary.write_text(summary.read_text().replace('"bottom_recall": 1.0', '"bottom_recall": 0.5'))
    with pytest.raises(ArtifactIntegrityError, match="inference_summary.json"):
        load_reference_robotics_artifacts(copy)
    shutil.rmtree(copy)
    shutil.copytree(inverse_run.output_dir, copy)
    (copy / "bundle" / "smoke_inputs.npy").unlink()
    with pytest.raises(ArtifactIntegrityError, match="smoke_inputs.npy: missing"):
        load_reference_robotics_artifacts(copy)


def test_refuses_to_overwrite_unless_asked(inverse_run, tmp_path) -> None:
    with pytest.raises(InvalidConfigError, match="not empty; pass overwrite=True"):
        run_reference_robotics_deployment(ReferenceRoboticsDeploymentConfig(output_dir=inverse_run.output_dir))
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(InvalidConfigError, match="not a previous reference run"):
        run_reference_robotics_deployment(
            ReferenceRoboticsDeploymentConfig(output_dir=stranger, overwrite=True)
        )
    assert (stranger / "notes.txt").read_text() == "mine"


def test_dls_labels_beat_predict_zero_and_rarely_route(tmp_path) -> None:
    artifacts = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(output_dir=tmp_path / "dls", label_mode="dls")
    )
    b = _buckets(artifacts.summary)
    for k, row in b.items():
        if k == "all":
            continue
        assert row["predict_zero.mae"] >= 2 * row["model_unmasked.mae"], k
    assert b["[1e-2,inf)"]["route_rate.bottom"] <= 0.01


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"label_mode": "clamped"}, "label_mode"),
        ({"variant": "mlp"}, "variant"),
        ({"device": "tpu"}, "device"),
        ({"learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_config_errors(kwargs, match) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        ReferenceRoboticsDeploymentConfig(**kwargs)


def test_command_line_entry_points(tmp_path, capsys) -> None:
    code = main(["--n-samples", "600", "--output-dir", str(tmp_path / "cli"), "--seed", "1"])
    assert code == 0 and "bottom precision=" in capsys.readouterr().out
    assert main(["--n-samples", "600", "--output-dir", str(tmp_path / "cli")]) == 2  # not empty
    script = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reference_robotics_deployment.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--n-samples" in script.stdout and "--epochs" in script.stdout


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("label_mode", ["inverse", "dls"])
def test_issue_targets_on_three_seeds(seed, label_mode, tmp_path) -> None:
    a = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(output_dir=tmp_path / "r", seed=seed, label_mode=label_mode)
    )
    b = _buckets(a.summary)
    if label_mode == "inverse":
        assert b["all"]["bottom_precision"] == 1.0 and b["all"]["bottom_recall"] == 1.0
        assert all(b[k]["model.median_rel_err"] <= 1e-4 for k in NONSINGULAR)
    else:
        assert all(r["predict_zero.mae"] >= 2 * r["model_unmasked.mae"] for k, r in b.items() if k != "all")
        assert b["[1e-2,inf)"]["route_rate.bottom"] <= 0.01
    assert np.isfinite(a.summary["timings_s"]["total_s"]) and a.summary["timings_s"]["total_s"] <= 60
