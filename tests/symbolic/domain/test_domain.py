"""``domain_report``: the worked physics and robotics cases, hard zeros, inputs, JSON, errors.

Every report is rechecked exactly by :func:`test_domain_properties.check_report`
(witnesses re-evaluated with plain Fractions, ``nonzero`` bounds on a dense
grid), and witnesses of bottom are cross-checked with the compiler's own exact
evaluation (``FlattenedFRU.evaluate`` gives ``BOTTOM`` there).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
import sympy as sp
from test_domain_properties import check_report, factor_value

import zpml_symbolic as zs
from zpml_symbolic.domain import BoxError, DomainReport, format_box, parse_box

C = 299_792_458  # speed of light, m/s (exact)
NINE_TENTHS = Fraction(9, 10)


def verdicts(report: DomainReport) -> dict[str, str]:
    return {f.factor: f.verdict for f in report.factors}


def assert_bottom_at_witnesses(expr: str, report: DomainReport, **flatten_kwargs: object) -> None:
    """The compiler's exact evaluator is bottom at every exact-zero witness."""
    fru = zs.flatten(expr, **flatten_kwargs)  # type: ignore[arg-type]
    for f in report.vanishing:
        w = f.witness
        if w is not None and w.kind == "zero":
            point = {s.name: w.point[s.name] for s in fru.generators}
            assert fru.evaluate(point) is zs.BOTTOM


# ------------------------------------------------------------ physics cases
def test_relativistic_velocity_addition_below_nine_tenths_c() -> None:
    box = {
        "u": (-NINE_TENTHS * C, NINE_TENTHS * C),
        "v": (-NINE_TENTHS * C, NINE_TENTHS * C),
        "c": C,
    }
    report = zs.domain_report("(u + v)/(1 + u*v/c**2)", box)
    check_report(report, grid=5)
    assert report.defined_everywhere
    assert verdicts(report) == {"c**2 + u*v": "nonzero", "c": "nonzero"}
    q = report.factors[0]
    true_min = Fraction(19, 100) * C**2  # at u = -v = 0.9c; the scale of c**2 + u*v is 1
    assert q.scale == 1 and q.lower_bound <= true_min <= 2 * q.lower_bound
    assert report.summary().startswith("defined on the whole box (min |Q| >= ")


def test_relativistic_velocity_addition_with_u_equal_minus_v_equal_c() -> None:
    box = {"u": (-C, C), "v": (-C, C), "c": C}
    report = zs.domain_report("(u + v)/(1 + u*v/c**2)", box)
    check_report(report, grid=5)
    assert not report.defined_everywhere
    assert verdicts(report) == {"c**2 + u*v": "vanishes", "c": "nonzero"}
    w = report.factors[0].witness
    assert w.kind == "zero" and w.point["u"] * w.point["v"] == -(C**2)
    assert_bottom_at_witnesses("(u + v)/(1 + u*v/c**2)", report)
    assert "vanish" in report.summary()


def test_thin_lens_object_beyond_focal_length() -> None:
    """Image distance ``1/(1/f - 1/d)``: defined while the object stays beyond the focus."""
    report = zs.domain_report(
        "1/(1/f - 1/d)", {"f": (Fraction(1, 10), Fraction(1, 2)), "d": (1, 10)}
    )
    check_report(report)
    assert report.defined_everywhere
    assert verdicts(report) == {"d - f": "nonzero", "f": "nonzero", "d": "nonzero"}
    assert report.factors[0].lower_bound == Fraction(1, 2)  # exact: d - f >= 1 - 1/2
    assert report.min_abs_q() == Fraction(1, 2)


def test_thin_lens_object_at_focal_length() -> None:
    report = zs.domain_report(
        "1/(1/f - 1/d)", {"f": (Fraction(1, 10), Fraction(1, 2)), "d": (Fraction(1, 4), 10)}
    )
    check_report(report)
    assert verdicts(report)["d - f"] == "vanishes"
    lens = report.factors[0]
    assert lens.witness.kind in ("zero", "sign_change")
    assert lens.provenance and lens.provenance[0]["source"] == "1/(1/f - 1/d)"


