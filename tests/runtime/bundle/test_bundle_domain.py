"""Bundles with a declared operating box: ``export_bundle(..., input_box=...)`` records the box
and the certified domain report; ``validate_bundle`` recomputes the report (``.domain``) and
refuses a stored one that differs; the validation report states it."""

from __future__ import annotations

import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp
import torch
from bundle_tamper_helpers import rehash
from rt_models import RationalHead

import zpml_symbolic as zs
from zpml_runtime.bundle import (
    BundleError,
    BundleValidationError,
    export_bundle,
    load_onnx_runtime_bundle,
    validate_bundle,
)
from zpml_runtime.bundle import domain as bundle_domain
from zpml_runtime.bundle.domain import first_difference
from zpml_runtime.bundle.errors import InputBoxError
from zpml_runtime.bundle.format import DOMAIN_REPORT_SCHEMA
from zpml_runtime.bundle.report import write_bundle_report
from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper
from zpml_symbolic.domain import DomainReport
from zpml_symbolic.domain.report import SCHEMA
from zpml_symbolic.flatten.budget import Budget

VELOCITY = "(u + v)/(1 + u*v)"  # relativistic velocity addition with c = 1
SAFE = "u=-9/10:9/10, v=-0.9:0.9"  # |u|, |v| <= 0.9c: 1 + u*v >= 0.19
REACHES = {"u": (-1, 1), "v": ("-1", "1")}  # u = -v = c reachable: 1 + u*v = 0 at u = -1, v = 1
X = torch.tensor([[0.1, 0.2], [-0.5, 0.9], [0.9, -0.9], [0.0, 0.0]])


def _evaluator(
    expr: str = VELOCITY, dtype: torch.dtype = torch.float32, **kw
) -> zs.StrictEvaluator:
    return zs.strict_evaluator(
        zs.parse(expr, parameters=kw.pop("parameters", ())),
        config=InferenceConfig(tau_infer=1e-6, tau_train=1e-3),
        dtype=dtype,
        **kw,
    )


def _export(path: Path, box, expr: str = VELOCITY, dtype=torch.float32, x=X, **kw) -> Path:  # noqa: ANN001
    export_bundle(_evaluator(expr, dtype, **kw), path, example_inputs=(x.to(dtype),), input_box=box)
    return path


def _problems(bundle: Path, **kw) -> str:  # noqa: ANN003
    with pytest.raises(BundleValidationError) as info:
        validate_bundle(bundle, **kw)
    return "\n".join(info.value.problems)


def _meta(bundle: Path) -> dict:
    return json.loads((bundle / "metadata.json").read_text())


