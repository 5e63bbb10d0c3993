"""The reference robotics deployment end to end: the default command is a test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zpml_runtime.errors import InvalidConfigError
from zpml_runtime.reference_robotics_deployment import (
    ReferenceRoboticsDeploymentConfig,
    load_reference_robotics_artifacts,
    main,
    run_reference_robotics_deployment,
)
from zpml_runtime.robotics.contract import ArtifactIntegrityError

ROOT = Path(__file__).resolve().parents[3]
ABOVE_1E5 = ("[1e-5,1e-4)", "[1e-4,1e-3)", "[1e-3,1e-2)", "[1e-2,inf)")
ABOVE_1E3 = ("[1e-3,1e-2)", "[1e-2,inf)")
FAST = {"n_samples": 1500, "baseline_iterations": 40}


def _buckets(summary: dict) -> dict[str, dict]:
    return {r["bucket"]: r for r in summary["buckets"]}


def _assert_generic_targets(summary: dict) -> None:
    b = _buckets(summary)
    assert b["all"]["bottom_precision"] == 1.0 and b["all"]["bottom_recall"] == 1.0
    assert b["det=0"]["bottom_rate"] == 1.0
    for k in ABOVE_1E5:  # the bundle's strict output on held-out rows
        assert b[k]["model.median_rel_err"] <= 1e-6, k
        assert b[k]["bottom_rate"] == 0.0, k
    singular = summary["generic_fit"]["singular_set"]
    assert singular["zero_set"] == "{s2 = 0}" and singular["matches_reference"] is True


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rr") / "default"
    # the default command, with a shorter MLP baseline (500 L-BFGS iterations in the slow tests)
    return run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(output_dir=out, baseline_iterations=100)
    )


def test_default_command_deploys_the_generic_head(default_run) -> None:
    s = default_run.summary
    assert s["deployed"] == "generic" and s["arm"] == {"type": "PlanarArm", "l1": 1.0, "l2": 0.6}
    _assert_generic_targets(s)
    b = _buckets(s)
    assert b["all"]["template.bottom_recall"] == 1.0  # the known-physics template, same run
    for k in ABOVE_1E5:
        assert b[k]["template.median_rel_err"] <= 1e-4, k
    for k in ABOVE_1E3:  # the plain MLP (relative loss, same run) is far worse
        assert b[k]["mlp.median_rel_err"] >= 1e3 * b[k]["model.median_rel_err"], k
    assert b["[1e-5,1e-4)"]["dls.median_rel_err"] > 0.5  # DLS is not the inverse near singularities
    assert b["[1e-2,inf)"]["predict_zero.median_rel_err"] == 1.0
    assert s["calibration"]["tau_infer"] == 0.0  # only exact zeros of Q must be rejected


def test_artifacts_reload_and_cross_check(default_run) -> None:
    loaded = load_reference_robotics_artifacts(default_run.output_dir)
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
        "degree_search.svg",
        "loss_curve.svg",
        "strict_inference_events.jsonl",
    ):
        assert name in files, name
    audit = loaded["strict_inference_audit.json"]
    assert audit["bottom_rows"] == audit["true_singular_rows"]  # bottom exactly at det J == 0
    assert audit["route_rows"]["bottom"] == audit["bottom_rows"]  # every bottom row was routed
    summary = loaded["inference_summary.json"]
    assert summary["smoke_test_passed"] is True
    assert default_run.loss_curve_path.name == "degree_search.svg"
    events = [json.loads(line) for line in default_run.events_path.read_text().splitlines()]
    masks = [e for e in events if e.get("event") == "route_masks"]
    assert masks and masks[0]["policy_bottom"] == audit["route_rows"]["bottom"]
    records = [json.loads(line) for line in default_run.training_log_path.read_text().splitlines()]
    trials = [r for r in records if r.get("event") == "degree_candidate"]
    assert [(r["numerator_degree"], r["denominator_degree"]) for r in trials][-1] == (3, 1)
    assert [r for r in records if r.get("event") == "generic_fit"][0]["singular_set"][
        "zero_set"
    ] == "{s2 = 0}"
    epochs = [
        r for r in records if r.get("event") == "epoch"
    ]  # the template compared in the same run
    assert len(epochs) == 2 and epochs[-1]["train_loss"] < epochs[0]["train_loss"]


def test_tampered_artifacts_are_detected(default_run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(default_run.output_dir, copy)
    summary = copy / "inference_summary.json"
    summary.write_text(summary.read_text().replace('"bottom_recall": 1.0', '"bottom_recall": 0.5'))
    with pytest.raises(ArtifactIntegrityError, match="inference_summary.json"):
        load_reference_robotics_artifacts(copy)
    shutil.rmtree(copy)
    shutil.copytree(default_run.output_dir, copy)
    (copy / "bundle" / "smoke_inputs.npy").unlink()
    with pytest.raises(ArtifactIntegrityError, match="smoke_inputs.npy: missing"):
        load_reference_robotics_artifacts(copy)


def test_refuses_to_overwrite_unless_asked(default_run, tmp_path) -> None:
    with pytest.raises(InvalidConfigError, match="not empty; pass overwrite=True"):
        run_reference_robotics_deployment(
            ReferenceRoboticsDeploymentConfig(output_dir=default_run.output_dir)
        )
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(InvalidConfigError, match="not a previous reference run"):
        run_reference_robotics_deployment(
            ReferenceRoboticsDeploymentConfig(output_dir=stranger, overwrite=True)
        )
    assert (stranger / "notes.txt").read_text() == "mine"


def test_three_link_scenario_the_template_cannot_express(tmp_path) -> None:
    a = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(output_dir=tmp_path / "r3", scenario="3link", **FAST)
    )
    s = a.summary
    assert s["arm"]["type"] == "PlanarArm3" and s["template"] is None
    _assert_generic_targets(s)
    assert "template.median_rel_err" not in _buckets(s)["[1e-2,inf)"]
    audit = json.loads(a.strict_inference_audit_path.read_text())
    assert audit["bottom_rows"] == audit["true_singular_rows"]


@pytest.mark.slow  # ~75 s: both alternative variants end to end (the default command stays in the fast suite)
def test_template_variant_and_dls_labels(tmp_path) -> None:
    t = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(
            output_dir=tmp_path / "t", variant="template", epochs=8, **FAST
        )
    )  # a quarter of the rows, four times the epochs: the default command's number of steps
    b = _buckets(t.summary)
    assert b["all"]["bottom_precision"] == 1.0 and b["all"]["bottom_recall"] == 1.0
    assert all(b[k]["model.median_rel_err"] <= 1e-4 for k in ABOVE_1E5)
    assert t.loss_curve_path.name == "loss_curve.svg"
    d = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(output_dir=tmp_path / "d", label_mode="dls", **FAST)
    )
    b = _buckets(d.summary)
    assert b["all"]["n_bottom"] == 0 and b["all"]["template.n_bottom"] == 0
    assert (
        d.summary["generic_fit"]["singular_set"]["matches_reference"] is False
    )  # Q > 0 on the arm
    for k, row in b.items():
        if k == "all":
            continue
        assert row["model.median_rel_err"] <= 1e-6, k  # the generic head fits DLS labels too
        assert row["predict_zero.mae"] >= 1e6 * row["model.mae"], k
    assert b["[1e-2,inf)"]["route_rate.bottom"] == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"label_mode": "clamped"}, "label_mode"),
        ({"variant": "mlp_rational"}, "variant"),
        ({"scenario": "4link"}, "scenario"),
        ({"scenario": "3link", "variant": "template"}, "needs variant 'generic'"),
        ({"device": "tpu"}, "device"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"baseline_iterations": -1}, "baseline_iterations"),
        ({"seed": -2}, "seed"),
    ],
)
def test_config_errors(kwargs, match) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        ReferenceRoboticsDeploymentConfig(**kwargs)


def test_command_line_entry_points(tmp_path, capsys) -> None:
    args = [
        "--n-samples",
        "600",
        "--baseline-iterations",
        "5",
        "--output-dir",
        str(tmp_path / "cli"),
    ]
    assert main([*args, "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "bottom precision=" in out and "{s2 = 0}" in out
    assert main(args) == 2  # not empty
    assert main(["--seed", "-1", "--output-dir", str(tmp_path / "neg")]) == 2
    script = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reference_robotics_deployment.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--n-samples" in script.stdout and "--scenario" in script.stdout


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scenario", ["2link", "3link"])
def test_targets_on_three_seeds(seed, scenario, tmp_path) -> None:
    a = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(output_dir=tmp_path / "r", seed=seed, scenario=scenario)
    )
    _assert_generic_targets(a.summary)
    b = _buckets(a.summary)
    for k in ABOVE_1E3:
        assert b[k]["mlp.median_rel_err"] >= 1e3 * b[k]["model.median_rel_err"], k
    if scenario == "2link":
        assert all(b[k]["template.median_rel_err"] <= 1e-4 for k in ABOVE_1E5)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dls_labels_on_three_seeds(seed, tmp_path) -> None:
    a = run_reference_robotics_deployment(
        ReferenceRoboticsDeploymentConfig(output_dir=tmp_path / "r", seed=seed, label_mode="dls")
    )
    b = _buckets(a.summary)
    for k, r in b.items():
        if k != "all":
            assert r["model.median_rel_err"] <= 1e-6 and r["route_rate.bottom"] == 0.0, k
            assert r["predict_zero.mae"] >= 2 * r["template.mae"], k  # the DLS template, same run
