"""Planar-arm kinematics, the stratified IK data set, bucket metrics, calibration rule and contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from zpml_runtime.errors import InvalidConfigError, ShapeMismatchError
from zpml_runtime.robotics import (
    BUCKET_LABELS,
    DLSSolver,
    IKDatasetConfig,
    PlanarArm,
    PlanarArm3,
    bucket_of,
    generate_ik_dataset,
)
from zpml_runtime.robotics.calibration import choose_thresholds
from zpml_runtime.robotics.contract import (
    ArtifactIntegrityError,
    verify_output_contract,
    write_output_contract,
)
from zpml_runtime.robotics.evaluation import bucket_table, prediction_errors

angles = st.floats(-math.pi, math.pi, allow_nan=False)
lengths = st.floats(0.2, 3.0, allow_nan=False)


@given(
    t1=angles, t2=angles, l1=lengths, l2=lengths, v=st.tuples(st.floats(-1, 1), st.floats(-1, 1))
)
@example(t1=0.0, t2=1.1125369292536007e-308, l1=1.0, l2=1.0, v=(1.0, 0.0))  # label overflows to inf
def test_inverse_velocity_solves_the_jacobian_system(t1, t2, l1, l2, v) -> None:
    arm = PlanarArm(l1, l2)
    x = np.array([[t1, t2, *v]])
    dtheta, singular = arm.inverse_velocity(x)
    J = arm.jacobian(x[:, 0], x[:, 1])[0]
    assert np.isclose(np.linalg.det(J), arm.det_jacobian(x[:, 1])[0], atol=1e-12)
    if singular[0]:
        assert arm.det_jacobian(x[:, 1])[0] == 0 and np.isnan(dtheta).all()
    elif abs(np.linalg.det(J)) > 1e-6:
        assert np.allclose(J @ dtheta[0], v, atol=1e-8 * (1 + np.abs(dtheta).max()))


def test_exact_singularity_is_bottom_not_a_clamped_number() -> None:
    arm = PlanarArm()
    x = np.array([[0.3, 0.0, 0.1, -0.2], [0.3, -0.0, 0.1, -0.2], [0.3, 1e-300, 0.1, 0.2]])
    dtheta, singular = arm.inverse_velocity(x)
    assert singular.tolist() == [True, True, False]
    assert np.isnan(dtheta[:2]).all() and np.isfinite(dtheta[2]).all()


def test_dls_is_finite_at_the_singularity_and_matches_the_inverse_far_from_it() -> None:
    arm = PlanarArm()
    solver = DLSSolver(arm=arm, damping=1e-6)
    far = np.array([[0.4, 1.2, 0.3, -0.1]])
    assert np.allclose(solver(far), arm.inverse_velocity(far)[0], rtol=1e-9)
    sing = np.array([[0.4, 0.0, 0.3, -0.1]])
    assert np.isfinite(DLSSolver(damping=1e-2)(sing)).all()
    with pytest.raises(InvalidConfigError, match="damping"):
        DLSSolver(damping=0.0)


def test_dataset_is_seeded_stratified_and_labels_bottom_exactly() -> None:
    cfg = IKDatasetConfig(n_samples=2000, seed=3)
    a, b = generate_ik_dataset(cfg), generate_ik_dataset(cfg)
    assert np.array_equal(a.inputs, b.inputs)
    counts = np.bincount(a.bucket, minlength=len(BUCKET_LABELS))
    assert counts[0] == 40 and (counts[1:5] >= 90).all() and counts[1:5].sum() == 400  # 2% and 20%
    assert np.array_equal(a.status == 1, a.det == 0)  # bottom label iff det J == 0 exactly
    assert np.isnan(a.targets[a.status == 1]).all() and np.isfinite(a.targets[a.status == 0]).all()
    assert np.array_equal(bucket_of(a.det), a.bucket)
    dls = generate_ik_dataset(IKDatasetConfig(n_samples=500, label_mode="dls"))
    assert (dls.status == 0).all() and np.isfinite(dls.targets).all()


@given(
    t=st.tuples(angles, angles, angles),
    v=st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)),
    links=st.tuples(lengths, lengths, lengths),
)
@example(t=(0.4, 0.0, -1.0), v=(1.0, 0.5, -0.2), links=(1.0, 0.7, 0.4))  # exactly singular
def test_three_link_inverse_solves_the_position_and_orientation_system(t, v, links) -> None:
    arm = PlanarArm3(*links)
    x = np.array([[*t, *v]])
    dtheta, singular = arm.inverse_velocity(x)
    J = arm.jacobian(x[:, :3])[0]
    det = arm.det_jacobian(x[:, 1])[0]
    assert np.isclose(np.linalg.det(J), det, atol=1e-12 * (1 + np.abs(J).max() ** 3))
    if singular[0]:
        assert det == 0 and np.isnan(dtheta).all()
    elif abs(det) > 1e-6:
        assert np.allclose(J @ dtheta[0], v, atol=1e-8 * (1 + np.abs(dtheta).max()))
    # the Jacobian is the derivative of the forward kinematics (central differences)
    h = 1e-6
    cols = [
        (arm.forward_kinematics(np.array(t) + h * e) - arm.forward_kinematics(np.array(t) - h * e))
        / (2 * h)
        for e in np.eye(3)
    ]
    assert np.allclose(np.stack(cols, axis=-1), J, atol=1e-6 * (1 + np.abs(J).max()))


def test_three_link_dataset_dls_and_features() -> None:
    import torch

    from zpml_runtime.robotics.models import ArmFeatures

    arm = PlanarArm3()
    d = generate_ik_dataset(IKDatasetConfig(n_samples=500, seed=4, arm=arm))
    assert d.inputs.shape == (500, 6) and d.targets.shape == (500, 3)
    assert np.array_equal(d.status == 1, d.det == 0) and np.array_equal(
        d.det, arm.det_jacobian(d.inputs[:, 1])
    )
    assert np.isnan(d.targets[d.status == 1]).all() and np.isfinite(d.targets[d.status == 0]).all()
    torch_feats = ArmFeatures(3, 3)(torch.tensor(d.inputs)).numpy()
    assert np.allclose(torch_feats, arm.features(d.inputs), rtol=0, atol=1e-15)
    far = d.inputs[np.abs(d.det) > 0.3][:20]
    assert np.allclose(
        DLSSolver(arm=arm, damping=1e-7)(far), arm.inverse_velocity(far)[0], rtol=1e-8
    )
    assert np.isfinite(DLSSolver(arm=arm)(d.inputs[d.status == 1])).all()
    with pytest.raises(ShapeMismatchError, match=r"\[batch, 6\]"):
        arm.features(d.inputs[:, :4])
    with pytest.raises(InvalidConfigError, match="l3"):
        PlanarArm3(1.0, 1.0, -1.0)


def test_split_is_stratified_and_disjoint() -> None:
    d = generate_ik_dataset(IKDatasetConfig(n_samples=1000, seed=1))
    parts = d.split((0.6, 0.2, 0.2), seed=0)
    assert sum(len(p) for p in parts) == len(d)
    rows = np.concatenate([p.inputs for p in parts])
    assert np.unique(rows, axis=0).shape[0] == len(d)
    for p in parts:
        assert (np.bincount(p.bucket, minlength=6) > 0).all()


def test_bucket_edges() -> None:
    det = np.array([0.0, -0.0, 1e-9, 1e-5, -9.99e-5, 1e-4, 5e-3, 1e-2, -0.7])
    assert bucket_of(det).tolist() == [0, 0, 1, 2, 2, 3, 4, 5, 5]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 5}, "n_samples"),
        ({"label_mode": "clamp"}, "label_mode"),
        ({"exact_singular_share": 0.7, "near_singular_share": 0.5}, "must be <= 1"),
        ({"min_abs_det": 1e-3}, "min_abs_det"),
    ],
)
def test_dataset_config_errors(kwargs, match) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        IKDatasetConfig(**kwargs)


def test_prediction_errors_and_bucket_table() -> None:
    d = generate_ik_dataset(IKDatasetConfig(n_samples=600, seed=2))
    exact = np.where(np.isfinite(d.targets), d.targets, 0.0)
    mae, rel = prediction_errors(exact * (1 + 1e-3), d.targets)
    assert np.allclose(rel[d.status == 0], 1e-3) and np.isnan(rel[d.status == 1]).all()
    bottom = d.singular.copy()
    bottom[np.flatnonzero(~d.singular)[0]] = True  # one false bottom
    rows = bucket_table(d, {"m": exact}, accepted={"m": ~bottom}, bottom_mask=bottom)
    total = rows[-1]
    assert total["bottom_recall"] == 1.0
    assert total["bottom_precision"] == pytest.approx(d.singular.sum() / (d.singular.sum() + 1))
    assert rows[0]["m.n_scored"] == 0  # exact singular rows have no finite target
    named = bucket_table(
        d, {"m": exact}, bottom_masks={"m": d.singular, "none": np.zeros(len(d), bool)}
    )[-1]
    assert named["m.bottom_precision"] == named["m.bottom_recall"] == 1.0
    assert named["none.bottom_precision"] is None and named["none.bottom_recall"] == 0.0
    with pytest.raises(ShapeMismatchError):
        prediction_errors(exact[:, :1], d.targets)


def test_calibration_rule_picks_the_smallest_safe_threshold() -> None:
    q = np.array([0.0, 0.0, 1e-9, 1e-7, 1e-5, 1e-3])
    rel = np.array([np.nan, np.nan, 0.5, 1e-4, 1e-4, 1e-4])  # the 1e-9 row is inaccurate
    bottom = np.array([True, True, False, False, False, False])
    near = np.ones(6, dtype=bool)
    c = choose_thresholds(q, rel, bottom, near, accuracy_tolerance=1e-2, gap_tolerance=1e-5)
    assert c.tau_infer == 3e-9 and c.target_met  # first swept tau above 1e-9
    assert c.tau_train == 3e-3  # every row is "inaccurate" at 1e-5: all must be gap
    assert c.infer_sweep.unsafe_accept_rate[c.infer_sweep.taus.index(c.tau_infer)] == 0.0
    with pytest.raises(InvalidConfigError, match="gap_tolerance"):
        choose_thresholds(q, rel, bottom, near, accuracy_tolerance=1e-3, gap_tolerance=1e-2)


def test_output_contract_detects_changes(tmp_path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"x": 1}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x01")
    write_output_contract(tmp_path, [tmp_path / "a.json", tmp_path / "sub" / "b.bin"])
    assert set(verify_output_contract(tmp_path)) == {"a.json", "sub/b.bin"}
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x02")
    with pytest.raises(ArtifactIntegrityError, match="sub/b.bin: sha256"):
        verify_output_contract(tmp_path)
    (tmp_path / "a.json").unlink()
    with pytest.raises(ArtifactIntegrityError, match="a.json: missing"):
        verify_output_contract(tmp_path)