@pytest.fixture(scope="module", params=["float32", "float64"])
def safe(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dtype = getattr(torch, request.param)
    return _export(tmp_path_factory.mktemp("safe") / "b", SAFE, dtype=dtype)


@pytest.fixture(scope="module", params=["float32", "float64"])
def reaches(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dtype = getattr(torch, request.param)
    return _export(tmp_path_factory.mktemp("reaches") / "b", REACHES, dtype=dtype)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(bundle, out)
    return out


# --------------------------------------------------------------------------- honest bundles


def test_defined_box_is_recorded_exactly_and_proved(safe: Path) -> None:
    meta = _meta(safe)
    assert meta["input_box"] == {"u": "-9/10:9/10", "v": "-9/10:9/10"}  # 0.9 as text is exact
    assert meta["domain"]["schema"] == SCHEMA == DOMAIN_REPORT_SCHEMA
    validated = validate_bundle(safe)
    rep = validated.domain
    assert isinstance(rep, DomainReport) and rep.defined_everywhere
    assert rep.summary() == "defined on the whole box (min |Q| >= 0.19)"
    assert rep.min_abs_q() == Fraction(19, 100)  # exact: 1 - 0.81 at u = -v = 0.9
    assert rep.box == {
        "u": (Fraction(-9, 10), Fraction(9, 10)),
        "v": (Fraction(-9, 10), Fraction(9, 10)),
    }
    # the same verdicts as an independent analysis of the written formula
    direct = zs.domain_report(VELOCITY, SAFE)
    assert [(f.factor, f.verdict, f.lower_bound) for f in rep.factors] == [
        (f.factor, f.verdict, f.lower_bound) for f in direct.factors
    ]
    # the stored report is the recomputed one (timings aside)
    stored = DomainReport.from_json(meta["domain"])
    assert [f.to_dict() | {"seconds": 0, "work": 0} for f in stored.factors] == [
        f.to_dict() | {"seconds": 0, "work": 0} for f in rep.factors
    ]
    assert load_onnx_runtime_bundle(safe).domain.summary() == rep.summary()


def test_defined_box_in_the_validation_report(safe: Path, tmp_path: Path) -> None:
    bundle = _copy(safe, tmp_path)
    report = write_bundle_report(bundle)
    md = (bundle / "VALIDATION_REPORT.md").read_text()
    assert "## Operating box" in md and "`u=-9/10:9/10,v=-9/10:9/10`" in md
    assert "**defined on the whole box (min |Q| >= 0.19)**" in md
    assert "- [0] u*v + 1 (denominator): nonzero, |f|/1 >= 0.19 on the box" in md
    dom = json.loads((bundle / "VALIDATION_REPORT.summary.json").read_text())["domain"]
    assert dom == report.summary["domain"]
    assert dom["defined_everywhere"] is True and dom["min_abs_q"] == ["19/100"]
    assert dom["summary"] == "defined on the whole box (min |Q| >= 0.19)"
    assert [(f["verdict"], f["lower_bound"]) for f in dom["factors"]] == [("nonzero", "19/100")]
    validate_bundle(bundle)  # the report files are not part of the bundle's hashes


def test_vanishing_box_lists_the_factor_with_an_exact_witness(
    reaches: Path, tmp_path: Path
) -> None:
    rep = validate_bundle(reaches).domain
    assert rep is not None and not rep.defined_everywhere
    (f,) = rep.vanishing
    assert f.factor == "u*v + 1" and f.witness is not None and f.witness.kind == "zero"
    point = f.witness.point
    u, v = sp.symbols("u v")
    assert (1 + u * v).subs({u: sp.Rational(point["u"]), v: sp.Rational(point["v"])}) == 0
    assert all(-1 <= point[k] <= 1 for k in ("u", "v"))
    assert rep.summary().startswith("undefined somewhere on the box: 1 factor(s) vanish (u*v + 1: ")
    assert rep.min_abs_q() is None
    bundle = _copy(reaches, tmp_path)
    write_bundle_report(bundle)
    md = (bundle / "VALIDATION_REPORT.md").read_text()
    assert "**undefined somewhere on the box: 1 factor(s) vanish" in md
    assert f"VANISHES, {f.witness.describe()}" in md
    dom = json.loads((bundle / "VALIDATION_REPORT.summary.json").read_text())["domain"]
    assert dom["defined_everywhere"] is False and dom["min_abs_q"] == [None]
    assert dom["factors"][0]["witness"] == f.witness.describe()


def test_validity_factors_parameters_and_a_fixed_variable(tmp_path: Path) -> None:
    # 1/(1 + 1/x) + a/(x - y): Q = x + 1 and x - y, validity factor x; a is a parameter;
    # y is fixed to 1/3 (a degenerate interval)
    expr = "1/(1 + 1/x) + a/(x - y)"
    x = torch.tensor([[1.5, 0.25], [2.0, 0.5]])
    bundle = _export(tmp_path / "b", "x=1:2, y=1/3", expr, x=x, parameters=["a"], init={"a": 0.5})
    meta = _meta(bundle)
    assert meta["input_box"] == {"x": "1:2", "y": "1/3"}
    rep = validate_bundle(bundle).domain
    assert rep.defined_everywhere and rep.parameters == {"a": (Fraction(1, 2), Fraction(1, 2))}
    roles = sorted((f.factor, f.role, f.canonical_lower_bound) for f in rep.factors)
    assert roles == [
        ("x", "validity", Fraction(1)),
        ("x + 1", "denominator", Fraction(2)),
        ("x - y", "denominator", Fraction(2, 3)),  # y = 1/3 fixed: x - y >= 2/3
    ]
    assert rep.min_abs_q() == Fraction(4, 3)
    assert rep.summary() == (
        "defined on the whole box (min |Q| >= 1.33, every validity factor nonzero)"
    )


def test_several_outputs_state_each_denominator(tmp_path: Path) -> None:
    ev = zs.strict_evaluator(["1/(x - y)", "x/(1 + x*y)"], config=InferenceConfig(tau_infer=0.0))
    x = torch.tensor([[0.5, 2.5], [1.0, 2.0]])
    export_bundle(ev, tmp_path / "b", example_inputs=(x,), input_box="x=0:1,y=2:3")
    rep = validate_bundle(tmp_path / "b").domain
    assert rep.summary() == "defined on the whole box (min |Q_0| >= 1; min |Q_1| >= 1)"
    bad = tmp_path / "c"
    export_bundle(ev, bad, example_inputs=(x,), input_box="x=0:2,y=2:3")
    rep = validate_bundle(bad).domain
    assert [(f.output, f.verdict) for f in rep.factors] == [(0, "vanishes"), (1, "nonzero")]


def test_unknown_verdicts_are_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a tiny margin along a whole curve needs more work than this budget allows
    monkeypatch.setattr(bundle_domain, "DOMAIN_BUDGET", Budget(max_work=3_000, max_seconds=120.0))
    x = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    bundle = _export(
        tmp_path / "b", "x=0:1,y=0:1", "1/((x - y)**2 + 10**-12 + x*y**3)", torch.float64, x
    )
    rep = validate_bundle(bundle).domain
    assert [f.verdict for f in rep.factors] == ["unknown"]
    assert rep.summary().startswith("not decided: 1 factor(s) unknown (")
    write_bundle_report(bundle)
    md = (bundle / "VALIDATION_REPORT.md").read_text()
    assert "**not decided: 1 factor(s) unknown" in md and ": unknown (budget max_work spent" in md
    # where the budget ran out may vary between runs (the undecided boxes of an unknown
    # factor): accepted, and the recomputed report is the one used
    stored = _meta(bundle)["domain"]
    rehash(bundle, lambda m: m["domain"]["factors"][0]["cover"].pop())
    again = validate_bundle(bundle).domain.factors[0]
    assert again.verdict == "unknown" and again.cover
    # the verdict may not be edited
    rehash(bundle, lambda m: m["domain"]["factors"][0].__setitem__("verdict", "nonzero"))
    assert "metadata domain.factors[0].verdict: stored 'nonzero', recomputed 'unknown'" in (
        _problems(bundle)
    )
    # nor the summary (it must be the one of the stored factors)
    rehash(bundle, lambda m: m.__setitem__("domain", stored | {"summary": "defined"}))
    assert "the stored domain report is not the one recomputed" in _problems(bundle)


def test_bundles_without_a_box_are_unchanged(tmp_path: Path) -> None:
    export_bundle(_evaluator(), tmp_path / "b", example_inputs=(X,))
    meta = _meta(tmp_path / "b")
    assert "input_box" not in meta and "domain" not in meta
    assert validate_bundle(tmp_path / "b").domain is None
    report = write_bundle_report(tmp_path / "b")
    assert "domain" not in report.summary
    assert "Operating box" not in (tmp_path / "b" / "VALIDATION_REPORT.md").read_text()


# --------------------------------------------------------------------------- export errors


@pytest.mark.parametrize(
    ("box", "field", "message"),
    [
        ("u=0:1, w=0:1", "w", "input_box names 'w', which is not a variable of the bundle"),
        ({"u": (0, 1)}, "v", "input_box gives no range for input variable(s) ['v']"),
        ("u=0:1, v=1:0", "v", "box interval for 'v' is empty: lo 1 > hi 0"),
        ("u=0:1, v=zero", "v", "box bound for 'v' is not a number: 'zero'"),
        ("u=0:1 v=2", "u", "box bound for 'u' is not a number: '1 v=2'"),
        ({"u": (0, 1), "v": (0, float("inf"))}, "v", "box bound for 'v' must be finite"),
    ],
)
def test_bad_boxes_are_typed_errors_naming_the_variable(
    tmp_path: Path, box: object, field: str, message: str
) -> None:
    with pytest.raises(InputBoxError, match=re.escape(message)) as info:
        export_bundle(_evaluator(), tmp_path / "b", example_inputs=(X,), input_box=box)
    assert info.value.field == field
    assert isinstance(info.value, BundleError) and isinstance(info.value, zs.InvalidArgumentError)
    assert not (tmp_path / "b").exists()


def test_a_parameter_is_not_an_input(tmp_path: Path) -> None:
    ev = _evaluator("x/(x - a)", parameters=["a"], init={"a": 0.5})
    with pytest.raises(
        InputBoxError, match=r"names 'a', which is a parameter \(learnable coefficient\)"
    ):
        export_bundle(ev, tmp_path / "b", example_inputs=(X[:, :1],), input_box="x=0:1, a=0:1")


def test_traced_models_refuse_an_operating_box(tmp_path: Path) -> None:
    wrapped = SCMInferenceWrapper(RationalHead(), config=InferenceConfig(tau_infer=1e-3)).eval()
    with pytest.raises(InputBoxError, match="input_box needs a compiled model") as info:
        export_bundle(
            wrapped, tmp_path / "t", example_inputs=(torch.randn(4, 2),), input_box="x0=0:1,x1=0:1"
        )
    assert info.value.field == "input_box" and not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda d: d["factors"][0].__setitem__("lower_bound", "1/2"),
            "domain.factors[0].lower_bound",
        ),
        (lambda d: d.__setitem__("summary", "defined on the whole box"), "domain.summary"),
        (lambda d: d["factors"][0].__setitem__("verdict", "vanishes"), "domain.factors[0].verdict"),
        (lambda d: d["box"]["u"].__setitem__(0, "-1/2"), "domain.box.u[0]"),
        (lambda d: d["factors"].pop(), "domain.factors has 0 entries"),
    ],
)
def test_a_tampered_stored_report_is_refused_naming_the_field(
    safe: Path,
    tmp_path: Path,
    edit,
    field: str,  # noqa: ANN001
) -> None:
    bundle = _copy(safe, tmp_path)
    rehash(bundle, lambda m: edit(m["domain"]))
    problems = _problems(bundle)
    assert f"metadata {field}" in problems
    assert "the stored domain report is not the one recomputed" in problems


