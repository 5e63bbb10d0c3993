"""InferenceConfig validation and exact dtype thresholds."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from zpml_core.arrays import effective_threshold
from zpml_runtime.errors import InvalidConfigError, ThresholdUnderflowError
from zpml_runtime.inference import InferenceConfig


def test_seed_construction_and_defaults():
    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-4)
    assert (cfg.tau_infer, cfg.tau_train) == (1e-6, 1e-4)
    assert cfg.provenance == "stable" and cfg.provenance_representation == "split_masks"
    assert cfg.numerical_hazard_threshold is None
    assert InferenceConfig(tau_infer=0).tau_infer == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau_infer": -1e-6}, r"tau_infer must be finite and >= 0"),
        ({"tau_infer": math.nan}, r"tau_infer must be finite"),
        ({"tau_infer": math.inf}, r"tau_infer must be finite"),
        ({"tau_infer": "1e-6"}, r"tau_infer must be a finite real number"),
        ({"tau_infer": True}, r"tau_infer must be a finite real number"),
        ({"tau_infer": 1e-4, "tau_train": 1e-6}, r"tau_train=1e-06 must be >= tau_infer=0.0001"),
        ({"tau_infer": 0.0, "tau_train": -1.0}, r"tau_train must be finite and >= 0"),
        ({"tau_infer": 0.0, "provenance": "on"}, r"provenance='on' is not one of"),
        (
            {"tau_infer": 0.0, "provenance_representation": "enum"},
            r"provenance_representation='enum'",
        ),
        ({"tau_infer": 0.0, "numerical_hazard_threshold": math.nan}, r"numerical_hazard_threshold"),
    ],
)
def test_invalid_values_are_refused(kwargs, match):
    with pytest.raises(InvalidConfigError, match=match):
        InferenceConfig(**kwargs)


def test_config_is_frozen_and_keyword_only():
    cfg = InferenceConfig(tau_infer=1e-6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.tau_infer = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        InferenceConfig(1e-6)  # type: ignore[misc]


def test_deprecated_provenance_fault_threshold_alias():
    with pytest.warns(DeprecationWarning, match="numerical_hazard_threshold"):
        cfg = InferenceConfig(tau_infer=0.0, provenance_fault_threshold=1e-3)
    assert cfg.numerical_hazard_threshold == 1e-3
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(InvalidConfigError, match="disagree"),
    ):
        InferenceConfig(
            tau_infer=0.0, numerical_hazard_threshold=1e-2, provenance_fault_threshold=1e-3
        )


def test_metadata_round_trip_is_json():
    cfg = InferenceConfig(tau_infer=1e-6, tau_train=1e-4, numerical_hazard_threshold=1e-3)
    meta = json.loads(json.dumps(cfg.to_metadata(), allow_nan=False))
    assert InferenceConfig.from_metadata(meta) == cfg
    with pytest.raises(InvalidConfigError, match="unknown InferenceConfig metadata keys"):
        InferenceConfig.from_metadata({"tau_infer": 0.0, "tau": 1})
    with pytest.raises(InvalidConfigError, match="missing the required key 'tau_infer'"):
        InferenceConfig.from_metadata({})


def test_thresholds_round_up_to_the_dtype():
    cfg = InferenceConfig(tau_infer=1e-7, tau_train=1e-7)
    t, tr = cfg.thresholds_for("float16")
    assert t == tr == 2.0**-23  # smallest float16 >= 1e-7
    assert cfg.thresholds_for("float64") == (1e-7, 1e-7)
    assert InferenceConfig(tau_infer=0.0).thresholds_for("float32") == (0.0, None)  # Q == 0
    assert (
        effective_threshold(1e5, "float16", "tau") == math.inf
    )  # above float16 max: all finite |Q|
    assert effective_threshold(65504.0, "float16", "tau") == 65504.0


def test_threshold_refusal_names_threshold_and_dtype():
    with pytest.raises(ThresholdUnderflowError, match=r"tau_infer=1e-09 .* float16") as info:
        InferenceConfig(tau_infer=1e-9).thresholds_for("float16")
    assert isinstance(info.value, ValueError)
    assert InferenceConfig(tau_infer=1e-9).thresholds_for("float32")[0] > 0