IK = pytest.importorskip("zpml_runtime.robotics.arm").IK_TEMPLATES


def _ik_box(s2: tuple[Fraction, Fraction]) -> dict[str, tuple[Fraction, Fraction]]:
    unit = (Fraction(-1), Fraction(1))
    return {"c1": unit, "s1": unit, "c2": unit, "s2": s2, "dx": unit, "dy": unit}


def test_two_link_inverse_jacobian_away_from_the_singular_set() -> None:
    """``theta2`` in ``[asin(1/10), pi - asin(1/10)]``: ``s2 >= 1/10``, so ``l1*l2*s2 != 0``."""
    report = zs.domain_report(
        list(IK),
        _ik_box((Fraction(1, 10), Fraction(1))),
        parameters={"l1": 1, "l2": Fraction(3, 5)},
    )
    check_report(report, grid=3)
    assert report.defined_everywhere
    assert {f.factor for f in report.factors} == {
        "s2",
        "l1",
        "l2",
    }  # Q = l1*l2*s2 (link lengths are parameters)
    assert all(f.lower_bound == Fraction(1, 10) for f in report.factors if f.factor == "s2")
    assert {f.output for f in report.factors} == {0, 1}


def test_two_link_inverse_jacobian_with_the_singular_set_inside() -> None:
    report = zs.domain_report(
        list(IK),
        _ik_box((Fraction(-1, 2), Fraction(1, 2))),
        parameters={"l1": 1, "l2": Fraction(3, 5)},
    )
    check_report(report, grid=3)
    assert {f.factor: f.verdict for f in report.factors} == {
        "s2": "vanishes",
        "l1": "nonzero",
        "l2": "nonzero",
    }
    assert all(f.witness.point["s2"] == 0 for f in report.vanishing)
    assert_bottom_at_witnesses(IK[0], report, parameters=["l1", "l2"])


def test_two_link_inverse_jacobian_from_its_entries() -> None:
    """``1/det J`` from the Jacobian entries: ``det J = l1*l2*s2*(c1**2 + s1**2)``."""
    det = "((-l1*s1 - l2*(s1*c2 + c1*s2))*(l2*(c1*c2 - s1*s2)) - (-l2*(s1*c2 + c1*s2))*(l1*c1 + l2*(c1*c2 - s1*s2)))"
    params = {"l1": 1, "l2": Fraction(3, 5)}
    away = {"c1": (Fraction(1, 2), 1), "s1": (-1, 1), "c2": (-1, 1), "s2": (Fraction(1, 10), 1)}
    report = zs.domain_report(f"1/{det}", away, parameters=params)
    check_report(report, grid=4)
    assert report.defined_everywhere
    inside = dict(away, s2=(Fraction(-1, 10), Fraction(1, 10)))
    assert verdicts(zs.domain_report(f"1/{det}", inside, parameters=params))["s2"] == "vanishes"
    everywhere = dict(away, c1=(-1, 1))  # c1 = s1 = 0 is in this box (not on the arm)
    assert (
        verdicts(zs.domain_report(f"1/{det}", everywhere, parameters=params))["c1**2 + s1**2"]
        == "vanishes"
    )


def test_trained_inverse_kinematics_model_uses_its_coefficients() -> None:
    models = pytest.importorskip("zpml_runtime.robotics.models")
    model = models.IKTemplateModel(kind="inverse")
    report = zs.domain_report(model, _ik_box((Fraction(1, 10), Fraction(1))))
    assert report.defined_everywhere
    coeffs = model.rational.coefficient_values()
    assert report.parameters["l1"] == (Fraction(coeffs["l1"]),) * 2