def test_a_stored_vanishing_witness_cannot_be_moved_or_hidden(
    reaches: Path, tmp_path: Path
) -> None:
    bundle = _copy(reaches, tmp_path)
    rehash(bundle, lambda m: m["domain"]["factors"][0]["witness"]["point"].__setitem__("u", "-1/2"))
    assert (
        "metadata domain.factors[0].witness.point.u: stored '-1/2', recomputed '-1'"
        in _problems(bundle)
    )
    # claiming "defined" for a box where the expression vanishes
    bundle = _copy(reaches, tmp_path / "again")

    def hide(m: dict) -> None:
        m["domain"] = _meta(_safe_like(tmp_path))["domain"]

    rehash(bundle, hide)
    problems = _problems(bundle)
    assert "metadata domain.box.u[0]: stored '-9/10', recomputed '-1'" in problems


def _safe_like(tmp_path: Path) -> Path:
    return _export(tmp_path / "safe_like", SAFE)


def test_widening_the_box_without_the_report_is_refused(safe: Path, tmp_path: Path) -> None:
    bundle = _copy(safe, tmp_path)
    rehash(bundle, lambda m: m["input_box"].__setitem__("u", "-1:1"))
    assert "metadata domain.box.u[0]: stored '-9/10', recomputed '-1'" in _problems(bundle)


