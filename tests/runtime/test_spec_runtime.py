"""The runtime's copies of the mask rule, tested against ``zpml_core.spec``.

* the exact evaluation behind ``zpml explain`` (``bundle.exact.evaluate_point``):
  which factors it marks bottom, the exact verdict and ``Q``, at zero-set and
  non-finite inputs;
* the validation report's ``|Q|`` summary (``write_bundle_report``'s ``q_abs``):
  evaluated as the program does (the 20-pole regression of issue 10) and counted
  with the spec's threshold rule at ``|Q| == tau`` exactly;
* ``tau_infer_sweep_from_q_abs``: bottom counts per threshold;
* ``StrictInferenceMonitor``: hazard counts (threshold 0 means exact zeros) and
  the ``|Q|`` histogram (a value on an edge is not below it).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import zpml_symbolic as zs
from zpml_core import spec
from zpml_runtime.bundle import export_bundle
from zpml_runtime.bundle.exact import evaluate_point, read_metadata_fru
from zpml_runtime.bundle.export import fru_metadata
from zpml_runtime.bundle.report import write_bundle_report
from zpml_runtime.inference import InferenceConfig
from zpml_runtime.inference.monitor import StrictInferenceMonitor
from zpml_runtime.metrics import tau_infer_sweep_from_q_abs

EXPRS = {
    "sum": ("1/(1 + 1/x) + y/(x - y)", ("x", "y")),
    "unused_input": ("1/y", ("x", "y")),  # no polynomial uses x
}
SPECIAL = [0, 1, -1, 2, Fraction(1, 2), Fraction(-1, 4), math.nan, math.inf, -math.inf]
DYADIC = st.builds(Fraction, st.integers(-64, 64), st.sampled_from([1, 2, 4, 8]))


def _metadata(expr: str, variables, **config) -> dict:
    """The metadata a compiled float64 bundle of ``expr`` carries (built without exporting)."""
    fru = zs.flatten(zs.parse(expr), variables=list(variables))
    return {
        "source": "compiled_fru",
        "fru": fru_metadata(fru),
        "structural_validity_output_schema": fru.structural_validity_output_schema().to_metadata(),
        "input": {"variables": list(variables), "dtype": "float64"},
        "parameters": {},
        "inference_config": InferenceConfig(**config).to_metadata(),
    }


@pytest.fixture(scope="module")
def metadata_frus() -> dict:
    out = {}
    for name, (expr, variables) in EXPRS.items():
        meta = _metadata(expr, variables, tau_infer=0.0)
        out[name] = (read_metadata_fru(meta), zs.flatten(zs.parse(expr), variables=list(variables)))
    return out


def _value(expr: sp.Expr, point: dict[str, Fraction | float]) -> Fraction | float:
    """Exact value of a polynomial; NaN when it uses a non-finite input."""
    used = {s.name for s in expr.free_symbols}
    if any(isinstance(v, float) for k, v in point.items() if k in used):
        return math.nan
    r = sp.Rational(
        expr.subs({sp.Symbol(k): sp.Rational(v) for k, v in point.items() if k in used})
    )
    return Fraction(int(r.p), int(r.q))


@example(name="unused_input", coords=[math.inf, Fraction(2)])  # x unused: not a fault
@example(name="sum", coords=[math.nan, Fraction(1)])  # every factor uses x: all non-finite
@given(
    st.sampled_from(sorted(EXPRS)),
    st.lists(st.one_of(st.sampled_from(SPECIAL), DYADIC), min_size=2, max_size=2),
)
def test_explain_exact_matches_spec(metadata_frus, name: str, coords) -> None:
    meta_fru, fru = metadata_frus[name]
    point = [v if isinstance(v, float) else Fraction(v) for v in coords]
    named = dict(zip(EXPRS[name][1], point, strict=True))
    p, q = _value(fru.numerator, named), _value(fru.denominator, named)
    vs = [_value(v, named) for v in fru.validity_factors]
    verdict = spec.classify(p, q, vs, dtype=None)
    factors = [_value(s.factor, named) for s in fru.denominator_provenance]
    each = spec.classify(1, 1, factors, dtype=None)

    exact = evaluate_point(meta_fru, point)
    assert exact.bottom == verdict.bottom
    assert exact.denominator == (None if isinstance(q, float) else q)
    marked = [i in exact.bottomed for i in range(len(factors))]
    want = [f or s for f, s in zip(each.factor_faults, each.factor_semantics, strict=True)]
    assert marked == want
    assert [v is None for v in exact.factors] == list(each.factor_faults)


def _q_abs(tmp_path, expr: str, x: np.ndarray, **config) -> dict:
    """The ``q_abs`` section of the validation report of a float64 bundle of ``expr`` on ``x``."""
    ev = zs.strict_evaluator(zs.parse(expr), config=InferenceConfig(**config), dtype=torch.float64)
    export_bundle(ev, tmp_path / "b", (torch.from_numpy(x[:1].copy()),), dtype="float64")
    return write_bundle_report(tmp_path / "b", inputs=x).summary["q_abs"]


def test_q_summary_20_pole_sum_is_the_programs_q(tmp_path) -> None:
    """Issue 10: near a pole the expanded monomials give 2.74e12 for |Q| = 1.16e11."""
    expr = " + ".join(f"1/(x - {k})" for k in range(1, 21))
    x0 = 20 + 2.0**-20
    x = np.array([[x0], [0.5]], dtype=np.float64)
    summary = _q_abs(tmp_path, expr, x, tau_infer=0.0)
    exact = [abs(float(math.prod(Fraction(v) - k for k in range(1, 21)))) for v in (x0, 0.5)]
    assert summary["min"] == pytest.approx(exact[0], rel=1e-9)
    assert summary["max"] == pytest.approx(exact[1], rel=1e-9)
    assert "program" in summary["method"]


def test_q_summary_counts_match_spec(tmp_path) -> None:
    """``|Q| == tau_infer`` is not below it; ``|Q| == tau_train`` is not in the gap."""
    xs = [1.5, 1.25, 1.0, 2.0, 1.75, math.nan, 0.5, 0.0, 1.0 + 2.0**-30, math.inf]
    x = np.array(xs, dtype=np.float64)[:, None]
    summary = _q_abs(tmp_path, "1/(x - 1)", x, tau_infer=0.5, tau_train=1.0)
    qs = [Fraction(v) - 1 if math.isfinite(v) else math.nan for v in xs]  # Q = x - 1
    verdicts = [spec.classify(0, q, tau_infer=0.5, tau_train=1.0, dtype=None) for q in qs]
    assert summary["below_tau_infer"] == sum(v.semantic for v in verdicts) == 3
    assert summary["in_gap"] == sum(v.gap for v in verdicts) == 3
    assert summary["nonfinite"] == sum(v.fault for v in verdicts) == 2
    assert summary["zero"] == sum(q == 0 for q in qs) == 1


@st.composite
def sweeps(draw):
    taus = draw(
        st.lists(
            st.sampled_from([0.0, 5e-324, 1e-300, 2.0**-10, 1e-3, 0.5, 1.0]), min_size=1, max_size=4
        )
    )
    pool = [abs(v) for v in spec.boundary_values("float64", taus)]
    n = draw(st.integers(1, 12))
    q = draw(st.lists(st.one_of(st.sampled_from(pool), st.floats(0, 10)), min_size=n, max_size=n))
    in_range = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return q, in_range, taus


@given(sweeps())
def test_tau_sweep_matches_spec(case) -> None:
    q, in_range, taus = case
    curves = tau_infer_sweep_from_q_abs(
        q_abs=np.array(q), is_in_range=np.array(in_range), taus=taus
    )
    for j, tau in enumerate(taus):
        bottom = [spec.classify(0.0, v, tau_infer=tau).bottom for v in q]  # P = 0: no overflow
        assert curves.n_bottom[j] == sum(bottom)
        assert curves.n_false_bottom[j] == sum(
            b and r for b, r in zip(bottom, in_range, strict=True)
        )
        assert curves.n_unsafe_accept[j] == sum(
            not b and not r for b, r in zip(bottom, in_range, strict=True)
        )


@given(
    st.lists(
        st.sampled_from([0.0, 5e-324, 1e-6, 1e-3, 0.5, 1.0, 2.0, math.nan, math.inf]),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([0.0, 1e-6, 1e-3, 0.5, 1.0]),
)
def test_monitor_hazard_and_histogram_match_spec(q, hazard: float) -> None:
    edges = (1e-6, 1e-3, 0.5, 1.0, 2.0)
    mon = StrictInferenceMonitor(
        bundle_id="spec", numerical_hazard_threshold=hazard, q_abs_edges=edges
    )
    mon.update(np.zeros(len(q), dtype=bool), q_abs=np.array(q))
    state = mon.export_state(include_histograms=True)
    assert state["counts"]["hazard"] == sum(spec.below_threshold(v, hazard) for v in q)
    hist = state["histograms"]["q_abs"]["counts"]
    for k, edge in enumerate(edges):
        below = sum(spec.below_threshold(v, edge) and v != 0 for v in q)
        assert sum(hist[: k + 1]) == below, (k, edge)