# ---------------------------------------------------------------- issue cases
def test_tiny_margin_lower_bound_within_two_of_the_true_minimum() -> None:
    report = zs.domain_report("1/(x**2 + y**2 + 10**-12)", {"x": (-1, 1), "y": (-1, 1)})
    check_report(report)
    (f,) = report.factors
    assert f.verdict == "nonzero"
    true_min = Fraction(1, 10**12)
    assert true_min / 2 <= f.lower_bound <= true_min <= f.min_found


def test_irrational_zero_on_an_interval() -> None:
    report = zs.domain_report("1/(x**2 - 2)", {"x": (0, 2)})
    check_report(report)
    (f,) = report.factors
    assert f.verdict == "vanishes" and f.witness.kind == "sign_change"
    lo, hi = f.witness.box["x"]
    assert lo**2 < 2 < hi**2 and hi - lo <= report.resolution * 2
    assert zs.domain_report("1/(x**2 - 2)", {"x": (0, Fraction(7, 5))}).defined_everywhere


def test_hyperbola_inside_and_outside_the_square() -> None:
    box = {"x": (0, 2), "y": (0, 2)}
    inside = zs.domain_report("1/(x*y - 2)", box)
    outside = zs.domain_report("1/(x*y - 5)", box)
    check_report(inside)
    check_report(outside)
    assert inside.factors[0].verdict == "vanishes"
    assert (
        outside.defined_everywhere
        and outside.factors[0].lower_bound * outside.factors[0].scale == 1
    )
    curve = inside.factors[0]
    assert curve.cover and curve.cover_complete
    for t in (Fraction(1), Fraction(5, 4), Fraction(3, 2), Fraction(2)):  # exact points on x*y = 2
        assert any(
            b["x"][0] <= t <= b["x"][1] and b["y"][0] <= 2 / t <= b["y"][1] for b in curve.cover
        )


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (
            {"x": (Fraction(1, 4), 2), "z": (Fraction(1, 2), 2)},
            {"x*z + 1": "nonzero", "z": "nonzero", "x": "nonzero"},
        ),
        (
            {"x": (-2, Fraction(-1, 4)), "z": (Fraction(1, 2), 2)},
            {"x*z + 1": "vanishes", "z": "nonzero", "x": "nonzero"},
        ),
        (
            {"x": (Fraction(-1, 2), Fraction(1, 2)), "z": (Fraction(1, 2), 1)},
            {"x*z + 1": "nonzero", "z": "nonzero", "x": "vanishes"},
        ),
    ],
)
def test_nested_division_boxes(
    box: dict[str, tuple[Fraction, Fraction]], expected: dict[str, str]
) -> None:
    """``1/(1 + 1/(x*z))``: ``x*z + 1`` is in ``Q``, ``x`` and ``z`` are validity factors."""
    report = zs.domain_report("1/(1 + 1/(x*z))", box)
    check_report(report)
    assert verdicts(report) == expected
    roles = {f.factor: f.role for f in report.factors}
    assert roles == {"x*z + 1": "denominator", "z": "validity", "x": "validity"}
    assert_bottom_at_witnesses("1/(1 + 1/(x*z))", report)


# ------------------------------------------------------------ hard zeros
@pytest.mark.parametrize(
    ("expr", "box", "point"),
    [
        (
            "1/((3*x - 1)**2 + (3*y - 1)**2)",
            {"x": (-1, 2), "y": (-1, 2)},
            {"x": Fraction(1, 3), "y": Fraction(1, 3)},
        ),
        (
            "1/((3*x - 1)**2 + (3*y - 1)**2)",
            {"x": (Fraction(1, 3), 1), "y": (Fraction(1, 3), 1)},
            {"x": Fraction(1, 3), "y": Fraction(1, 3)},
        ),
        ("1/(y + x**2)", {"x": (-1, 1), "y": (0, 1)}, {"x": Fraction(0), "y": Fraction(0)}),
        ("1/(x - 1)**7", {"x": (0, 1)}, {"x": Fraction(1)}),
        ("1/(x*y - 1)**4", {"x": (Fraction(1, 2), 2), "y": (Fraction(1, 2), 2)}, None),
        ("1/(x**2 + y**2*(z + 2))", {"x": (-1, 1), "y": (-1, 1), "z": (0, 1)}, None),
        (
            "1/((7*x - 3)**2 + (11*y - 5)**2 + (x - y + 2/77)**2)",
            {"x": (0, 1), "y": (0, 1)},
            {"x": Fraction(3, 7), "y": Fraction(5, 11)},
        ),
    ],
)
def test_zeros_without_sign_change_are_found(expr: str, box: dict, point: dict | None) -> None:
    report = zs.domain_report(expr, box)
    check_report(report)
    assert not report.defined_everywhere and not report.unknown
    if point is not None:
        assert any(factor_value(f, point) == 0 and f.verdict == "vanishes" for f in report.factors)