def test_box_and_report_come_together(safe: Path, tmp_path: Path) -> None:
    bundle = _copy(safe, tmp_path)
    rehash(bundle, lambda m: m.pop("domain"))
    assert "'domain' is a dependency of 'input_box'" in _problems(bundle)
    bundle = _copy(safe, tmp_path / "b2")
    rehash(bundle, lambda m: m.pop("input_box"))
    assert "'input_box' is a dependency of 'domain'" in _problems(bundle)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1:0", "metadata input_box.u: box interval for 'u' is empty: lo 1 > hi 0"),
        ("0:one", "metadata input_box.u: box bound for 'u' is not a number"),
    ],
)
def test_a_malformed_recorded_box_is_refused(
    safe: Path, tmp_path: Path, value: str, message: str
) -> None:
    bundle = _copy(safe, tmp_path)
    rehash(bundle, lambda m: m["input_box"].__setitem__("u", value))
    assert message in _problems(bundle)


def test_a_recorded_box_naming_another_variable_is_refused(safe: Path, tmp_path: Path) -> None:
    bundle = _copy(safe, tmp_path)
    rehash(bundle, lambda m: m["input_box"].__setitem__("w", "0:1"))
    assert "input_box names 'w', which is not a variable of the bundle" in _problems(bundle)


