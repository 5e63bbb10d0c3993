"""Typed bundle metadata (``zpml_runtime.bundle.metadata``): parsed once, bad fields named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import zpml_symbolic as zs
from zpml_runtime.bundle import export_bundle, validate_bundle
from zpml_runtime.bundle.errors import BundleMetadataError
from zpml_runtime.bundle.exact import evaluate_point, read_metadata_fru
from zpml_runtime.bundle.format import METADATA_FILE, loads_metadata
from zpml_runtime.bundle.metadata import BundleMetadata, Gauge
from zpml_runtime.inference import InferenceConfig


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    ev = zs.strict_evaluator(
        zs.parse("(a + x)/(x - y) + 1/(1 + 1/x)", parameters=["a"]),
        parameters=["a"],
        init={"a": 0.5},
        config=InferenceConfig(tau_infer=1e-6, tau_train=1e-3),
        validity_taus=1e-4,
        dtype=torch.float64,
    )
    out = tmp_path_factory.mktemp("meta") / "b"
    x = torch.tensor([[0.5, 1.0], [2.0, -1.0]], dtype=torch.float64)
    export_bundle(ev, out, (x,), dtype="float64")
    return out, loads_metadata((out / METADATA_FILE).read_bytes())


def test_parse_reads_every_record_as_written(exported: tuple[Path, dict]) -> None:
    path, raw = exported
    info = BundleMetadata.load(raw)
    assert info.bundle_id == raw["bundle_id"] and info.source == "compiled_fru"
    assert info.input.variables == tuple(raw["input"]["variables"]) == ("x", "y")
    assert info.dtype == "float64" and info.input.name == raw["input"]["name"]
    assert [o.as_dict() for o in info.outputs] == raw["outputs"]
    assert list(info.output_order) == raw["output_order"]
    assert info.effective_thresholds.as_dict() == raw["effective_thresholds"]
    assert info.inference_config.tau_infer == 1e-6 and info.inference_config.tau_train == 1e-3
    assert info.inference_config.config() == InferenceConfig.from_metadata(raw["inference_config"])
    assert list(info.validity_taus) == raw["validity_taus"]
    assert dict(info.parameters) == {"a": 0.5}
    assert (
        info.smoke_inputs.shape == (2, 2) and info.smoke_inputs.file == raw["smoke_inputs"]["file"]
    )
    assert info.emitter is not None and info.emitter.prefix == raw["emitter"]["options"]["prefix"]
    assert info.emitter.opset == raw["emitter"]["options"]["opset"]
    assert info.gauge() is None and not info.is_multi and info.num_outputs == 1
    # the validator hands out the same records
    assert validate_bundle(path, seed=0).info == info


def test_records_are_read_only(exported: tuple[Path, dict]) -> None:
    info = BundleMetadata.parse(exported[1])
    with pytest.raises(AttributeError):
        info.bundle_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.parameters["a"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        info.raw["bundle_id"] = "other"  # type: ignore[index]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["input"].update(variables=["x", 3]), "input.variables"),
        (lambda m: m["smoke_inputs"].update(size="12"), "smoke_inputs.size"),
        (lambda m: m["smoke_inputs"].update(shape=[2, 2.5]), "smoke_inputs.shape[1]"),
        (
            lambda m: m["effective_thresholds"]["t_factors"].append(None),
            "effective_thresholds.t_factors[1]",
        ),
        (lambda m: m["parameters"].update(a="0.5"), "parameters.a"),
        (lambda m: m["inference_config"].update(tau_infer=True), "inference_config.tau_infer"),
        (lambda m: m["outputs"].__setitem__(0, "decoded"), "outputs[0]"),
        (lambda m: m["emitter"].update(format="1"), "emitter.format"),
    ],
)
def test_bad_field_is_named(exported: tuple[Path, dict], edit, field: str) -> None:
    meta = copy.deepcopy(exported[1])
    edit(meta)
    with pytest.raises(BundleMetadataError) as info:
        BundleMetadata.parse(meta)
    assert info.value.field == field
    assert str(info.value).startswith(f"metadata {field}: ")


def test_load_checks_the_json_schema_first(exported: tuple[Path, dict]) -> None:
    meta = copy.deepcopy(exported[1])
    meta["model_sha256"] = "not a hash"
    with pytest.raises(BundleMetadataError) as info:
        BundleMetadata.load(meta)
    assert info.value.field == "model_sha256"
    del meta["model_sha256"]
    assert BundleMetadata.parse(meta, draft=True).model_sha256 == ""
    with pytest.raises(BundleMetadataError, match="model_sha256"):
        BundleMetadata.parse(meta)


def test_gauge_is_parsed_in_one_place() -> None:
    assert Gauge.of({}) is None
    assert Gauge.of({"gauge_exponents": [{"PQ": -133, "V": [2, 0]}]}) == Gauge(-133, (2, 0))
    assert Gauge.of({"gauge": {"PQ": 3}, "gauge_exponents": [{"PQ": 1}]}) == Gauge(3, None)
    assert Gauge(3, None).factor_exponents(2) == (0, 0)
    with pytest.raises(BundleMetadataError) as info:
        Gauge.of({"gauge_exponents": [{"PQ": "x"}]})
    assert info.value.field == "gauge_exponents[0]"


def test_exact_point_matches_the_expression(exported: tuple[Path, dict]) -> None:
    from fractions import Fraction

    fru = read_metadata_fru(BundleMetadata.parse(exported[1]))
    assert fru is not None
    # (a + x)/(x - y) + 1/(1 + 1/x) at x = 3, y = 1, a = 1/2: 7/4 + 3/4 = 5/2
    at = evaluate_point(fru, [Fraction(3), Fraction(1)])
    assert not at.bottom and at.decoded == Fraction(5, 2)
    on_pole = evaluate_point(fru, [Fraction(1), Fraction(1)])
    assert on_pole.bottom and not on_pole.fault and on_pole.bottomed
    faulty = evaluate_point(fru, [float("nan"), Fraction(1)])
    assert faulty.fault and faulty.bottom and faulty.nonfinite == ("x",)
    assert faulty.decoded is None
