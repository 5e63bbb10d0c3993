"""Symbolic-regression path: from_equation, readable to_sympy, read_hall_of_fame, undefined_fraction,
and the walk-through from a hall-of-fame file to a validated bundle."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

import zpml_symbolic as zs
from zpml_runtime.errors import ShapeMismatchError, UnsupportedInputError
from zpml_runtime.layers import RationalTemplateLayer
from zpml_runtime.layers.template import TemplateError
from zpml_runtime.losses.implicit import implicit_loss
from zpml_runtime.sr import (
    HallOfFameEntry,
    HallOfFameError,
    SymbolicRegressionError,
    read_hall_of_fame,
)
from zpml_runtime.training import SCMTrainer, TrainingConfig

F64 = torch.float64

HALL = """Complexity,Loss,Equation
1,0.91994,"0.919940"
3,0.5,"(x0 * 1.3807411)"
5,0.1,"(x0 / (x1 - 1.7))"
6,0.09,"sin(x0 * 0.8372703)"
7,0.01,"((x0 / (x1 - 1.7)) + 0.25)"
8,0.009,"(x0 ^ 2.5)"
9,0.005,"((square(x0) * inv(x2 + -0.5)) - cube(x1))"
10,0.001,"max(x0, x1)"
11,0.0009,"exp(x1) / (x0 - 1.0)"
"""


def write(tmp_path: Path, text: str, name: str = "hall_of_fame.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def exact_fraction(v: object) -> object:
    return "BOTTOM" if v is zs.BOTTOM else Fraction(int(v.p), int(v.q))  # type: ignore[union-attr]


# --------------------------------------------------------------------------- from_equation


def test_from_equation_lifts_constants_and_keeps_integers_exact() -> None:
    layer = RationalTemplateLayer.from_equation(
        "((x0 * 2.0) + -0.5) / (x1 - 1.7) + square(x2) * 3 - x0 ^ 2.0", dtype=F64
    )
    assert layer.parameter_names == ("c0", "c1", "c2")
    assert layer.variables == ("x0", "x1", "x2")
    assert layer.coefficient_values() == {"c0": 2.0, "c1": -0.5, "c2": 1.7}
    assert layer.equation is not None and layer.equation.literals["c1"] == "-0.5"
    # the layer computes the equation with its float constants (checked exactly per sample)
    X = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.7, 1.0], [-2.0, 0.0, 0.25]], dtype=F64)
    P, Q = layer(X)
    fru = zs.flatten(
        zs.parse("((x0 * c0) + c1) / (x1 - c2) + x2**2 * 3 - x0**2", parameters=["c0", "c1", "c2"])
    )
    for row, p, q in zip(X.tolist(), P.tolist(), Q.tolist(), strict=True):
        ref = fru.evaluate(
            {"x0": row[0], "x1": row[1], "x2": row[2], "c0": 2.0, "c1": -0.5, "c2": 1.7}
        )
        if ref is zs.BOTTOM:
            assert q == 0
        else:
            assert p / q == pytest.approx(float(ref), rel=1e-14)
    assert layer.fru.degrees.per_variable["x2"] == (2, 0)  # square(x2)*3: exponent and 3 exact


def test_from_equation_variables() -> None:
    assert RationalTemplateLayer.from_equation("x3 * 1.5").variables == ("x0", "x1", "x2", "x3")
    assert RationalTemplateLayer.from_equation("b2 / a10 + a2").variables == ("a2", "a10", "b2")
    layer = RationalTemplateLayer.from_equation("T * 1.5 + P", variables=["T", "P"])
    assert layer.variables == ("T", "P")
    with pytest.raises(TemplateError, match=r"uses no input variable; pass variables=\[\.\.\.\]"):
        RationalTemplateLayer.from_equation("0.919940")
    const = RationalTemplateLayer.from_equation("0.919940", variables=["x0"])
    assert const.coefficient_values() == pytest.approx({"c0": 0.91994})
    with pytest.raises(
        TemplateError, match=r"symbols \['x1'\] of the template are neither declared"
    ):
        RationalTemplateLayer.from_equation("x0 * 1.5 + x1", variables=["x0"])


def test_from_equation_errors_name_the_culprit() -> None:
    with pytest.raises(
        zs.NotRationalTextError,
        match=r"sqrt\(\) is not a rational function, so the equation is not rational",
    ):
        RationalTemplateLayer.from_equation("sqrt(x0) * 1.5")
    with pytest.raises(zs.NotRationalTextError, match=r"found '2\.5'\): a non-integer power"):
        RationalTemplateLayer.from_equation("x0 ^ 2.5")
    with pytest.raises(zs.ParseError, match=r"missing operand"):
        RationalTemplateLayer.from_equation("x0 * * 1.5")
    with pytest.raises(UnsupportedInputError, match="text must be a str, got int"):
        RationalTemplateLayer.from_equation(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- readable to_sympy


def test_issue_example_reads_back_as_the_decimal_shown() -> None:
    layer = RationalTemplateLayer("x0/(x1 - c)", ["c"], init={"c": 1.7}, variables=["x0", "x1"])
    shown = layer.to_sympy(digits=6)
    assert str(shown) == "x0/(x1 - 1.7)"  # no stray "1*"
    fru = zs.flatten(shown)
    assert fru.denominator == sp.sympify("10*x1 - 17")  # 17/10, not 7130317/4194304
    assert zs.flatten(zs.parse(str(shown))).denominator == fru.denominator
    exact = layer.to_sympy()  # digits=None: the float32 value exactly
    assert "7130317/4194304" in str(exact) and "1*" not in str(exact)


@settings(deadline=None, max_examples=30)
@given(
    st.lists(
        st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from([0.0, -0.0, 1e-300, -2.5e-7, 1.7, 123456.789, 1e20]),
        ),
        min_size=3,
        max_size=3,
    ),
    st.integers(1, 17),
)
def test_readable_to_sympy_compiles_to_exactly_the_decimals_shown(
    values: list[float], digits: int
) -> None:
    template = "(c0*x0 - c1)/(x1 - c2) - c0"
    init = dict(zip(("c0", "c1", "c2"), values, strict=True))
    layer = RationalTemplateLayer(
        template, ["c0", "c1", "c2"], init=init, variables=["x0", "x1"], dtype=F64
    )
    shown = layer.to_sympy(digits=digits)
    text = str(shown)
    assert re.search(r"(^|[^\w.])1\*", text) is None, text  # no stray "1*"
    # reference: each coefficient correctly rounded to `digits` significant digits, exactly
    rounded = {k: Fraction(f"{v:.{digits - 1}e}") for k, v in init.items()}
    ref = zs.flatten(zs.parse(template, parameters=["c0", "c1", "c2"]))
    for point in (
        {"x0": Fraction(3), "x1": Fraction(-1, 3)},
        {"x0": Fraction(-2), "x1": rounded["c2"]},
    ):
        expected = exact_fraction(ref.evaluate({**point, **rounded}))
        assert exact_fraction(zs.flatten(shown).evaluate(point)) == expected, text
        assert exact_fraction(zs.flatten(zs.parse(text)).evaluate(point)) == expected, text
    # the text is an equation again: its four literals come back as constants (up to sign)
    again = RationalTemplateLayer.from_equation(text, variables=["x0", "x1"])
    lifted = sorted(abs(v) for v in again.equation.constants.values())  # type: ignore[union-attr]
    assert lifted == sorted(abs(rounded[k]) for k in ("c0", "c0", "c1", "c2")), text


def test_rational_layer_readable_to_sympy_is_exact_too() -> None:
    from zpml_runtime.layers import SCMRationalLayer

    layer = SCMRationalLayer(
        2, 2, numerator_init=[1.0, -2.5, 0.3], denominator_init=[-0.1, 1.0, 0.5]
    )
    shown = layer.to_sympy(digits=4)  # float32 coefficients, rounded for reading
    assert str(shown) == "(0.3*x**2 - 2.5*x + 1.0)/(0.5*x**2 + 1.0*x - 0.1)"
    for fru in (zs.flatten(shown), zs.flatten(zs.parse(str(shown)))):
        assert fru.denominator == sp.sympify("5*x**2 + 10*x - 1")
        assert fru.numerator == sp.sympify("3*x**2 - 25*x + 10")


def test_to_sympy_refuses_a_diverged_coefficient() -> None:
    layer = RationalTemplateLayer("x/(x - c)", ["c"], init={"c": float("nan")}, dtype=F64)
    with pytest.raises(Exception, match="not finite; the layer diverged"):
        layer.to_sympy(digits=6)


# --------------------------------------------------------------------------- read_hall_of_fame


def test_read_hall_of_fame_compiles_or_reports_every_entry(tmp_path: Path) -> None:
    hof = read_hall_of_fame(write(tmp_path, HALL))
    assert hof.variables == ("x0", "x1", "x2")
    assert len(hof) == 9 and [e.line for e in hof] == list(range(2, 11))
    assert [e.complexity for e in hof] == [1, 3, 5, 6, 7, 8, 9, 10, 11]
    assert hof[2].loss == 0.1 and hof[2].equation == "(x0 / (x1 - 1.7))"
    compiled = {e.line for e in hof.rational()}
    assert compiled == {2, 3, 4, 6, 8}
    errors = {e.line: e.error for e in hof if e.error is not None}
    assert isinstance(errors[5], zs.NotRationalTextError) and errors[5].function == "sin"
    assert isinstance(errors[7], zs.NotRationalTextError) and "non-integer power" in str(errors[7])
    assert errors[9].function == "max" and errors[10].function == "exp"  # type: ignore[union-attr]
    for e in hof:
        assert (e.layer is None) == (e.error is not None) and e.rational == (e.layer is not None)
        if e.layer is not None:
            assert e.layer.variables == hof.variables and e.layer.dtype == F64
    assert hof[0].constants == {"c0": 0.91994}
    assert hof[4].constants == {"c0": 1.7, "c1": 0.25}
    assert hof[2].undefined_where() == ("x1 - 1.7 = 0  (dividing x0/(x1 - 1.7))",)
    assert hof[6].undefined_where() == ("x2 - 0.5 = 0  (dividing x0**2/(x2 - 0.5))",)
    assert hof[1].undefined_where() == ()
    assert hof[2].validity_factors == () and hof[2].denominator_factors[0][1] == 1
    assert "not compiled: sin() is not a rational function" in str(hof[3])
    assert "undefined where x1 - 1.7 = 0" in str(hof)
    with pytest.raises(
        SymbolicRegressionError, match=r"line 5: equation 'sin\(x0 \* 0.8372703\)' was not compiled"
    ):
        hof[3].undefined_fraction(np.zeros((2, 3)))


def test_validity_factors_of_an_entry(tmp_path: Path) -> None:
    hof = read_hall_of_fame(
        write(tmp_path, 'Complexity,Loss,Equation\n5,0.1,"x0 / inv(x1 - 0.5)"\n')
    )
    (entry,) = hof
    assert [str(v) for v in entry.validity_factors] == ["-c0 + x1"]  # Q = 1 misses x1 = 0.5
    assert entry.undefined_where() == ("x1 - 0.5 = 0  (dividing 1/(x1 - 0.5))",)


@pytest.mark.parametrize(
    ("text", "variables", "equations"),
    [
        ('Complexity,Loss,Equation\r\n1,0.5,"x0 * 1.5"\r\n\r\n', ("x0",), ["x0 * 1.5"]),
        ("\ufeffComplexity,Loss,Equation\n1,0.5,x0*1.5\n", ("x0",), ["x0*1.5"]),
        ('Complexity,Loss,Score,Equation\n1,0.5,0.0,"x1 + 1.0"\n', ("x0", "x1"), ["x1 + 1.0"]),
        ("Complexity|MSE|Equation\n3|0.25|x0 * 2.5\n", ("x0",), ["x0 * 2.5"]),
        ("complexity,loss,equation\n4,inf,max(x0, x2)\n", ("x0", "x1", "x2"), ["max(x0, x2)"]),
        ('Equation,Loss,Complexity\n"x0 / 2.0",1e-3,3\n', ("x0",), ["x0 / 2.0"]),
    ],
)
def test_hall_of_fame_formats(
    tmp_path: Path, text: str, variables: tuple[str, ...], equations: list[str]
) -> None:
    hof = read_hall_of_fame(write(tmp_path, text))
    assert hof.variables == variables and [e.equation for e in hof] == equations


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"hof\.csv: the file is empty"),
        ("\n\n", r"hof\.csv: the file is empty"),
        (
            "Complexity,Equation\n1,x0\n",
            r"hof\.csv, line 1: missing column\(s\) \['Loss'\] \(header \['Complexity', 'Equation'\]\)",
        ),
        ("Complexity,Loss,Loss,Equation\n", r"hof\.csv, line 1: column 'Loss' appears twice"),
        ("Complexity,Loss,MSE,Equation\n", r"hof\.csv, line 1: column 'MSE' appears twice"),
        (
            "Complexity,Loss,Equation\n1,0.5,x0\n2,0.4\n",
            r"hof\.csv, line 3: expected 3 fields \(Complexity, Loss, Equation\), got 2",
        ),
        ("Equation,Loss,Complexity\nx0,0.5,1,7\n", r"hof\.csv, line 2: expected 3 fields"),
        (
            "Complexity,Loss,Equation\n1,0.5,x0\nfive,0.4,x0\n",
            r"hof\.csv, line 3: Complexity 'five' is not an integer",
        ),
        (
            "Complexity,Loss,Equation\n1.5,0.4,x0\n",
            r"hof\.csv, line 2: Complexity '1\.5' is not an integer",
        ),
        ("Complexity,Loss,Equation\n1,low,x0\n", r"hof\.csv, line 2: Loss 'low' is not a number"),
        ('Complexity,Loss,Equation\n1,0.5,"x0\n', r"hof\.csv, line \d+: malformed CSV"),
        (
            "Complexity,Loss,Equation\n1,0.5,x0\x00\n",
            r"hof\.csv: not a text file \(it contains NUL bytes\)",
        ),
    ],
)
def test_malformed_hall_of_fame_names_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(HallOfFameError, match=match):
        read_hall_of_fame(write(tmp_path, text, "hof.csv"))


def test_unreadable_hall_of_fame(tmp_path: Path) -> None:
    with pytest.raises(HallOfFameError, match=r"missing\.csv: cannot read the file: No such file"):
        read_hall_of_fame(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"Complexity,Loss,Equation\n1,0.5,\xff\xfe\n")
    with pytest.raises(HallOfFameError, match=r"bin\.csv: not a UTF-8 text file \(byte 31\)"):
        read_hall_of_fame(tmp_path / "bin.csv")
    with pytest.raises(HallOfFameError, match=r"cannot read the file"):
        read_hall_of_fame(tmp_path)  # a directory
    with pytest.raises(UnsupportedInputError, match="variables must be a sequence of names"):
        read_hall_of_fame(write(tmp_path, HALL), variables="x0")  # type: ignore[arg-type]


def test_explicit_variables_apply_to_every_entry(tmp_path: Path) -> None:
    hof = read_hall_of_fame(write(tmp_path, HALL), variables=["x0", "x1", "x2", "x3"])
    assert all(e.layer.variables == ("x0", "x1", "x2", "x3") for e in hof.rational())  # type: ignore[union-attr]
    hof = read_hall_of_fame(write(tmp_path, HALL), variables=["x0", "x1"])
    bad = hof[6]  # uses x2
    assert bad.layer is None and "symbols ['x2'] of the template are neither declared" in str(
        bad.error
    )


# --------------------------------------------------------------------------- undefined_fraction

TWO_POLES = 'Complexity,Loss,Equation\n9,0.1,"x0 / (x1 - 1.5) + inv(x2 + 0.5)"\n'


@pytest.fixture(scope="module")
def two_poles(tmp_path_factory: pytest.TempPathFactory) -> HallOfFameEntry:
    path = tmp_path_factory.mktemp("hof") / "h.csv"
    path.write_text(TWO_POLES)
    return read_hall_of_fame(path)[0]


def reference_bottom(entry, X: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Exact strict semantics per row (floats taken exactly): the independent reference."""
    layer = entry.layer
    values = layer.coefficient_values()
    return np.array(
        [
            layer.fru.evaluate({**dict(zip(layer.variables, row, strict=True)), **values})
            is zs.BOTTOM
            for row in X.tolist()
        ]
    )