def test_irrational_zero_without_sign_change_gets_an_isolating_box() -> None:
    report = zs.domain_report("1/((x**2 - 2)**2 + y**2)", {"x": (0, 2), "y": (-1, 1)})
    check_report(report)
    (f,) = report.factors
    assert f.verdict == "vanishes" and f.witness.kind == "isolating_box"
    (xlo, xhi), (ylo, yhi) = f.witness.box["x"], f.witness.box["y"]
    assert xlo**2 < 2 < xhi**2 and ylo <= 0 <= yhi and xhi - xlo < Fraction(1, 100)
    three = zs.domain_report(
        "1/((x**2 - 2)**2 + y**2 + z**2)", {"x": (0, 2), "y": (-1, 1), "z": (-1, 1)}
    )
    assert three.factors[0].verdict == "vanishes"
    near = zs.domain_report("1/((x**2 - 2)**2 + y**2)", {"x": (0, Fraction(7, 5)), "y": (-1, 1)})
    check_report(near)
    (g,) = near.factors
    true_min = Fraction(1, 625)  # (49/25 - 2)**2 at x = 7/5, y = 0; scale is 4 (the -4*x**2 term)
    assert (
        g.verdict == "nonzero"
        and g.lower_bound * g.scale <= true_min <= 2 * g.lower_bound * g.scale
    )


def test_circle_cover_contains_every_rational_point_of_the_circle() -> None:
    report = zs.domain_report("1/(x**2 + y**2 - 1)", {"x": (-2, 2), "y": (-2, 2)})
    (f,) = report.factors
    assert f.verdict == "vanishes" and f.cover_complete
    assert all(
        max(b["x"][1] - b["x"][0], b["y"][1] - b["y"][0]) <= 4 * report.resolution for b in f.cover
    )
    for t in [Fraction(k, 7) for k in range(-20, 21)]:
        x, y = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)
        assert any(b["x"][0] <= x <= b["x"][1] and b["y"][0] <= y <= b["y"][1] for b in f.cover), (
            x,
            y,
        )


def test_budget_exhaustion_is_unknown_with_undecided_boxes() -> None:
    report = zs.domain_report(
        "1/((x - y)**4 + 10**-12)", {"x": (0, 1), "y": (0, 1)}, budget=zs.Budget(max_work=20_000)
    )
    (f,) = report.factors
    assert f.verdict == "unknown" and f.undecided and f.reason.startswith("budget")
    assert not report.defined_everywhere and report.unknown_fraction == 1.0
    assert "not decided" in report.summary()
    for t in (Fraction(0), Fraction(1, 3), Fraction(1)):  # the valley x == y stays undecided
        assert any(b["x"][0] <= t <= b["x"][1] and b["y"][0] <= t <= b["y"][1] for b in f.undecided)