def test_a_box_added_to_a_traced_bundle_is_refused(tmp_path: Path) -> None:
    wrapped = SCMInferenceWrapper(RationalHead(), config=InferenceConfig(tau_infer=1e-3)).eval()
    export_bundle(wrapped, tmp_path / "t", example_inputs=(torch.randn(4, 2),))
    donor = _meta(_export(tmp_path / "d", SAFE))
    rehash(tmp_path / "t", lambda m: m.update(input_box=donor["input_box"], domain=donor["domain"]))
    assert "input_box/domain on a traced bundle" in _problems(tmp_path / "t")


def test_the_checksum_and_the_signature_cover_the_box(tmp_path: Path) -> None:
    key = b"k" * 32
    bundle = tmp_path / "s"
    export_bundle(_evaluator(), bundle, example_inputs=(X,), input_box=SAFE, signing_key=key)
    assert validate_bundle(bundle, signing_key=key).domain.defined_everywhere
    data = (bundle / "metadata.json").read_text().replace('"u": "-9/10:9/10"', '"u": "-1:1"')
    (bundle / "metadata.json").write_text(data)
    assert "metadata.json does not match metadata.sha256" in _problems(bundle, signing_key=key)
    rehash(bundle)  # the unkeyed checksum can be recomputed; the signature cannot
    assert "metadata.sig does not match metadata.json" in _problems(bundle, signing_key=key)


def test_first_difference_names_paths() -> None:
    assert first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) is None
    assert first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == (
        "domain.a[1].b: stored 2, recomputed 3"
    )
    assert first_difference({"a": 1}, {"a": 1, "c": 2}) == "domain.c is missing (recomputed 2)"
    assert first_difference({"a": 1, "z": 0}, {"a": 1}) == (
        "domain.z is not a field of the report (stored 0)"
    )
    assert first_difference({"a": True}, {"a": 1}) == "domain.a: stored true, recomputed 1"


def test_another_zpml_version_uses_the_recomputed_report(safe: Path, tmp_path: Path) -> None:
    """A bundle from another compiler version is refused unless allow_unverified; then its
    stored report (another analysis may differ) is not compared, the recomputed one is used."""
    bundle = _copy(safe, tmp_path)

    def edit(m: dict) -> None:
        m["emitter"]["version"] = "0.0.1-other"
        m["domain"]["factors"][0]["lower_bound"] = "1/2"

    rehash(bundle, edit)
    assert "the bundle was written by zpml '0.0.1-other'" in _problems(bundle)
    with pytest.warns(UserWarning):
        runtime = load_onnx_runtime_bundle(bundle, allow_unverified=True)
    assert not runtime.verified
    assert runtime.domain.factors[0].lower_bound == Fraction(19, 100)  # recomputed, not 1/2
