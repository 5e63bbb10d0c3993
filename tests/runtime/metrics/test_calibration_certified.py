"""``certified_tau_ceiling``: the largest ``tau_infer`` proved to flag no point of a safe box,
checked against the actual strict evaluator (torch) and the bundle graph (onnxruntime) on
dense and adversarial points of the box; ``recommend_tau_infer(..., ceiling=...)`` caps with it."""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import zpml_symbolic as zs
from zpml_runtime.bundle import export_bundle, load_onnx_runtime_bundle
from zpml_runtime.errors import CalibrationError, InvalidConfigError
from zpml_runtime.inference import InferenceConfig
from zpml_runtime.metrics import (
    CertifiedTauCeiling,
    certified_tau_ceiling,
    recommend_tau_infer,
    tau_infer_sweep_from_q_abs,
)
from zpml_symbolic.domain import BoxError

DTYPES = [torch.float32, torch.float64]


def _np(dtype: torch.dtype) -> type:
    return np.float32 if dtype == torch.float32 else np.float64


def _axis(
    lo: Fraction, hi: Fraction, dtype: torch.dtype, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Dense and adversarial values of one variable inside ``[lo, hi]`` (dtype values)."""
    t = _np(dtype)
    a, b = t(float(lo)), t(float(hi))
    a = a if Fraction(float(a)) >= lo else np.nextafter(a, t(np.inf))
    b = b if Fraction(float(b)) <= hi else np.nextafter(b, t(-np.inf))
    vals = [
        np.linspace(float(a), float(b), n).astype(t),
        rng.uniform(float(a), float(b), n).astype(t),
    ]
    edges = []
    for v, step in ((a, t(np.inf)), (b, t(-np.inf))):  # the bounds and a few ulps inside
        for _ in range(4):
            edges.append(v)
            v = np.nextafter(v, step)
    if a <= 0 <= b:  # zero and tiny magnitudes
        info = np.finfo(t)
        edges += [t(0), t(-0.0)] + [
            s * x for s in (1, -1) for x in (info.tiny, info.smallest_subnormal)
        ]
    vals.append(np.array(edges, dtype=t))
    out = np.unique(np.concatenate(vals))
    return out[(out >= a) & (out <= b)]


def _points(
    ceiling: CertifiedTauCeiling,
    declared: dict,
    variables: list[str],
    dtype: torch.dtype,
    n: int = 101,
    seed: int = 0,
) -> torch.Tensor:
    """Every combination of dense and adversarial values per variable (the declared box), plus
    ulp neighbourhoods of the points where |Q| is smallest on the grid."""
    rng = np.random.default_rng(seed)
    box = zs.parse_box(declared) if isinstance(declared, str) else zs.domain.normalize_box(declared)
    axes = [_axis(*box[v], dtype, n, rng) for v in variables]
    return torch.from_numpy(np.array(list(itertools.product(*axes)), dtype=_np(dtype)))


def _around(
    x: torch.Tensor, q: torch.Tensor, box: dict, variables: list[str], k: int = 8
) -> torch.Tensor:
    """Ulp neighbourhoods (inside the box) of the ``k`` points with the smallest |q|."""
    t = x.numpy().dtype.type
    best = x[torch.argsort(q.abs().flatten())[:k]].numpy()
    out = [best]
    for step in (1, 2, 3, 16):
        for sign in (np.inf, -np.inf):
            y = best.copy()
            for _ in range(step):
                y = np.nextafter(y, t(sign))
            out.append(y)
    pts = np.concatenate(out)
    inside = np.ones(len(pts), dtype=bool)
    for j, v in enumerate(variables):
        lo, hi = box[v]
        inside &= (pts[:, j] >= float(lo)) & (pts[:, j] <= float(hi))
    return torch.from_numpy(np.ascontiguousarray(pts[inside]))


def _bottoms(ev: zs.StrictEvaluator, x: torch.Tensor) -> int:
    out = ev(x)
    results = out if isinstance(out, tuple) else (out,)
    return int(sum(int(r.bottom_mask.sum()) for r in results))


def _with_tau(ev: zs.StrictEvaluator, tau: float) -> zs.StrictEvaluator:
    return zs.strict_evaluator(
        ev.model,
        config=InferenceConfig(tau_infer=tau),
        validity_taus=ev.validity_taus,
        certified=ev.certified,
    )


@torch.no_grad()
def _q(ev: zs.StrictEvaluator, x: torch.Tensor) -> torch.Tensor:
    out = ev.model(x)
    outs = out if isinstance(out[0], tuple | list) else (out,)
    return torch.stack([o[1].abs() for o in outs]).min(dim=0).values


#: a float32 bound where 1 + u*v evaluated in float32 at the corner u = -v = A rounds *below*
#: its exact minimum 1 - A**2: a ceiling without the rounding error bound would flag it
A = Fraction(float(np.float32(0.8665)))
CASES = [
    # (expression, declared safe box, parameters, ratio: ceiling vs the smallest |Q| met)
    ("(u + v)/(1 + u*v)", "u=-9/10:9/10, v=-9/10:9/10", {}, 1.0001),  # velocity addition
    ("(u + v)/(1 + u*v)", f"u=-{A}:{A}, v=-{A}:{A}", {}, 1.0001),  # adversarial rounding
    ("1/(x**2 + y**2 + 10**-3)", "x=-1:1, y=-1:1", {}, 1.01),  # min at the origin
    ("(x**2 + 1)/(x - y) + 1/(1 + 1/x)", "x=0.5:2, y=-3:0.25", {}, 1.3),  # Q = (x+1)(x-y), V = x
    ("x/(1e-40*x + 1)", "x=0:1", {}, 1.0001),  # regauged: Q = x + 10**40
    ("1e38/(x + 1e-2)", "x=0.5:1", {}, 1.0001),  # P/Q near the float32 range
    ("(a*x + 1)/(x**2 - b)", "x=-1:1", {"a": 0.3, "b": 2.0}, 1.0001),  # parameters
    ("(x*y*z + 1)/(x*y + y*z + z*x + 1/10)", "x=0:2, y=1/3:1, z=0.1:0.7", {}, 1.3),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("expr", "box", "params", "ratio"), CASES, ids=[c[0] for c in CASES])
def test_no_point_of_the_safe_box_is_bottom_at_the_ceiling(
    expr: str, box: str, params: dict, ratio: float, dtype: torch.dtype
) -> None:
    ev = zs.strict_evaluator(
        zs.parse(expr, parameters=list(params)), init=params or None, dtype=dtype
    )
    c = certified_tau_ceiling(ev, box, dtype=dtype)
    assert c.tau_infer > 0 and c.dtype == str(dtype).removeprefix("torch.")
    variables = list(ev.model.plan.variables)
    n = {1: 4001, 2: 161, 3: 29}[len(variables)]
    x = _points(c, box, variables, dtype, n)
    declared = zs.parse_box(box)
    x = torch.cat([x, _around(x, _q(ev, x), declared, variables)])
    strict = _with_tau(ev, c.tau_infer)
    assert _bottoms(strict, x) == 0, f"a point of the safe box is bottom at tau_infer={c.tau_infer}"
    # the ceiling is a certified lower bound of the smallest |Q| of the (canonical) program...
    q_min = float(_canonical_q(ev, x).min())
    assert c.tau_infer <= q_min
    # ...and not a loose one: slightly above the smallest |Q| met, some point is flagged
    assert q_min <= ratio * c.tau_infer
    assert _bottoms(_with_tau(ev, float(np.nextafter(q_min, np.inf)) * 1.0000001), x) > 0


def _canonical_q(ev: zs.StrictEvaluator, x: torch.Tensor) -> torch.Tensor:
    """|Q| in the canonical gauge (the emitted one times 2**e)."""
    e = ev.model.plan.gauge(0).pq
    return _q(ev, x).double() * 2.0**e


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_the_bundle_graph_agrees(tmp_path: Path, dtype: torch.dtype) -> None:
    expr, box = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)", "x=0.5:2, y=-3:0.25"
    ev = zs.strict_evaluator(zs.parse(expr), dtype=dtype)
    c = certified_tau_ceiling(ev, box, dtype=dtype)
    x = _points(c, box, ["x", "y"], dtype, 161)
    strict = zs.strict_evaluator(
        zs.parse(expr), config=InferenceConfig(tau_infer=c.tau_infer), dtype=dtype
    )
    export_bundle(strict, tmp_path / "b", example_inputs=(x[:4],), input_box=box)
    runtime = load_onnx_runtime_bundle(tmp_path / "b")
    assert runtime.domain.defined_everywhere
    decoded, bottom, gap = runtime.run(x.numpy())
    assert not bottom.any() and np.isfinite(decoded).all()


def test_multi_output_certified_masks_and_compute_dtype() -> None:
    ev = zs.strict_evaluator(["1/(x - y)", "x/(1 + x*y)"])
    c = certified_tau_ceiling(ev, "x=0:1, y=2:3")
    assert c.min_abs_q == (Fraction(1), Fraction(1)) and 0.999 < c.tau_infer < 1
    x = _points(c, "x=0:1, y=2:3", ["x", "y"], torch.float32, 201)
    assert _bottoms(_with_tau(ev, c.tau_infer), x) == 0
    # certified masks: |Q| must also exceed its per-sample rounding bound
    ev = zs.strict_evaluator(zs.parse("(u + v)/(1 + u*v)"), certified=True)
    c = certified_tau_ceiling(ev, "u=-0.9:0.9, v=-0.9:0.9")
    x = _points(c, "u=-0.9:0.9, v=-0.9:0.9", ["u", "v"], torch.float32, 201)
    assert _bottoms(_with_tau(ev, c.tau_infer), x) == 0
    # (x - y)**2 + 1e-6 in float32: the rounding error can reach the margin; float64 compute
    # makes it safe
    expr, box = "1/((x - y)**2 + 10**-6)", "x=0:1, y=0:1"
    with pytest.raises(
        CalibrationError,
        match="the rounding error of Q in float32 .* can reach its certified minimum",
    ):
        certified_tau_ceiling(zs.strict_evaluator(zs.parse(expr)), box)
    ev = zs.strict_evaluator(zs.parse(expr), compute_dtype=torch.float64)
    c = certified_tau_ceiling(ev, box)
    assert c.evaluation_dtype == "float64" and c.dtype == "float32"
    x = _points(c, box, ["x", "y"], torch.float32, 201)
    assert _bottoms(_with_tau(ev, c.tau_infer), x) == 0


def test_validity_factors_are_checked() -> None:
    ev = zs.strict_evaluator(zs.parse("1/(1 + 1/x) + 2/(x - 3)"), validity_taus=0.25)
    c = certified_tau_ceiling(ev, "x=0.5:2")
    (v,) = c.validity
    assert (v.factor, v.min_abs, v.tau, v.given) == ("x", Fraction(1, 2), 0.5, 0.25)
    x = _points(c, "x=0.5:2", ["x"], torch.float32, 4001)
    assert _bottoms(_with_tau(ev, c.tau_infer), x) == 0
    loose = zs.strict_evaluator(ev.model, validity_taus=0.6)
    with pytest.raises(
        CalibrationError,
        match=re.escape(
            "validity factor 0 (x) of output 0: its threshold validity_taus=0.6 can flag"
        )
        + ".*lower it to at most 0.5",
    ):
        certified_tau_ceiling(loose, "x=0.5:2")
    assert _bottoms(_with_tau(loose, c.tau_infer), x) > 0  # indeed


def test_an_unsafe_box_is_refused_with_the_witness() -> None:
    ev = zs.strict_evaluator(zs.parse("(u + v)/(1 + u*v)"))
    with pytest.raises(
        CalibrationError,
        match=re.escape("the declared safe box is not safe for any tau_infer: undefined somewhere")
        + ".*exact zero at u=-1, v=1",
    ):
        certified_tau_ceiling(ev, {"u": (-1, 1), "v": (-1, 1)})
    with pytest.raises(
        CalibrationError, match="P/Q can reach 1e\\+40 on the box, beyond the float32 range"
    ):
        certified_tau_ceiling(zs.strict_evaluator(zs.parse("1e38/(x + 1e-2)")), "x=0:1")


@pytest.mark.parametrize(
    ("box", "field", "message"),
    [
        ("u=0:1, w=0:1", "w", "safe_box names 'w', which is not an input variable"),
        ("u=0:1", "v", "safe_box gives no range for input variable(s) ['v']"),
        ("u=0:1, v=1:0", "v", "box interval for 'v' is empty"),
        (
            "u=0:1, v=0:1e39",
            "v",
            "safe_box bound 1000000000000000000000000000000000000000 for 'v' is outside the float32 range",
        ),
    ],
)
def test_bad_boxes_name_the_variable(box: str, field: str, message: str) -> None:
    ev = zs.strict_evaluator(zs.parse("(u + v)/(1 + u*v)"))
    with pytest.raises(BoxError, match=re.escape(message)) as info:
        certified_tau_ceiling(ev, box)
    assert info.value.field == field


def test_parameters_and_bad_models() -> None:
    c = certified_tau_ceiling("a/(x - a)", "x=0:1/4", parameters={"a": 0.5})
    assert c.min_abs_q == (Fraction(1, 4),) and 0.2499 < c.tau_infer < 0.25
    with pytest.raises(BoxError, match="names 'a', which is a parameter"):
        certified_tau_ceiling("a/(x - a)", "x=0:1/4, a=0:1", parameters={"a": 0.5})
    fru = zs.flatten("a/(x - a)", parameters=["a"])
    with pytest.raises(InvalidConfigError, match=re.escape("parameters= gives no value for ['a']")):
        certified_tau_ceiling(fru, "x=0:1/4")
    assert certified_tau_ceiling(fru, "x=0:1/4", parameters={"a": 0.5}).tau_infer == c.tau_infer
    with pytest.raises(
        BoxError, match=re.escape("safe_box gives no range for input variable(s) ['a']")
    ):
        certified_tau_ceiling("a/(x - a)", "x=0:1/4", parameters={"b": 1.0})  # a is an input
    with pytest.raises(InvalidConfigError, match="needs a strict evaluator, a compiled module"):
        certified_tau_ceiling(3.5, "x=0:1")
    with pytest.raises(InvalidConfigError, match="dtype must be float32 or float64"):
        certified_tau_ceiling("1/x", "x=1:2", dtype="float16")


def test_random_quadratic_denominators_never_flag_a_point() -> None:
    """Random rational functions (seeded): whenever a ceiling is returned, no dense or
    adversarial point of the box is bottom with it, in float32 and float64."""
    rng = np.random.default_rng(20240611)
    checked = refused = 0
    for case in range(24):
        c = [int(v) for v in rng.integers(-4, 5, size=6)]
        expr = f"(x - {c[0]}*y)/({c[1]}*x**2 + {c[2]}*x*y + {c[3]}*y**2 + {c[4]}*x + {c[5]} + 1/7)"
        lo = rng.integers(-3, 2, size=2)
        box = f"x={lo[0]}:{lo[0] + rng.integers(1, 3)}, y={lo[1]}/2:{lo[1] + 1}/2"
        dtype = DTYPES[case % 2]
        ev = zs.strict_evaluator(zs.parse(expr), dtype=dtype)
        try:
            ceiling = certified_tau_ceiling(ev, box, dtype=dtype)
        except CalibrationError:
            refused += 1
            continue
        x = _points(ceiling, box, ["x", "y"], dtype, 61, seed=case)
        x = torch.cat([x, _around(x, _q(ev, x), zs.parse_box(box), ["x", "y"])])
        assert _bottoms(_with_tau(ev, ceiling.tau_infer), x) == 0, (expr, box, dtype)
        assert ceiling.tau_infer <= float(_canonical_q(ev, x).min())
        checked += 1
    assert checked >= 12 and refused >= 1  # both outcomes are exercised


# ----------------------------------------------------------------------------- recommend


def _sweep() -> object:
    q = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 2.0, 1e-5, 1e-4])
    in_range = np.array([True] * 8 + [False] * 2)
    return tau_infer_sweep_from_q_abs(
        q_abs=q, is_in_range=in_range, taus=[1e-3, 0.01, 0.15, 0.19, 0.25, 0.35]
    )


def test_recommendation_is_capped_by_the_ceiling() -> None:
    curves = _sweep()
    free = recommend_tau_infer(curves, max_false_bottom_rate=0.5)
    assert free.tau_infer == 0.35 and free.certified_ceiling is None
    ev = zs.strict_evaluator(zs.parse("(u + v)/(1 + u*v)"))
    ceiling = certified_tau_ceiling(ev, "u=-0.9:0.9, v=-0.9:0.9")
    capped = recommend_tau_infer(curves, max_false_bottom_rate=0.5, ceiling=ceiling)
    assert capped.tau_infer == 0.15 and capped.certified_ceiling == ceiling.tau_infer
    assert capped.reason.endswith(
        f"capped by the certified ceiling {ceiling.tau_infer:.6g} of the safe region"
    )
    assert capped.to_dict()["certified_ceiling"] == ceiling.tau_infer
    assert recommend_tau_infer(curves, max_false_bottom_rate=0.5, ceiling=0.2).tau_infer == 0.19
    # a cap above the free recommendation changes nothing
    same = recommend_tau_infer(curves, max_false_bottom_rate=0.5, ceiling=10.0)
    assert same.tau_infer == 0.35 and "capped" not in same.reason
    with pytest.raises(
        CalibrationError, match=re.escape("is at or below the certified ceiling 0.0001")
    ):
        recommend_tau_infer(curves, max_false_bottom_rate=0.5, ceiling=1e-4)
    with pytest.raises(Exception, match="ceiling must be a CertifiedTauCeiling"):
        recommend_tau_infer(curves, max_false_bottom_rate=0.5, ceiling="0.2x")
    assert math.isfinite(ceiling.tau_infer)