# --------------------------------------------------------------- inputs
def test_inputs_text_sympy_fru_and_sequences_agree() -> None:
    x, y = sp.symbols("x y")
    box = {"x": (0, 2), "y": (0, 2)}
    a = zs.domain_report("1/(x*y - 2)", box)
    b = zs.domain_report(1 / (x * y - 2), box)
    c = zs.domain_report(zs.flatten("1/(x*y - 2)"), box)
    assert verdicts(a) == verdicts(b) == verdicts(c)
    multi = zs.domain_report(["1/(x*y - 2)", "1/(x*y - 5)"], box)
    assert [(f.output, f.verdict) for f in multi.factors] == [(0, "vanishes"), (1, "nonzero")]
    assert multi.min_abs_q(1) == 1 and multi.min_abs_q(0) is None


def test_parameters_values_and_ranges() -> None:
    expr = "(a*x + 1)/(b*x - 2)"
    fixed = zs.domain_report(expr, {"x": (0, 1)}, parameters={"a": 1, "b": 1})
    assert fixed.defined_everywhere and fixed.parameters["b"] == (1, 1)
    ranged = zs.domain_report(expr, {"x": (0, 1)}, parameters={"a": 1, "b": (1, 3)})
    assert ranged.factors[0].verdict == "vanishes"
    w = ranged.factors[0].witness
    point = w.point or w.negative
    assert set(point) == {"x", "a", "b"}
    with pytest.raises(zs.InvalidArgumentError, match="'b'"):
        zs.domain_report(expr, {"x": (0, 1)}, parameters={"a": 1})


def test_compiled_modules_use_their_coefficients() -> None:
    pytest.importorskip("torch")
    module = zs.to_torch("(a*x + 1)/(b*x - 2)", parameters=["a", "b"], init={"a": 1.0, "b": 0.5})
    report = zs.domain_report(module, {"x": (0, 3)})
    assert report.parameters["b"] == (Fraction(1, 2), Fraction(1, 2))
    assert report.defined_everywhere  # x/2 - 2 < 0 on [0, 3]
    evaluator = zs.numpy_evaluator("1/(x - 1)")
    assert zs.domain_report(evaluator, {"x": (0, 2)}).factors[0].verdict == "vanishes"


def test_constants_and_degenerate_boxes() -> None:
    report = zs.domain_report("1/(x - pi)", {"x": (3, 4)}, constants={"pi": math.pi})
    assert report.factors[0].verdict == "vanishes"
    assert zs.domain_report("1/(x - 2)", {"x": 2}).factors[0].witness.point == {"x": 2}
    fixed = zs.domain_report("1/(x - 2)", {"x": 3})
    assert fixed.defined_everywhere and fixed.factors[0].canonical_lower_bound == 1


def test_always_bottom() -> None:
    report = zs.domain_report("1/(x - x)", {"x": (0, 1)})
    assert report.always_bottom and not report.defined_everywhere
    assert report.summary().startswith("undefined everywhere")
    assert report.factors[0].witness.kind == "identically_zero"


# ------------------------------------------------------------ JSON, text, plot
def test_json_round_trip_is_exact() -> None:
    report = zs.domain_report(
        "1/(1 + 1/(x*z)) + 1/(x**2 + z**2 + 10**-30)",
        {"x": (-2, Fraction(1, 3)), "z": (Fraction(1, 2), 2)},
    )
    text = report.to_json()
    back = DomainReport.from_json(text)
    assert back == report
    assert DomainReport.from_json(json.loads(text)) == report
    assert json.loads(text)["schema"] == "zpml.domain_report/1"
    with pytest.raises(zs.InvalidArgumentError, match="schema"):
        DomainReport.from_json("{}")


def test_text_output_names_every_factor() -> None:
    report = zs.domain_report("1/(1 + 1/(x*z))", {"x": (-2, 2), "z": (Fraction(1, 2), 2)})
    text = str(report)
    for f in report.factors:
        assert f.factor in text
    assert "VANISHES" in text and "nonzero" in text