def test_undefined_fraction_counts_bottoms_and_names_the_factor(two_poles: HallOfFameEntry) -> None:
    entry = two_poles
    c = 1.5
    rng = np.random.default_rng(0)
    X = rng.normal(size=(37, 3))  # odd batch size
    X[:5, 1] = c  # on the first pole
    X[3:9, 2] = -0.5  # on the second (rows 3, 4 on both)
    X[10, 1] = np.nextafter(c, 2.0)  # one ulp away: defined
    X[11, 2] = np.nextafter(-0.5, 0.0)
    X[12, 0] = np.nan  # a fault (x0 is only in P)
    X[13, 1] = np.inf  # a fault and a non-finite factor
    report = entry.undefined_fraction(X)
    ref = reference_bottom(entry, X)
    assert report.total == 37 and report.bottom == int(ref.sum()) == 11
    assert float(report) == report.fraction == 11 / 37
    assert report.faults == 2
    by_factor = {f.factor: f.rows for f in report.factors}
    assert by_factor == {"x1 - 1.5": 6, "x2 + 0.5": 6}
    assert report.unattributed == 1  # the NaN in x0 (P only)
    assert {f.divisor for f in report.factors} == {"x0/(x1 - 1.5)", "1/(x2 + 0.5)"}
    assert "undefined on 11 of 37 rows (29.730%), 2 of them faults" in str(report)
    assert "x1 - 1.5 = 0: 6 rows" in str(report)
    # a threshold widens the bottom set to |x1 - 1.5| < tau (the Q of this entry is the product)
    X2 = np.array([[1.0, 1.5 + 1e-9, 1.0], [1.0, 3.0, 1.0]])
    assert entry.undefined_fraction(X2).bottom == 0
    near = entry.undefined_fraction(X2, tau=1e-6)
    assert near.bottom == 1 and {f.factor: f.rows for f in near.factors}["x1 - 1.5"] == 1


