"""The executable mask specification (``zpml_core.spec``) and the core copies of its rule.

``zpml_core.spec.classify`` states docs/semantics.md section 3 for one sample
with exact rational comparisons. This file checks the specification against
the table (hand-derived rows) and against IEEE arithmetic, then tests every
core implementation of the rule differentially against it: the numpy kernel,
the eager torch kernel (small batches and batches large enough for its
whole-tensor shortcuts), the functional torch kernel (``torch.compile``/trace
path), the autograd path, ``numerical_hazard_mask`` and the ONNX strict
decoder. Inputs are drawn from :func:`zpml_core.spec.boundary_values`: both
zeros, the smallest subnormal, the dtype values at and next to every
threshold (so ``|Q| == tau`` is hit exactly), NaN, +-inf and the largest
finite value (quotients that overflow), mixed with arbitrary floats.
Other copies are tested in ``tests/symbolic/flatten/test_spec_fru.py`` and
``tests/runtime/test_spec_runtime.py``.

Mutation check (single-line mutants applied with exact string replacement in a
separate ``git worktree`` of HEAD, run with ``PYTHONPATH`` pointing at it; every
mutant is killed, by the named test):

== ======================================================== ==========================================================
K1 kernels.numpy_below ``aV < t`` -> ``aV <= t``              test_numpy_strict_inference_matches_spec
K2 kernels.torch_core_fast ``torch.lt(aq, t)`` -> ``le``      test_torch_eager_matches_spec
K3 kernels.below_functional ``aV < t`` -> ``<=``              test_torch_functional_path_matches_spec
K4 kernels.torch_factor_fast ``torch.lt`` -> ``torch.le``     test_torch_eager_matches_spec
K5 kernels.numpy_core ``aq < tr`` -> ``<=`` (gap)             test_numpy_strict_inference_matches_spec
S1 strict gap ``torch.gt(below_train, bottom)`` -> ``ge``     test_torch_eager_matches_spec
O1 onnx_graph ``Less`` -> ``LessOrEqual``                     test_onnx_strict_decoder_matches_spec
F1 fru.structural_validity_failures ``<`` -> ``<=``           test_spec_fru::test_structural_validity_failures_match_spec
F2 fru.evaluate ignores zero validity factors                 test_spec_fru::test_evaluate_and_explain_match_spec
A1 torch_adjoint scale rule ``float(c)`` -> ``abs(float(c))``  test_spec_fru::test_adjoint_gradients_match_exact_derivatives
A2 torch_adjoint scale pass-through ``coef *= abs(c)``         test_spec_fru::test_adjoint_gradients_match_exact_derivatives
R1 report_summary._q_summary ``finite < tau_infer`` -> ``<=`` test_spec_runtime::test_q_summary_counts_match_spec
R2 report_summary._q_summary back to the expanded monomials   test_spec_runtime::test_q_summary_20_pole_sum_is_the_programs_q
T1 tau_sweep ``searchsorted(side="left")`` -> ``"right"``      test_spec_runtime::test_tau_sweep_matches_spec
M1 monitor hazard without ``q == 0`` (the old line)           test_spec_runtime::test_monitor_hazard_and_histogram_match_spec
M2 monitor histogram ``side="right"`` -> ``"left"``            test_spec_runtime::test_monitor_hazard_and_histogram_match_spec
C1 ExactPoint.bottomed ``v is None or v == 0`` -> ``v == 0``   test_spec_runtime::test_explain_exact_matches_spec
C2 ExactPoint.fault ``bool(nonfinite)`` (the old rule)         test_spec_runtime::test_explain_exact_matches_spec
== ======================================================== ==========================================================
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zpml_core import spec
from zpml_core.errors import InvalidConfigError, ThresholdUnderflowError, ZeroProofError
from zpml_core.kernels import ANY_TEST_MIN_NUMEL
from zpml_runtime.inference import InferenceConfig, strict_inference

TORCH_DT = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
NAN, INF = math.nan, math.inf


# --------------------------------------------------------------------------- the table


def _v(**kw):
    return spec.classify(**kw)


@pytest.mark.parametrize(
    ("kw", "expect"),
    [
        # |Q| == tau exactly is not below the threshold; one ulp less is
        (dict(p=1.0, q=0.5, tau_infer=0.5), (False, False, 0, 2.0)),
        (dict(p=1.0, q=-math.nextafter(0.5, 0), tau_infer=0.5), (False, True, 2, NAN)),
        # exact zeros are bottom whatever the threshold, either sign
        (dict(p=1.0, q=0.0, tau_infer=0.0), (False, True, 2, NAN)),
        (dict(p=1.0, q=-0.0, tau_infer=0.0), (False, True, 2, NAN)),
        # tau = 0: the smallest subnormal is not bottom (and 1/it overflows: a fault)
        (dict(p=2.0**-60, q=5e-324, tau_infer=0.0), (False, False, 0, 2.0**1014)),
        (dict(p=1.0, q=5e-324, tau_infer=0.0), (True, False, 1, NAN)),
        # ... but it is below any representable positive threshold: mixed
        (dict(p=1.0, q=5e-324, tau_infer=1e-300), (True, True, 3, NAN)),
        # non-finite P or Q: fault; Q = 0 with P = inf: mixed
        (dict(p=NAN, q=1.0), (True, False, 1, NAN)),
        (dict(p=1.0, q=INF), (True, False, 1, NAN)),
        (dict(p=1.0, q=-INF, tau_infer=1e300), (True, False, 1, NAN)),
        (dict(p=INF, q=0.0), (True, True, 3, NAN)),
        # quotient overflow is a fault (finite P and Q)
        (dict(p=1.7976931348623157e308, q=0.5), (True, False, 1, NAN)),
        # factors: zero is semantic, NaN is a fault, both at once is mixed
        (dict(p=1.0, q=2.0, factors=[0.0]), (False, True, 2, NAN)),
        (dict(p=1.0, q=2.0, factors=[NAN]), (True, False, 1, NAN)),
        (dict(p=1.0, q=2.0, factors=[-0.0, INF]), (True, True, 3, NAN)),
        (dict(p=1.0, q=2.0, factors=[0.25], taus=0.25), (False, False, 0, 0.5)),
        (dict(p=1.0, q=2.0, factors=[0.25], taus=[0.5]), (False, True, 2, NAN)),
    ],
)
def test_table_rows(kw: dict, expect: tuple) -> None:
    v = _v(**kw)
    fault, semantic, code, decoded = expect
    assert (v.fault, v.semantic, v.provenance) == (fault, semantic, code)
    assert v.bottom == (fault or semantic)
    assert (math.isnan(v.decoded) and math.isnan(decoded)) or v.decoded == decoded


def test_gap_is_half_open_and_disjoint_from_bottom() -> None:
    kw = dict(p=1.0, tau_infer=0.5, tau_train=1.0)
    assert spec.classify(q=0.5, **kw).gap  # tau_infer <= |Q|
    assert not spec.classify(q=1.0, **kw).gap  # |Q| < tau_train
    assert spec.classify(q=-0.75, **kw).gap
    assert not spec.classify(q=0.75, factors=[0.0], **kw).gap  # bottom rows are never gap
    assert not spec.classify(q=0.75, **{**kw, "tau_train": None}).gap


def test_exact_mode_keeps_fractions_and_never_overflows() -> None:
    v = spec.classify(Fraction(10) ** 400, Fraction(1, 3), dtype=None)
    assert not v.bottom and v.decoded == Fraction(3) * Fraction(10) ** 400
    assert spec.classify(Fraction(10) ** 400, 3, dtype="float64").fault


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(tau_infer=-1.0), InvalidConfigError, "tau_infer must be finite and >= 0"),
        (dict(tau_infer=NAN), InvalidConfigError, "tau_infer"),
        (dict(tau_infer=True), InvalidConfigError, "tau_infer must be a finite real"),
        (dict(tau_infer=1.0, tau_train=0.5), InvalidConfigError, "tau_train=0.5 must be >="),
        (
            dict(tau_infer=1e-9, dtype="float16"),
            ThresholdUnderflowError,
            "smallest positive float16",
        ),
        (dict(factors=[1.0], taus=[0.0, 1.0]), InvalidConfigError, "taus has 2 entries"),
        (dict(dtype="float8"), InvalidConfigError, "dtype='float8' is not one of"),
    ],
)
def test_bad_thresholds_are_typed_errors(kw: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match) as info:
        spec.classify(1.0, 1.0, **kw)
    assert isinstance(info.value, ZeroProofError) and isinstance(info.value, ValueError)


def test_reference_masks_refuses_unequal_shapes() -> None:
    with pytest.raises(InvalidConfigError, match=r"factors\[0\] has \(3,\), Q has \(2,\)"):
        spec.reference_masks(np.ones(2), np.ones(2), [np.ones(3)])


# --------------------------------------------------------------------------- IEEE agreement


@given(
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.floats(width=32, allow_nan=False, allow_infinity=False).filter(lambda b: b != 0),
)
def test_round_to_dtype_is_ieee_division(a: float, b: float) -> None:
    with np.errstate(all="ignore"):
        want = float(np.float32(a) / np.float32(b))
    assert spec.round_to_dtype(Fraction(a) / Fraction(b), "float32") == want
    try:
        want64 = a / b
    except OverflowError:  # CPython raises instead of returning inf
        want64 = math.copysign(INF, a) * math.copysign(1.0, b)
    assert spec.round_to_dtype(Fraction(a) / Fraction(b), "float64") == want64


@pytest.mark.parametrize("dtype", spec.DTYPES)
def test_format_constants_match_torch(dtype: str) -> None:
    info = torch.finfo(TORCH_DT[dtype])
    assert float(spec.largest_finite(dtype)) == info.max
    assert float(spec.smallest_subnormal(dtype)) == info.smallest_normal * info.eps
    top = torch.tensor(info.max, dtype=TORCH_DT[dtype])
    below = torch.nextafter(top, torch.zeros_like(top)).item()
    half_ulp = (Fraction(info.max) - Fraction(below)) / 2  # ties round to even: inf
    assert spec.round_to_dtype(spec.largest_finite(dtype) + half_ulp, dtype) == INF
    assert (
        spec.round_to_dtype(spec.largest_finite(dtype) + half_ulp * Fraction(99, 100), dtype)
        == info.max
    )


# --------------------------------------------------------------------------- strategies


def _thresholds(dtype: str) -> st.SearchStrategy[float]:
    tiny = float(spec.smallest_subnormal(dtype))
    # representable and non-representable thresholds (the kernels round the latter up)
    return st.one_of(
        st.sampled_from([0.0, tiny, 3 * tiny, 2.0**-10, 1e-3, 0.75, 1.0, 2.0, 1e5]),
        st.floats(min_value=max(tiny, 1e-30), max_value=1e3),
    )


def _any_value(dtype: str) -> st.SearchStrategy[float]:
    width = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}[dtype]
    raw = st.floats(width=width, allow_subnormal=True)
    if dtype == "bfloat16":
        raw = raw.map(
            lambda v: spec.round_to_dtype(Fraction(v), "bfloat16") if math.isfinite(v) else v
        )
    return raw


@st.composite
def problems(draw, dtypes=spec.DTYPES, max_factors: int = 2, max_n: int = 10):
    """``(dtype, P, Q, factors, tau_infer, tau_train, taus)`` hitting the boundaries on purpose."""
    dtype = draw(st.sampled_from(dtypes))
    tau = draw(_thresholds(dtype))
    tau_train = draw(st.one_of(st.none(), _thresholds(dtype).filter(lambda t: t >= tau)))
    k = draw(st.integers(0, max_factors))
    taus = [draw(_thresholds(dtype)) for _ in range(k)]
    pool = spec.boundary_values(dtype, [tau, *(t for t in [tau_train] if t), *taus])
    value = st.one_of(st.sampled_from(pool), st.sampled_from(pool), _any_value(dtype))
    n = draw(st.integers(1, max_n))
    P = draw(st.lists(value, min_size=n, max_size=n))
    Q = draw(st.lists(value, min_size=n, max_size=n))
    factors = [draw(st.lists(value, min_size=n, max_size=n)) for _ in range(k)]
    return dtype, P, Q, factors, tau, tau_train, taus


def _reference(dtype, P, Q, factors, tau, tau_train, taus):
    return spec.reference_masks(
        np.array(P),
        np.array(Q),
        [np.array(v) for v in factors],
        tau_infer=tau,
        tau_train=tau_train,
        taus=taus,
        dtype=dtype,
    )


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x).astype(np.float64) if np.asarray(x).dtype.kind == "f" else np.asarray(x)


def _same(result, ref, n: int | None = None) -> None:
    """The strict result equals the reference (first ``n`` entries of a tiled batch)."""

    def head(x):
        x = _np(x).reshape(-1)
        return x[:n] if n is not None else x

    for name in ("bottom_mask", "gap_mask", "fault_mask", "semantic_bottom_mask"):
        np.testing.assert_array_equal(head(getattr(result, name)), ref[name], err_msg=name)
    np.testing.assert_array_equal(head(result.bottom_provenance), ref["bottom_provenance"])
    got, want = head(result.decoded), ref["decoded"]
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.all(
        got[~np.isnan(got)] == want[~np.isnan(want)]
    )
    for i, (f, s) in enumerate(
        zip(result.factor_fault_masks, result.factor_semantic_masks, strict=True)
    ):
        np.testing.assert_array_equal(head(f), ref["factor_fault_masks"][i], err_msg=f"fault {i}")
        np.testing.assert_array_equal(head(s), ref["factor_semantic_masks"][i], err_msg=f"sem {i}")


def _config(tau, tau_train) -> InferenceConfig:
    return InferenceConfig(tau_infer=tau, tau_train=tau_train)


def _numpy_array(values, dtype):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.asarray(values, dtype=np.float64).astype(ml_dtypes.bfloat16)
    return np.asarray(values, dtype=np.float64).astype(dtype)


# --------------------------------------------------------------------------- core copies


@given(problems())
def test_numpy_strict_inference_matches_spec(problem) -> None:
    dtype, P, Q, factors, tau, tau_train, taus = problem
    ref = _reference(*problem)
    result = strict_inference(
        _numpy_array(P, dtype),
        _numpy_array(Q, dtype),
        config=_config(tau, tau_train),
        validity_factors=[_numpy_array(v, dtype) for v in factors] or None,
        validity_taus=taus,
    )
    _same(result, ref)


def _tensors(problem, tile: int = 1, requires_grad: bool = False):
    dtype, P, Q, factors, *_ = problem
    dt = TORCH_DT[dtype]

    def t(values):
        return torch.tensor(values * tile, dtype=torch.float64).to(dt)

    p, q = t(P), t(Q)
    if requires_grad:
        p.requires_grad_(True)
        q.requires_grad_(True)
    return p, q, [t(v) for v in factors] or None


@given(problems(), st.booleans())
def test_torch_eager_matches_spec(problem, large: bool) -> None:
    """Eager kernel; ``large`` tiles the batch past ``ANY_TEST_MIN_NUMEL`` (whole-tensor shortcuts)."""
    dtype, P, _, _, tau, tau_train, taus = problem
    tile = ANY_TEST_MIN_NUMEL // len(P) + 1 if large else 1
    p, q, vs = _tensors(problem, tile)
    result = strict_inference(
        p, q, config=_config(tau, tau_train), validity_factors=vs, validity_taus=taus
    )
    ref = _reference(*problem)
    _same(result, ref, n=len(P))
    if large:  # the tiles are copies of the first block
        b = result.bottom_mask.view(tile, len(P))
        assert bool((b == b[0]).all())


@settings(max_examples=30)
@given(problems(max_n=6), st.booleans())
def test_torch_autograd_path_matches_spec(problem, large: bool) -> None:
    dtype, P, _, _, tau, tau_train, taus = problem
    tile = ANY_TEST_MIN_NUMEL // len(P) + 1 if large else 1
    p, q, vs = _tensors(problem, tile, requires_grad=True)
    result = strict_inference(
        p, q, config=_config(tau, tau_train), validity_factors=vs, validity_taus=taus
    )
    _same(result, _reference(*problem), n=len(P))
    result.decoded.nan_to_num(0.0).sum().backward()
    bottom = result.bottom_mask
    assert bool((p.grad[bottom] == 0).all()) and bool((q.grad[bottom] == 0).all())


@settings(max_examples=40)
@given(problems())
def test_torch_functional_path_matches_spec(problem) -> None:
    """The functional kernels (used under ``torch.compile`` and tracing)."""
    import zpml_core.strict as strict_mod

    _, _, _, _, tau, tau_train, taus = problem
    p, q, vs = _tensors(problem)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(strict_mod, "_use_functional", lambda: True)
        result = strict_inference(
            p, q, config=_config(tau, tau_train), validity_factors=vs, validity_taus=taus
        )
    _same(result, _reference(*problem))


@given(problems(max_factors=0), st.sampled_from(["numpy", "torch"]))
def test_numerical_hazard_mask_is_below_threshold(problem, backend: str) -> None:
    dtype, _, Q, _, tau, _, _ = problem
    if backend == "numpy" and dtype == "bfloat16":
        return
    q = (
        _numpy_array(Q, dtype)
        if backend == "numpy"
        else torch.tensor(Q, dtype=torch.float64).to(TORCH_DT[dtype])
    )
    from zpml_core.strict import numerical_hazard_mask

    got = _np(numerical_hazard_mask(q, threshold=tau)).reshape(-1).tolist()
    assert got == [spec.below_threshold(v, tau) for v in Q]


@settings(max_examples=30)
@given(problems(dtypes=("float32", "float64"), max_n=8))
def test_onnx_strict_decoder_matches_spec(problem) -> None:
    ort = pytest.importorskip("onnxruntime")
    from zpml_symbolic.emit.backends.onnx import strict_decoder_model

    dtype, P, Q, factors, tau, tau_train, taus = problem
    model = strict_decoder_model(
        len(factors), config=_config(tau, tau_train), validity_taus=taus, dtype=dtype
    )
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"P": np.asarray(P, dtype=dtype), "Q": np.asarray(Q, dtype=dtype)}
    if factors:
        feed["V"] = np.stack([np.asarray(v, dtype=dtype) for v in factors], axis=-1)
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, feed), strict=True))
    ref = _reference(*problem)
    for name in (
        "bottom_mask",
        "gap_mask",
        "fault_mask",
        "semantic_bottom_mask",
        "bottom_provenance",
    ):
        np.testing.assert_array_equal(out[name], ref[name], err_msg=name)
    got = out["decoded"].astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(ref["decoded"]))
    assert np.all(got[~np.isnan(got)] == ref["decoded"][~np.isnan(got)])
    for i in range(len(factors)):
        pre = f"structural_validity_factor_{i}"
        np.testing.assert_array_equal(out[f"{pre}_fault_mask"], ref["factor_fault_masks"][i])
        np.testing.assert_array_equal(
            out[f"{pre}_semantic_bottom_mask"], ref["factor_semantic_masks"][i]
        )


@given(problems(max_n=4))
def test_classify_invariants(problem) -> None:
    dtype, P, Q, factors, tau, tau_train, taus = problem
    for n, (p, q) in enumerate(zip(P, Q, strict=True)):
        v = spec.classify(
            p,
            q,
            [f[n] for f in factors],
            tau_infer=tau,
            tau_train=tau_train,
            taus=taus,
            dtype=dtype,
        )
        assert v.bottom == (v.fault or v.semantic)
        assert not (v.gap and v.bottom)
        assert v.provenance == v.fault + 2 * v.semantic
        assert math.isnan(v.decoded) == v.bottom
        # scaling P and Q by -1 changes nothing but the sign of the value
        w = spec.classify(
            -p,
            -q,
            [f[n] for f in factors],
            tau_infer=tau,
            tau_train=tau_train,
            taus=taus,
            dtype=dtype,
        )
        assert (w.fault, w.semantic, w.gap) == (v.fault, v.semantic, v.gap)
        # exact zeros are bottom for every threshold: no setting fails open
        assert spec.classify(p, 0.0, tau_infer=tau, dtype=dtype).semantic


# --------------------------------------------------------------------------- the document

ROOT = Path(__file__).resolve().parents[2]


def test_docs_semantics_is_the_shared_page_verbatim() -> None:
    """docs/semantics.md is SEMANTICS.md plus a final section on the executable spec."""
    ours = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    head, sep, tail = ours.partition("\n## Executable specification (this repository)\n")
    assert sep and "zpml_core/spec.py" in tail
    shared = ROOT.parent / "shared" / "docs" / "SEMANTICS.md"
    if not shared.is_file():
        pytest.skip("the shared SEMANTICS.md is not next to this checkout")
    assert head.rstrip("\n") == shared.read_text(encoding="utf-8").rstrip("\n")


def test_no_reference_to_a_missing_semantics_page() -> None:
    """Code and docs cite docs/semantics.md, never the old SEMANTICS.md path."""
    stale = []
    for pattern in ("zpml_*/**/*.py", "tests/**/*.py", "benchmarks/**/*.py", "docs/*.md", "*.md"):
        for path in ROOT.glob(pattern):
            if path.name in ("semantics.md", Path(__file__).name) or ".venv" in path.parts:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                bare = line.replace("docs/semantics.md", "").replace("MASK_SEMANTICS", "")
                if "SEMANTICS.md" in bare or "SEMANTICS §" in bare:
                    stale.append(f"{path.relative_to(ROOT)}:{n}")
    assert not stale, f"cite docs/semantics.md instead: {stale}"