def test_plot_writes_an_image(tmp_path: object) -> None:
    pytest.importorskip("matplotlib")
    report = zs.domain_report(
        "1/(x**2 + y**2 - 1) + 1/(x*y*z - 1)", {"x": (-2, 2), "y": (-2, 2), "z": (1, 2)}
    )
    path = tmp_path / "cover.png"  # type: ignore[operator]
    circle = next(i for i, f in enumerate(report.factors) if f.variables == ("x", "y"))
    report.plot(circle, path=path)
    assert path.stat().st_size > 1000
    other = next(i for i, f in enumerate(report.factors) if len(f.variables) == 3)
    with pytest.raises(zs.InvalidArgumentError, match="three|3 free variables"):
        report.plot(other)


# ---------------------------------------------------------------- boxes/errors
def test_parse_box_reads_exact_numbers() -> None:
    box = parse_box("x=0:1, y=-2:2,z=1/3, w=0.1:1e1")
    assert box == {
        "x": (0, 1),
        "y": (-2, 2),
        "z": (Fraction(1, 3), Fraction(1, 3)),
        "w": (Fraction(1, 10), 10),
    }
    assert parse_box(format_box(box)) == box


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("x=1:0", "x"),
        ("x=a:1", "x"),
        ("x0:1", "x0:1"),
        ("x=0:1,x=2:3", "x"),
        ("1x=0:1", "1x"),
        ("x=0:1:2", "x"),
        ("", "box"),
        ("x=0:1,,y=1", "box"),
    ],
)
def test_parse_box_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(BoxError) as info:
        parse_box(text)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("box", "field", "match"),
    [
        ({"x": (0, float("nan"))}, "x", "finite"),
        ({"x": (0, float("inf"))}, "x", "finite"),
        ({"x": (True, 1)}, "x", "bool"),
        ({"x": (2, 1)}, "x", "empty"),
        ({"x": (0, 1, 2)}, "x", "lo, hi"),
        ({"x": (0, "abc")}, "x", "not a number"),
        ({"x": (0, 1), "q": (0, 1)}, "q", "does not use"),
        ({}, "x", "no range"),
    ],
)
def test_bad_boxes_are_typed_errors(box: dict, field: str, match: str) -> None:
    with pytest.raises(BoxError, match=match) as info:
        zs.domain_report("1/x", box)
    assert info.value.field == field


def test_bad_options_are_refused() -> None:
    box = {"x": (0, 1)}
    with pytest.raises(zs.InvalidArgumentError, match="resolution"):
        zs.domain_report("1/x", box, resolution=0)
    with pytest.raises(zs.InvalidArgumentError, match="tightness"):
        zs.domain_report("1/x", box, tightness=Fraction(1, 2))
    with pytest.raises(zs.InvalidArgumentError, match="cover"):
        zs.domain_report("1/x", box, cover="yes")  # type: ignore[arg-type]
    with pytest.raises(zs.InvalidArgumentError, match="budget"):
        zs.domain_report("1/x", box, budget=5)  # type: ignore[arg-type]
    with pytest.raises(zs.InputTypeError, match="domain_report needs"):
        zs.domain_report(42, box)


def test_cover_option() -> None:
    """``"auto"`` covers factors in at most two free variables; ``True`` covers the others too."""
    expr, box = "1/(x*y*z - 1)", {"x": (0, 2), "y": (0, 2), "z": (0, 2)}
    auto = zs.domain_report(expr, box).factors[0]
    assert auto.verdict == "vanishes" and not auto.cover and not auto.cover_complete
    full = zs.domain_report(expr, box, cover=True, resolution=Fraction(1, 8)).factors[0]
    assert full.cover
    for t in (Fraction(1, 2), Fraction(1), Fraction(2)):  # exact points of x*y*z = 1
        p = {"x": t, "y": 1 / t, "z": Fraction(1)}
        assert any(all(b[n][0] <= p[n] <= b[n][1] for n in p) for b in full.cover)
    none = zs.domain_report("1/(x*y - 2)", {"x": (0, 2), "y": (0, 2)}, cover=False).factors[0]
    assert none.verdict == "vanishes" and not none.cover and not none.cover_complete