@settings(deadline=None, max_examples=40)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.5, -0.5, np.nextafter(1.5, 0.0), 1e300, -1e-300, 2.0]),
            st.sampled_from([1.5, -0.5, 0.0, 1e-310, 7.25]),
            st.sampled_from([-0.5, 0.5, np.nextafter(-0.5, -1.0), 3.0]),
        ),
        min_size=1,
        max_size=9,
    )
)
def test_undefined_fraction_matches_exact_semantics(
    two_poles: HallOfFameEntry, rows: list[tuple[float, float, float]]
) -> None:
    entry = two_poles
    X = np.array(rows, dtype=np.float64)
    report = entry.undefined_fraction(X)
    assert report.bottom == int(reference_bottom(entry, X).sum())


def test_undefined_fraction_input_errors(tmp_path: Path) -> None:
    entry = read_hall_of_fame(write(tmp_path, HALL))[2]
    with pytest.raises(
        ShapeMismatchError,
        match=r"X must have shape \[n, 3\] \(columns \['x0', 'x1', 'x2'\]\), got \[4, 2\]",
    ):
        entry.undefined_fraction(np.zeros((4, 2)))
    with pytest.raises(ShapeMismatchError, match=r"got \[3\]"):
        entry.undefined_fraction(np.zeros(3))
    with pytest.raises(ShapeMismatchError, match="X has no rows"):
        entry.undefined_fraction(np.zeros((0, 3)))
    with pytest.raises(UnsupportedInputError, match="X must be a numeric array"):
        entry.undefined_fraction([["a", "b", "c"]])
    with pytest.raises(UnsupportedInputError, match="tau must be a finite number >= 0, got -1"):
        entry.undefined_fraction(np.zeros((1, 3)), tau=-1)
    # lists and float32 tensors are accepted (cast to the layer's dtype)
    assert entry.undefined_fraction([[1.0, 1.7, 0.0]]).bottom == 1
    assert (
        entry.undefined_fraction(torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float32)).bottom == 0
    )


