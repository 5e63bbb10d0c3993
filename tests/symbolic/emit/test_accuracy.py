"""Accuracy of the emitted evaluation against exact evaluation (fast version of
``benchmarks/bench_accuracy.py``).

E1-E3 of the issue at 2000 random points: the strict evaluator's decoded
value, in float32 and float64, must have a median relative error no worse
than 2x that of ``sympy.lambdify`` of the original tree (plus the unit
roundoff, so exact ties pass), and E3 in float32 at most 1e-5. Evaluating the
expanded ``P/Q`` instead fails the E3 bound by orders of magnitude (checked
below, so the bound is known to discriminate).

The reference is the tests' independent strict tree walker
(``sym_strategies.ref_eval``, exact Fractions) over the original sympy tree at
the float inputs taken as exact binary rationals; it shares no code with the
compiler.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from math import factorial

import numpy as np
import onnxruntime as ort
import pytest
import sympy as sp
import torch
from sym_strategies import BOT, ref_eval

import zpml_symbolic as zs

X, Y, Z = sp.symbols("x y z")
N_POINTS = 2000
UNIT = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}


def _div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)


def _e1() -> sp.Expr:
    a = [
        sp.Rational(
            factorial(10 - k) * factorial(5), factorial(10) * factorial(k) * factorial(5 - k)
        )
        for k in range(6)
    ]
    return _div(
        sp.Add(*[c * X**k for k, c in enumerate(a)]),
        sp.Add(*[c * (-X) ** k for k, c in enumerate(a)]),
    )


def _e2() -> sp.Expr:
    return sp.parse_expr(
        "(x*y + z)/(x - y) + 1/(1 + 1/(x*z)) - (x**2 + y**2)/(z**2 + 1)", evaluate=False
    )


def _e3() -> sp.Expr:
    terms = [
        _div(sp.Rational((-1) ** k * (20 + k), 20), X - sp.Rational(k, 10)) for k in range(1, 21)
    ]
    return sp.Add(*terms, evaluate=False)


CASES = {
    "E1": (_e1, (X,), -3.0, 3.0),
    "E2": (_e2, (X, Y, Z), -2.0, 2.0),
    "E3": (_e3, (X,), -1.0, 3.0),
}


@functools.cache
def _setup(
    name: str, dtype: torch.dtype
) -> tuple[sp.Expr, torch.Tensor, tuple[Fraction | None, ...]]:
    make, variables, lo, hi = CASES[name]
    expr = make()
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.uniform(lo, hi, size=(N_POINTS, len(variables)))).to(dtype)
    exact: list[Fraction | None] = []
    for row in x.double().tolist():
        value = ref_eval(expr, {s: Fraction(c) for s, c in zip(variables, row, strict=True)})
        exact.append(None if value is BOT else value)
    return expr, x, tuple(exact)


def _median_rel_error(approx: torch.Tensor, exact: tuple[Fraction | None, ...]) -> float:
    errs = []
    for a, e in zip(approx.double().tolist(), exact, strict=True):
        if e is None or e == 0:
            continue
        if not np.isfinite(a):
            errs.append(np.inf)
            continue
        errs.append(float(abs(Fraction(a) - e) / abs(e)))
    assert len(errs) > len(exact) // 2
    return float(np.median(errs))


def _columns(x: torch.Tensor) -> list[torch.Tensor]:
    return [x[:, i] for i in range(x.shape[1])]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_decoded_error_is_within_2x_of_lambdify(name: str, dtype: torch.dtype) -> None:
    expr, x, exact = _setup(name, dtype)
    variables = CASES[name][1]
    ev = zs.strict_evaluator(expr)
    assert ev.model.variables == tuple(s.name for s in variables)
    lam = sp.lambdify(variables, expr, modules="torch")
    with torch.no_grad():
        ours = _median_rel_error(ev(x).decoded, exact)
        base = _median_rel_error(lam(*_columns(x)), exact)
    assert ours <= 2.0 * base + UNIT[dtype], (
        f"{name} {dtype}: ours {ours:.3g} vs lambdify {base:.3g}"
    )
    if name == "E3" and dtype == torch.float32:
        assert ours <= 1e-5, f"E3 float32 median relative error {ours:.3g} > 1e-5"


def test_e3_bound_rejects_expanded_evaluation() -> None:
    """The naive expanded (monomial) P/Q misses the E3 float32 bound, so the test above can fail."""
    expr, x, exact = _setup("E3", torch.float32)
    fru = zs.flatten(expr)
    p = sp.lambdify((X,), sp.N(fru.numerator, 17), modules="torch")
    q = sp.lambdify((X,), sp.N(fru.denominator, 17), modules="torch")
    with torch.no_grad():
        naive = p(x[:, 0]) / q(x[:, 0])
    assert _median_rel_error(naive, exact) > 1e-3


# ----------------------------------------------------------------------------- float range (issue 10)


def _exact_ir(node, env):  # exact value of a division-free IR node
    from fractions import Fraction

    from zpml_symbolic.ir.node import Op
    from zpml_symbolic.ir.traverse import postorder

    vals = {}
    for n in postorder(node):
        if n.op is Op.CONST:
            vals[n] = n.value
        elif n.op in (Op.VAR, Op.PARAM):
            vals[n] = env[str(n.value)]
        elif n.op is Op.POW:
            vals[n] = vals[n.args[0]] ** n.value
        elif n.op is Op.MUL:
            acc = Fraction(1)
            for a in n.args:
                acc *= vals[a]
            vals[n] = acc
        else:
            vals[n] = sum((vals[a] for a in n.args), Fraction(0))
    return vals[node]


@pytest.mark.parametrize(
    "text", ["x/(1e-40*x + 1)", "(1e30*x + y)/(x*y + 1e-45)", "1/((x + 1e50)*(y - 1e-50))"]
)
def test_regauge_is_an_exact_power_of_two(text: str) -> None:
    from fractions import Fraction

    from zpml_symbolic.emit.lowering.gauge import regauge

    fru = zs.flatten(zs.parse(text))
    P, Q, _, gauge = regauge(fru.numerator_ir, fru.denominator_ir, [])
    assert gauge.pq != 0
    for env in (
        {"x": Fraction(3, 7), "y": Fraction(-5, 2)},
        {"x": Fraction(10**41), "y": Fraction(1)},
    ):
        scale = Fraction(2) ** -gauge.pq
        assert _exact_ir(P, env) == scale * _exact_ir(fru.numerator_ir, env)
        assert _exact_ir(Q, env) == scale * _exact_ir(fru.denominator_ir, env)


def test_out_of_range_canonical_constants_evaluate_in_float32() -> None:
    """x/(1e-40*x + 1): canonical P = 1e40*x overflowed float32 on every row before the regauge."""
    text = "x/(1e-40*x + 1)"
    x = np.array([[1.0], [2.0], [-3.0]], dtype=np.float32)
    want = x[:, 0].astype(np.float64) / (1e-40 * x[:, 0] + 1)
    ev = zs.strict_evaluator(text)
    got = ev(torch.from_numpy(x))
    assert not bool(got.bottom_mask.any())
    np.testing.assert_allclose(got.decoded.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(zs.numpy_evaluator(text)(x).decoded, want, rtol=1e-6)
    model = zs.to_onnx(text)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["decoded"], {"x": x})[0], want, rtol=1e-6)
    assert "gauge_exponents" in {p.key.removeprefix("zpml.") for p in model.metadata_props}


def test_thresholds_keep_their_canonical_meaning_after_regauge() -> None:
    """Q = x + 1e40 canonically; tau_infer = 1e39 in that gauge is |x + 1e40| < 1e39."""
    from zpml_core.config import InferenceConfig

    cfg = InferenceConfig(tau_infer=1e39)
    ev = zs.strict_evaluator("x/(1e-40*x + 1)", config=cfg, dtype=torch.float64)
    x = torch.tensor([[-1e40 + 1e38], [-1e40 + 2e39], [1.0]], dtype=torch.float64)
    assert ev(x).semantic_bottom_mask.tolist() == [True, False, False]


def test_unrepresentable_constants_are_refused_at_compile_time() -> None:
    with pytest.raises(zs.EmitError, match=r"1\.00000E-400.*cannot be represented in float64"):
        zs.strict_evaluator("x/(1e-400*x + 1)")
    with pytest.raises(zs.EmitError, match="cannot be represented in float64"):
        zs.to_onnx("x/(1e-400*x + 1)", dtype="float64")
    with pytest.raises(zs.EmitError, match="cannot be represented in float32"):
        zs.to_onnx("x/(1e-50*x + 1)", dtype="float32")
    m = zs.to_torch("x/(1e-50*x + 1)")  # fine in float64 ...
    assert torch.isfinite(m(torch.ones(2, 1, dtype=torch.float64))[0]).all()
    with pytest.raises(zs.EmitError, match="cannot be represented in float32"):
        m(torch.ones(2, 1))  # ... refused on the first float32 call, never a fault on every row


# --------------------------------------------------------------------------- dynamic range (issue 10)

PI_TEXT = "3.141592653589793"
SI_CASES = {
    # G, m1, m2, r1, r2 (Earth/Moon): P ~ 1e46 is beyond float32, the value ~ -3.05e27
    "feynman_I.13.12": (
        "G*m1*m2*(1/r2 - 1/r1)",
        {"G": 6.674e-11, "m1": 5.972e24, "m2": 7.342e22, "r1": 3.844e8, "r2": 4.0044e8},
        lambda G, m1, m2, r1, r2: G * m1 * m2 * (1 / r2 - 1 / r1),
    ),
    # epsilon, h, m, q: Q = m*q**2 ~ 2e-68 underflows float32, the value ~ 5.29e-11
    "feynman_I.38.12_bohr": (
        f"4*{PI_TEXT}*epsilon*(h/(2*{PI_TEXT}))**2/(m*q**2)",
        {
            "epsilon": 8.8541878128e-12,
            "h": 6.62607015e-34,
            "m": 9.1093837015e-31,
            "q": 1.602176634e-19,
        },
        lambda eps, h, m, q: (
            4 * Fraction(PI_TEXT) * eps * (h / (2 * Fraction(PI_TEXT))) ** 2 / (m * q**2)
        ),
    ),
}


def _si_points(name: str, n: int = 200) -> tuple[str, np.ndarray, list[Fraction]]:
    text, nominal, exact = SI_CASES[name]
    variables = zs.to_torch(text).variables
    rng = np.random.default_rng(7)
    base = np.array([nominal[v] for v in variables])
    x = (base * rng.uniform(0.8, 1.2, size=(n, len(variables)))).astype(np.float32)
    values = [exact(*[Fraction(float(c)) for c in row]) for row in x]
    return text, x, values


def _rel(decoded: np.ndarray, exact: list[Fraction]) -> float:
    errs = [
        float(abs(Fraction(float(d)) - e) / abs(e)) if np.isfinite(d) else float("inf")
        for d, e in zip(decoded.tolist(), exact, strict=True)
    ]
    return max(errs)


@pytest.mark.parametrize("name", list(SI_CASES))
def test_si_inputs_in_float32_decode_with_compute_dtype(name: str) -> None:
    """Every point decodes to within float32 rounding of the exact value in every back end."""
    text, x, exact = _si_points(name)
    if name == "feynman_I.13.12":  # about -3.05e27 at the nominal values
        nominal = SI_CASES[name][1]
        value = SI_CASES[name][2](*[Fraction(float(np.float32(v))) for v in nominal.values()])
        assert -3.06e27 < value < -3.04e27
    with torch.no_grad():
        torch_dec = zs.strict_evaluator(text, compute_dtype=torch.float64)(torch.from_numpy(x))
    numpy_dec = zs.numpy_evaluator(text, compute_dtype="float64")(x)
    model = zs.to_onnx(text, compute_dtype="float64")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_dec = sess.run(["decoded"], {"x": x})[0]
    for decoded in (torch_dec.decoded.numpy(), np.asarray(numpy_dec.decoded), onnx_dec):
        assert decoded.dtype == np.float32
        assert _rel(decoded, exact) <= 2**-23  # float64 evaluation, one float32 rounding


@pytest.mark.parametrize("name", list(SI_CASES))
def test_si_inputs_in_float32_without_compute_dtype_are_faults_not_semantic(name: str) -> None:
    """float32 alone cannot hold P (Feynman) or Q (Bohr): faults, never a semantic bottom."""
    text, x, _ = _si_points(name, n=50)
    with torch.no_grad():
        r = zs.strict_evaluator(text)(torch.from_numpy(x))
    assert r.fault_mask.all() and not r.semantic_bottom_mask.any()
    n = zs.numpy_evaluator(text)(x)
    assert np.asarray(n.fault_mask).all() and not np.asarray(n.semantic_bottom_mask).any()
