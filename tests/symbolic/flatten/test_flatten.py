"""Flattening: GCD, provenance, validity sources, modes, evaluation, explain, schema."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import sympy as sp

import zpml_symbolic as zs

x, y, z = sp.symbols("x y z")


def U(e):  # noqa: N802 - short helper: keep structure
    return sp.UnevaluatedExpr(e)


def div(a, b):
    return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)


def test_full_polynomial_gcd_keeps_cancelled_factor_as_validity() -> None:
    expr = div(sp.Mul(x + 1, x + 2, evaluate=False), sp.Mul(x + 1, x + 3, evaluate=False))
    fru = zs.flatten(expr)
    assert sp.expand(fru.numerator - (x + 2)) == 0
    assert sp.expand(fru.denominator - (x + 3)) == 0
    assert fru.validity_factors == (x + 1,)
    assert fru.evaluate({x: -1}) is zs.BOTTOM
    assert fru.evaluate({x: -3}) is zs.BOTTOM
    assert fru.evaluate({x: 1}) == sp.Rational(3, 4)


def test_sum_of_poles_retains_nothing() -> None:
    fru = zs.flatten(1 / (x - 1) + 1 / (x - 2))
    assert fru.strict_validity_sources == ()
    assert len(fru.denominator_provenance) == 2
    assert all(
        s.kind == "explicit_denominator" and not s.retained for s in fru.denominator_provenance
    )
    assert sp.expand(fru.denominator - (x - 1) * (x - 2)) == 0


@pytest.mark.parametrize(
    ("text", "point", "bottom"),
    [
        ("x/x", {"x": 0}, True),
        ("1/(1/x)", {"x": 0}, True),
        ("(x**2 - 1)/(x - 1)", {"x": 1}, True),
        ("0*(1/x)", {"x": 0}, True),
        ("x/x", {"x": 5}, False),
        ("(1/x)**0", {"x": 0}, True),
        ("1/(x - x)", {"x": 3}, True),
        ("x/0", {"x": 3}, True),
    ],
)
def test_structure_decides_bottom(text: str, point: dict, bottom: bool) -> None:
    fru = zs.flatten(zs.parse(text))
    assert (fru.evaluate(point) is zs.BOTTOM) == bottom


def test_identically_zero_divisor_is_always_bottom() -> None:
    fru = zs.flatten(zs.parse("1 + 1/(x - x)"))
    assert fru.always_bottom
    assert fru.validity_factors == (0,)
    assert fru.evaluate({"x": Fraction(7, 3)}) is zs.BOTTOM


def test_provenance_kinds_and_merging() -> None:
    expr = zs.parse("(x**2 + 1)/(x - y) + 1/(1 + 1/x)")
    fru = zs.flatten(expr)
    by_factor = {str(s.factor): s for s in fru.denominator_provenance}
    assert set(by_factor) == {"x", "x + 1", "x - y"}
    sx = by_factor["x"]
    assert sx.kind == "explicit_denominator"
    assert sx.kinds == ("explicit_denominator", "divisor_denominator")
    assert sx.sources == ("1/x", "1/(1 + 1/x)")
    assert sx.retained
    assert by_factor["x + 1"].kind == "divisor_numerator"
    assert not by_factor["x + 1"].retained
    assert by_factor["x - y"].source == "(x**2 + 1)/(x - y)"
    assert fru.validity_factors == (x,)
    # paths point into the user's tree
    for src in fru.denominator_provenance:
        for occ in src.occurrences:
            node = expr
            for part in occ.path.removeprefix("root").split(".args[")[1:]:
                node = node.args[int(part.rstrip("]"))]
            assert isinstance(node, sp.Pow | sp.Mul)


def test_shared_subtree_flattened_once_and_sources_merged() -> None:
    d = sp.Add(x, -1, evaluate=False)
    expr = sp.Add(div(1, d), div(y, d), evaluate=False)
    fru = zs.flatten(expr)
    (src,) = fru.denominator_provenance
    assert src.factor == x - 1
    assert len(src.occurrences) == 1  # one interned division node, flattened once


def test_identical_factors_from_different_divisions_are_merged() -> None:
    expr = sp.Add(
        div(1, sp.Add(x, -1, evaluate=False)),
        div(y, sp.Add(2 * x, -2, evaluate=False)),
        evaluate=False,
    )
    fru = zs.flatten(expr)
    (src,) = fru.denominator_provenance
    assert src.factor == x - 1
    assert [o.source for o in src.occurrences] == ["1/(x - 1)", "y/(2*x - 2)"]


def test_variables_order_and_validation() -> None:
    fru = zs.flatten(y / x + z)
    assert fru.variables == (x, y, z)
    fru2 = zs.flatten(y / x, variables=["y", "x", "w"])
    assert [s.name for s in fru2.variables] == ["y", "x", "w"]
    with pytest.raises(zs.InvalidArgumentError, match=r"does not list \['y'\]"):
        zs.flatten(y / x, variables=[x])
    with pytest.raises(zs.InvalidArgumentError, match="duplicate variable"):
        zs.flatten(y / x, variables=[x, y, x])


def test_parameters_are_coefficients_not_inputs() -> None:
    a0, a1, b1 = sp.symbols("a0 a1 b1")
    fru = zs.flatten((a0 + a1 * x) / (1 + b1 * x), parameters=[a0, a1, b1])
    assert fru.variables == (x,)
    assert fru.parameters == (a0, a1, b1)
    # never divides by a parameter expression when normalising
    assert sp.expand(fru.denominator - (b1 * x + 1)) == 0
    assert fru.evaluate({x: 1, a0: 1, a1: 2, b1: -1}) is zs.BOTTOM
    assert fru.evaluate({x: 1, a0: 1, a1: 2, b1: 1}) == sp.Rational(3, 2)
    with pytest.raises(zs.InvalidArgumentError, match=r"no value given for \['b1'\]"):
        fru.evaluate({x: 1, a0: 1, a1: 2})
    with pytest.raises(zs.InvalidArgumentError, match="'x' is declared as a parameter"):
        zs.flatten(x + a0, parameters=["x"], variables=["x", "a0"])
    with pytest.raises(zs.InvalidArgumentError, match="two different symbols are both named 'a'"):
        zs.flatten(sp.Symbol("a") + zs.Coefficient("a"))


def test_parameter_only_division_is_tracked() -> None:
    a = sp.Symbol("a")
    fru = zs.flatten(div(x, a), parameters=[a])
    assert fru.evaluate({x: 1, a: 0}) is zs.BOTTOM


def test_coefficient_symbols_are_parameters_automatically() -> None:
    expr = zs.parse("a*x/(1 + b*x)", parameters=["a", "b"])
    fru = zs.flatten(expr)
    assert [s.name for s in fru.parameters] == ["a", "b"]
    assert [s.name for s in fru.variables] == ["x"]


def test_floats_are_exact_binary_rationals() -> None:
    fru = zs.flatten(sp.Float(0.1) * x)
    assert fru.numerator == sp.Rational(Fraction(0.1).numerator, Fraction(0.1).denominator) * x


def test_algebraic_mode_is_explicit_and_drops_bottoms() -> None:
    strict = zs.flatten(zs.parse("x/x"))
    loose = zs.flatten(zs.parse("x/x"), mode="algebraic")
    assert strict.evaluate({"x": 0}) is zs.BOTTOM
    assert loose.evaluate({"x": 0}) == 1
    assert loose.strict_validity_sources == () and len(loose.denominator_provenance) == 1
    with pytest.raises(zs.InvalidArgumentError, match="mode must be one of"):
        zs.flatten(x, mode="simplify")  # type: ignore[arg-type]


def test_explain_names_the_denominator() -> None:
    fru = zs.flatten(zs.parse("(x**2 + 1)/(x - y) + 1/(1 + 1/x)"))
    exp = fru.explain({"x": 0, "y": 1})
    assert exp.bottom
    assert [str(c.factor) for c in exp.causes] == ["x"]
    text = str(exp)
    assert "'1/x'" in text and "root.args[1].args[0].args[1]" in text
    exp2 = fru.explain({"x": 1, "y": 1})
    assert exp2.bottom and [str(c.factor) for c in exp2.causes] == ["x - y"]
    assert exp2.denominator_zero
    ok = fru.explain({"x": 2, "y": 1})
    assert not ok.bottom and "defined" in str(ok)


def test_structural_validity_failures_split() -> None:
    fru = zs.flatten(zs.parse("x/x + y/y"))
    assert len(fru.validity_factors) == 2
    fails = fru.structural_validity_failures({"x": 0, "y": 1e-3}, taus=[0.0, 1e-2])
    assert [(f.index, f.fault, f.semantic) for f in fails] == [(0, False, True), (1, False, True)]
    fails = fru.structural_validity_failures({"x": float("nan"), "y": 2})
    assert [(f.index, f.fault, f.semantic) for f in fails] == [(0, True, False)]
    with pytest.raises(zs.InvalidArgumentError, match="taus has 1 entries but there are 2"):
        fru.structural_validity_failures({"x": 1, "y": 1}, taus=[0.1])
    with pytest.raises(zs.InvalidArgumentError, match="finite number >= 0"):
        fru.structural_validity_failures({"x": 1, "y": 1}, taus=-1.0)


def test_schema_names_and_metadata() -> None:
    fru = zs.flatten(zs.parse("x/x + y/y"))
    schema = fru.structural_validity_output_schema(prefix="v")
    assert schema.output_names == (
        "v_0_value",
        "v_0_fault_mask",
        "v_0_semantic_bottom_mask",
        "v_1_value",
        "v_1_fault_mask",
        "v_1_semantic_bottom_mask",
    )
    meta = schema.to_metadata()
    json.dumps(meta)  # JSON-ready
    assert meta["schema"] == "zpml.structural_validity_output_schema" and meta["version"] == 1
    assert meta["outputs"][0]["factor_terms"] == [{"exponents": [1, 0], "coefficient": "1"}]
    default = fru.structural_validity_output_schema()
    assert default.output_names[0] == "structural_validity_factor_0_value"
    for bad in ("1abc", "a-b", "", 3, "é"):
        with pytest.raises(zs.InvalidArgumentError, match="prefix must be an ASCII identifier"):
            fru.structural_validity_output_schema(prefix=bad)  # type: ignore[arg-type]


def test_degrees() -> None:
    fru = zs.flatten(zs.parse("x**3/(y - 1) + x/x"))
    d = fru.degrees
    assert d.numerator == 3 and d.denominator == 1 and d.validity_factors == (1,)
    assert d.per_variable == {"x": (3, 0), "y": (1, 1)}  # P = x**3 + y - 1


def test_evaluate_rejects_bad_values() -> None:
    fru = zs.flatten(x / y)
    with pytest.raises(zs.InvalidArgumentError, match="unknown symbols"):
        fru.evaluate({x: 1, y: 1, z: 1}, unknown="error")
    with pytest.raises(zs.InvalidArgumentError, match="must be a real number"):
        fru.evaluate({x: "1", y: 1})
    assert fru.evaluate({"x": float("inf"), "y": 1}) is zs.BOTTOM


def test_string_input_goes_through_safe_parser() -> None:
    fru = zs.flatten("1/(1/x)")
    assert fru.evaluate({"x": 0}) is zs.BOTTOM


def test_constant_expression() -> None:
    fru = zs.flatten(sp.Mul(3, sp.Pow(4, -1, evaluate=False), evaluate=False))
    assert fru.variables == () and fru.evaluate({}) == sp.Rational(3, 4)


def test_multivariate_factorisation_retains_irreducible_parts() -> None:
    inner = sp.Mul(x * y - 1, x + y, evaluate=False)
    fru = zs.flatten(div(inner, inner))
    assert set(map(str, fru.validity_factors)) == {"x*y - 1", "x + y"}


def test_flint_and_sympy_factorisers_agree() -> None:
    from sympy.polys.domains import QQ
    from sympy.polys.rings import ring

    from zpml_symbolic.flatten.factoring import factor_integer_poly

    R, a, b = ring("a,b", QQ)
    f = (a**2 - 2 * b) * (a + b) ** 2 * (3 * a * b + 1)
    ours = sorted((str(h), m) for h, m in factor_integer_poly(f))
    ref = sorted((str(h), m) for h, m in factor_integer_poly(f, use_flint=False))
    norm = lambda fs: sorted((s.lstrip("-"), m) for s, m in fs)  # noqa: E731
    assert norm(ours) == norm(ref)