# --------------------------------------------------------------------------- walk-through


def fine_tune(
    layer: RationalTemplateLayer, X: np.ndarray, y: np.ndarray, epochs: int = 600
) -> None:
    loader = DataLoader(
        TensorDataset(torch.tensor(X), torch.tensor(y)), batch_size=len(X), shuffle=False
    )

    def loss_fn(outputs, targets):  # noqa: ANN001, ANN202
        P, Q = outputs[:2]
        return implicit_loss(P, Q, *targets)

    opt = torch.optim.Adam(layer.parameters(), lr=5e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    SCMTrainer(
        layer,
        opt,
        loss_fn,
        loader,
        scheduler=sched,
        config=TrainingConfig(max_epochs=epochs, progress=False),
    ).fit()


def data(seed: int, c0: float, c1: float, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    X = np.column_stack([g.uniform(-2, 2, n), g.uniform(-3, 1, n), g.uniform(-1, 1, n)])
    return X, X[:, 0] / (X[:, 1] - c0) + c1


def test_walk_through_hall_of_fame_to_validated_bundle(tmp_path: Path) -> None:
    from zpml_runtime.bundle import export_bundle, load_onnx_runtime_bundle, validate_bundle

    # 1. import: rational entries compile, the others are reported
    hof = read_hall_of_fame(write(tmp_path, HALL))
    assert [e.rational for e in hof] == [True, True, True, False, True, False, True, False, False]
    entry = hof[4]  # "((x0 / (x1 - 1.7)) + 0.25)"
    assert entry.undefined_where() == ("x1 - 1.7 = 0  (dividing x0/(x1 - 1.7))",)
    # 2. fine-tune the constants on data generated with other constants (2.3, -0.4)
    X, y = data(0, 2.3, -0.4)
    assert entry.undefined_fraction(X).bottom == 0
    fine_tune(entry.layer, X, y)  # type: ignore[arg-type]
    c = entry.constants
    assert abs(c["c0"] - 2.3) < 1e-6 and abs(c["c1"] + 0.4) < 1e-6, c
    Xh, yh = data(100, 2.3, -0.4)  # held out
    with torch.no_grad():
        P, Q = entry.layer(torch.tensor(Xh))  # type: ignore[misc]
    assert float(((P / Q).numpy() - yh).__abs__().max()) < 1e-5
    # 3. readable round trip: the decimals shown are exactly what compiles
    shown = entry.layer.to_sympy(digits=6)  # type: ignore[union-attr]
    assert str(shown) == "x0/(x1 - 2.3) - 0.4"
    fru = zs.flatten(zs.parse(str(shown)), variables=list(hof.variables))
    assert fru.evaluate({"x0": 1, "x1": Fraction(23, 10), "x2": 0}) is zs.BOTTOM
    assert fru.evaluate({"x0": 1, "x1": 2, "x2": 0}) == sp.Rational(-10, 3) - sp.Rational(2, 5)
    assert zs.flatten(shown, variables=list(hof.variables)).denominator == fru.denominator
    # 4. export the readable equation and validate the bundle
    module = zs.to_torch(fru, dtype=F64)
    smoke = torch.tensor(
        [[1.0, 2.3, 0.0], [1.0, 0.0, 0.5], [np.nan, 1.0, 0.0], [2.0, -1.0, 1.0]], dtype=F64
    )
    export_bundle(module, tmp_path / "bundle", (smoke,))
    validated = validate_bundle(tmp_path / "bundle", seed=0)
    assert validated.semantic is not None and validated.semantic.problems == ()
    out = load_onnx_runtime_bundle(tmp_path / "bundle").run(smoke.numpy())
    assert out.outputs["semantic_bottom_mask"].tolist() == [True, False, False, False]
    assert out.outputs["fault_mask"].tolist() == [False, False, True, False]
    assert out.outputs["decoded"][3] == pytest.approx(2.0 / (-1.0 - 2.3) - 0.4, rel=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fine_tuning_recovers_other_constants_on_several_seeds(tmp_path: Path, seed: int) -> None:
    g = np.random.default_rng(1000 + seed)
    c0, c1 = float(g.uniform(2.0, 2.6)), float(g.uniform(-0.6, -0.2))
    entry = read_hall_of_fame(write(tmp_path, HALL))[4]
    X, y = data(seed, c0, c1)
    fine_tune(entry.layer, X, y)  # type: ignore[arg-type]
    assert abs(entry.constants["c0"] - c0) < 1e-6 and abs(entry.constants["c1"] - c1) < 1e-6
