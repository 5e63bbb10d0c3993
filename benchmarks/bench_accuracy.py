"""Accuracy of the decoded value against exact evaluation of the original tree.

Run as ``python benchmarks/bench_accuracy.py --out FILE [--quick]`` (protocol
of ``benchmarks/run_all.py``). For E1-E3 (see ``bench_emit.py``) and a corpus
of seeded random rational trees, at random points in the stated ranges, it
compares, in float32 and float64:

* ours: the strict evaluator's ``decoded`` (torch) and ``numpy_evaluator``;
* ``sympy.lambdify(modules="torch")`` of the original tree (the baseline);
* for illustration, the naive expanded ``P/Q``: ``lambdify`` of
  ``cancel(together(expr))``.

The reference is exact: a walk (exact rationals, python-flint) over the original sympy tree at the
float inputs taken as exact binary rationals (sharing no code with the
compiler). Points where the exact value is bottom (or exactly 0, where a
relative error is undefined) are left out. A non-finite result where the
exact value is a finite number counts as an infinite error.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import flint
import numpy as np
import sympy as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_emit import cases  # noqa: E402

import zpml_symbolic as zs  # noqa: E402

X, Y, Z = sp.symbols("x y z")
DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
#: unit roundoff per dtype: the absolute floor of the "2x lambdify" comparison
UNIT = {"float32": 2.0**-24, "float64": 2.0**-53}

# ----------------------------------------------------------------------------- exact reference


class _Bottom(Exception):
    pass


Exact = Callable[[list[flint.fmpq]], flint.fmpq]


def exact_fn(expr: sp.Basic, variables: tuple[sp.Symbol, ...]) -> Exact:
    """The tree as written, as a closure over exact rationals (python-flint ``fmpq``).

    Strict: raises ``_Bottom`` when any division of the tree divides by 0. A
    sympy Float counts as its exact binary value.
    """
    index = {s: i for i, s in enumerate(variables)}

    def build(e: sp.Basic) -> Exact:
        if isinstance(e, sp.Symbol):
            i = index[e]
            return lambda v: v[i]
        if isinstance(e, sp.Rational | sp.Float):
            r = sp.Rational(e)
            c = flint.fmpq(int(r.p), int(r.q))
            return lambda v: c
        if isinstance(e, sp.UnevaluatedExpr):
            return build(e.args[0])
        if isinstance(e, sp.Add | sp.Mul):
            fs = [build(a) for a in e.args]
            add = isinstance(e, sp.Add)

            def fold(v: list[flint.fmpq]) -> flint.fmpq:
                acc = fs[0](v)
                for f in fs[1:]:
                    acc = acc + f(v) if add else acc * f(v)
                return acc

            return fold
        if isinstance(e, sp.Pow):
            fb, n = build(e.base), int(e.exp)

            def power(v: list[flint.fmpq]) -> flint.fmpq:
                b = fb(v)
                if n < 0 and b == 0:
                    raise _Bottom
                return b**n

            return power
        raise TypeError(f"exact evaluator does not know {type(e).__name__}")

    return build(expr)


def fq(v: float) -> flint.fmpq:
    """A float as the exact rational it is."""
    return flint.fmpq(*float(v).as_integer_ratio())


def exact_values(
    expr: sp.Expr, variables: tuple[sp.Symbol, ...], pts: np.ndarray
) -> list[flint.fmpq | None]:
    """Exact value at each row of ``pts`` (``None`` = bottom)."""
    f = exact_fn(expr, variables)
    out: list[flint.fmpq | None] = []
    for row in pts.tolist():
        try:
            out.append(f([fq(c) for c in row]))
        except _Bottom:
            out.append(None)
    return out


def rel_errors(approx: np.ndarray, exact: list[flint.fmpq | None]) -> np.ndarray:
    """Exact relative errors (rounded to float64) where ``exact`` is a non-zero number."""
    errs = []
    for a, e in zip(approx.tolist(), exact, strict=True):
        if e is None or e == 0:
            continue
        if not np.isfinite(a):
            errs.append(np.inf)
            continue
        d = abs(fq(a) - e) / abs(e)
        errs.append(int(d.p) / int(d.q))
    return np.asarray(errs, dtype=np.float64)


# ----------------------------------------------------------------------------- methods

Method = Callable[[np.ndarray], np.ndarray]


def methods(
    expr: sp.Expr, *, with_expanded: bool = True
) -> tuple[tuple[sp.Symbol, ...], dict[str, Method]]:
    """Input columns (our modules' order) and name -> function of a ``[n, n_vars]`` array
    (float32 or float64) returning the value."""
    strict = zs.strict_evaluator(expr)
    by_name = {s.name: s for s in expr.free_symbols}
    variables = tuple(by_name[n] for n in strict.model.variables)
    npe = zs.numpy_evaluator(expr)
    lam = sp.lambdify(variables, expr, modules="torch")

    def ours_torch(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return strict(torch.from_numpy(x)).decoded.numpy()

    def ours_numpy(x: np.ndarray) -> np.ndarray:
        return np.asarray(npe(x).decoded)

    def torch_cols(f: Callable[..., object]) -> Method:
        def g(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(x)
            with torch.no_grad():
                v = f(*[t[:, i] for i in range(t.shape[1])])
            v = torch.as_tensor(v, dtype=t.dtype)
            return torch.broadcast_to(v, t.shape[:1]).numpy()

        return g

    out: dict[str, Method] = {
        "ours (strict evaluator, torch)": ours_torch,
        "ours (numpy_evaluator)": ours_numpy,
        "lambdify(torch), original tree": torch_cols(lam),
    }
    if with_expanded:
        # integer coefficients as (correctly rounded) floats: they exceed int64 for E3
        expanded = sp.N(sp.cancel(sp.together(expr)), 17)
        out["expanded P/Q (lambdify of cancel(together))"] = torch_cols(
            sp.lambdify(variables, expanded, modules="torch")
        )
    return variables, out


OURS = "ours (strict evaluator, torch)"
OURS_NP = "ours (numpy_evaluator)"
LAM = "lambdify(torch), original tree"
EXP = "expanded P/Q (lambdify of cancel(together))"


@dataclass
class Stats:
    median: float
    p99: float
    n: int


def evaluate(
    expr: sp.Expr, lo: float, hi: float, n: int, seed: int, *, with_expanded: bool = True
) -> dict[str, dict[str, Stats]]:
    """dtype -> method -> error statistics at ``n`` random points in ``[lo, hi]^k``."""
    variables, ms = methods(expr, with_expanded=with_expanded)
    rng = np.random.default_rng(seed)
    pts64 = rng.uniform(lo, hi, size=(n, len(variables)))
    res: dict[str, dict[str, Stats]] = {}
    for dname, (npdt, _) in DTYPES.items():
        pts = pts64.astype(npdt)
        exact = exact_values(expr, variables, pts)
        res[dname] = {}
        with np.errstate(all="ignore"):
            for mname, f in ms.items():
                e = rel_errors(np.asarray(f(pts), dtype=np.float64), exact)
                med = float(np.median(e)) if e.size else float("nan")
                p99 = float(np.percentile(e, 99)) if e.size else float("nan")
                res[dname][mname] = Stats(med, p99, int(e.size))
    return res


def within_2x(ours: float, lam: float, dname: str) -> bool:
    """``ours <= 2 * lambdify + u`` (``u``: unit roundoff, so 0-vs-0 and exact ties pass)."""
    return ours <= 2.0 * lam + UNIT[dname]


# ----------------------------------------------------------------------------- dynamic range

#: pi as an exact decimal constant (the parser takes a float literal as its exact value)
PI_TEXT = "3.141592653589793"


@dataclass
class RangeCase:
    name: str
    text: str
    #: nominal SI values of the inputs, in the module's column order
    nominal: dict[str, float]


def range_cases() -> list[RangeCase]:
    """The issue's SI-sized cases (Feynman I.13.12, I.38.12 Bohr radius)."""
    return [
        RangeCase(
            "Feynman I.13.12",
            "G*m1*m2*(1/r2 - 1/r1)",
            {"G": 6.674e-11, "m1": 5.972e24, "m2": 7.342e22, "r1": 3.844e8, "r2": 4.0044e8},
        ),
        RangeCase(
            "Feynman I.38.12 (Bohr radius)",
            f"4*{PI_TEXT}*epsilon*(h/(2*{PI_TEXT}))**2/(m*q**2)",
            {
                "epsilon": 8.8541878128e-12,
                "h": 6.62607015e-34,
                "m": 9.1093837015e-31,
                "q": 1.602176634e-19,
            },
        ),
    ]


def range_rows(case: RangeCase, n: int, seed: int) -> dict[str, str | float]:
    """One row per method: bottoms and relative errors at ``n`` points within +-20% of nominal,
    float32 inputs."""
    expr = zs.parse(case.text)
    module = zs.to_torch(expr)
    variables = module.variables
    rng = np.random.default_rng(seed)
    nominal = np.array([case.nominal[v] for v in variables])
    x = (nominal * rng.uniform(0.8, 1.2, size=(n, len(variables)))).astype(np.float32)
    by_name = {s.name: s for s in expr.free_symbols}
    syms = tuple(by_name[v] for v in variables)
    exact = exact_values(expr, syms, x)
    lam = sp.lambdify(syms, expr, modules="torch")
    xt = torch.from_numpy(x)

    def strict(cd: torch.dtype | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            r = zs.strict_evaluator(expr, compute_dtype=cd)(xt)
        return r.decoded.numpy(), r.fault_mask.numpy(), r.semantic_bottom_mask.numpy()

    def numpy_(cd: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = zs.numpy_evaluator(expr, compute_dtype=cd)(x)
        return np.asarray(r.decoded), np.asarray(r.fault_mask), np.asarray(r.semantic_bottom_mask)

    def onnx_(cd: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import onnxruntime as ort

        m = zs.to_onnx(expr, compute_dtype=cd)
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        out = dict(zip(names, sess.run(None, {"x": x}), strict=True))
        return out["decoded"], out["fault_mask"], out["semantic_bottom_mask"]

    def lambdify_() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            v = lam(*[xt[:, i] for i in range(xt.shape[1])]).numpy()
        none = np.zeros(n, dtype=bool)
        return v, none, none

    methods_: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
        "ours strict evaluator, float32": lambda: strict(None),
        "ours strict evaluator, compute_dtype=float64": lambda: strict(torch.float64),
        "ours numpy_evaluator, compute_dtype=float64": lambda: numpy_("float64"),
        "ours ONNX, float32": lambda: onnx_(None),
        "ours ONNX, compute_dtype=float64": lambda: onnx_("float64"),
        "lambdify(torch) float32, original tree": lambdify_,
    }
    rows: dict[str, dict[str, str | float]] = {}
    for mname, f in methods_.items():
        with np.errstate(all="ignore"):
            d, fault, sem = f()
            e = rel_errors(np.asarray(d, dtype=np.float64), exact)
        rows[mname] = {
            "fault": f"{int(fault.sum())}/{n}",
            "semantic": f"{int(sem.sum())}/{n}",
            "median": float(np.median(e)),
            "p99": float(np.percentile(e, 99)),
            "finite": f"{int(np.isfinite(np.asarray(d, dtype=np.float64)).sum())}/{n}",
        }
    return rows  # type: ignore[return-value]


# ----------------------------------------------------------------------------- corpus


def _div(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Mul(a, sp.Pow(b, -1, evaluate=False), evaluate=False)


def random_tree(rng: random.Random, leaves: int) -> sp.Expr:
    """A random rational tree with about ``leaves`` leaves (structure kept, unevaluated)."""
    if leaves <= 1:
        r = rng.random()
        if r < 0.65:
            return rng.choice((X, Y, Z))
        if r < 0.9:
            return sp.Integer(rng.choice([-3, -2, -1, 1, 2, 3]))
        return rng.choice([sp.Rational(1, 2), sp.Rational(-3, 2), sp.Rational(5, 3)])
    op = rng.choice(["add", "sub", "mul", "div", "div", "pow", "recip_sum"])
    if op == "pow":
        return sp.Pow(random_tree(rng, leaves - 1), rng.choice([-2, -1, 2, 3]), evaluate=False)
    k = rng.randint(1, leaves - 1)
    a, b = random_tree(rng, k), random_tree(rng, leaves - k)
    if op == "add":
        return sp.Add(a, b, evaluate=False)
    if op == "sub":
        return sp.Add(a, sp.Mul(-1, b, evaluate=False), evaluate=False)
    if op == "mul":
        return sp.Mul(a, b, evaluate=False)
    if op == "div":
        return _div(a, b)
    return sp.Add(a, _div(1, b), evaluate=False)  # a + 1/b


def corpus(count: int, seed: int = 2024) -> list[sp.Expr]:
    """``count`` seeded random trees that divide, use a variable, are not (nearly) always
    bottom and that ``lambdify(modules="torch")`` can evaluate."""
    rng = random.Random(seed)
    out: list[sp.Expr] = []
    probe = np.random.default_rng(seed).uniform(-2, 2, size=(16, 3))
    while len(out) < count:
        e = random_tree(rng, rng.randint(5, 12))
        has_div = any(isinstance(p, sp.Pow) and p.exp.is_negative for p in sp.preorder_traversal(e))
        syms = e.free_symbols
        if not has_div or not syms:
            continue
        try:
            fru = zs.flatten(e)
        except zs.ZeroProofError:
            continue
        if fru.always_bottom or not fru.variables:
            continue
        if sum(v is not None for v in exact_values(e, (X, Y, Z), probe)) < 12:
            continue
        try:  # lambdify(torch) cannot print e.g. a power of a constant (torch.pow(int, int))
            with torch.no_grad(), np.errstate(all="ignore"):
                sp.lambdify((X, Y, Z), e, modules="torch")(*torch.from_numpy(probe).T)
        except (TypeError, ZeroDivisionError):
            continue
        out.append(e)
    return out


# ----------------------------------------------------------------------------- report


def fmt(v: float) -> str:
    return "inf" if v == np.inf else f"{v:.2e}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_points = 500 if args.quick else 5000
    n_corpus = 10 if args.quick else 30
    n_corpus_points = 200 if args.quick else 1000
    torch.set_num_threads(1)  # accuracy only; keeps the shared machine usable

    lines = [
        "## accuracy",
        "",
        f"`benchmarks/bench_accuracy.py`: relative error of the decoded value against the exact value "
        f"of the original tree (exact rational arithmetic at the float inputs taken as exact binary "
        f"rationals), {n_points:,} uniform random points per expression (E1: x in [-3, 3]; E2: x, y, "
        f"z in [-2, 2]; E3: x in [-1, 3]); float32 results are compared with the exact value at the "
        f"float32-rounded inputs. Points where the exact value is bottom or 0 are left out; a "
        f"non-finite result where the exact value is finite counts as an infinite error. "
        f'"ours" is the strict evaluator\'s `decoded` (torch) and `numpy_evaluator`; the baseline '
        f'is `sympy.lambdify(modules="torch")` of the original tree; "expanded P/Q" '
        f"(`lambdify` of `cancel(together(expr))`) is shown for illustration. Target: ours no "
        f"worse than 2x lambdify, checked as `ours <= 2 * lambdify + u` with `u` the unit "
        f"roundoff (2^-24, 2^-53) so that exact ties at 0 pass; and E3 float32 median <= 1e-5.",
        "",
        "| expr | dtype | method | median rel. err | p99 rel. err | points |",
        "|---|---|---|---:|---:|---:|",
    ]
    verdicts: list[str] = []
    for i, case in enumerate(cases()):
        print(f"  {case.name} ...", flush=True)
        res = evaluate(case.expr, case.lo, case.hi, n_points, seed=100 + i)
        for dname, by in res.items():
            for mname, st in by.items():
                lines.append(
                    f"| {case.name} | {dname} | {mname} | {fmt(st.median)} | {fmt(st.p99)} | {st.n} |"
                )
            lam = by[LAM]
            for who in (OURS, OURS_NP):
                o = by[who]
                ok_med = within_2x(o.median, lam.median, dname)
                ok_p99 = within_2x(o.p99, lam.p99, dname)
                rm = o.median / lam.median if lam.median else float("nan")
                rp = o.p99 / lam.p99 if lam.p99 else float("nan")
                verdicts.append(
                    f"- {case.name} {dname} {who}: median {fmt(o.median)} vs lambdify {fmt(lam.median)} "
                    f"(ratio {rm:.2f}): **{'PASS' if ok_med else 'FAIL'}**; p99 ratio {rp:.2f}: "
                    f"**{'PASS' if ok_p99 else 'FAIL'}**"
                )
            if case.name == "E3" and dname == "float32":
                for who in (OURS, OURS_NP):
                    m = by[who].median
                    verdicts.append(
                        f"- E3 float32 {who}: median {fmt(m)} <= 1e-5: **{'PASS' if m <= 1e-5 else 'FAIL'}** "
                        f"(expanded P/Q: {fmt(by[EXP].median)})"
                    )
    lines += ["", "### Targets on E1-E3", "", *verdicts, ""]

    print("  dynamic range ...", flush=True)
    lines += [
        "### Dynamic range: SI-sized inputs in float32",
        "",
        f"{n_points:,} float32 points with every input uniform within +-20% of its nominal SI "
        "value; relative error of `decoded` against the exact value of the original tree. "
        "float32 without `compute_dtype`: Feynman I.13.12 has `P ~ 1e46` (beyond float32), "
        "the Bohr radius has `Q = m*q**2 ~ 2e-68` (underflow: a fault, not a semantic bottom). "
        "Targets: with `compute_dtype=float64` every point decodes, median relative error "
        "<= 1e-7 (float32 rounding); without it, no point is a semantic bottom.",
        "",
        "| case | method | fault | semantic | finite decoded | median rel. err | p99 rel. err |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    range_verdicts: list[str] = []
    for i, case in enumerate(range_cases()):
        rows = range_rows(case, n_points, seed=900 + i)
        for mname, row in rows.items():
            lines.append(
                f"| {case.name} | {mname} | {row['fault']} | {row['semantic']} | {row['finite']} "
                f"| {fmt(float(row['median']))} | {fmt(float(row['p99']))} |"
            )
        for mname, row in rows.items():
            if "compute_dtype" in mname:
                ok = row["finite"] == f"{n_points}/{n_points}" and float(row["median"]) <= 1e-7
                range_verdicts.append(
                    f"- {case.name}, {mname}: all finite, median {fmt(float(row['median']))} <= 1e-7: "
                    f"**{'PASS' if ok else 'FAIL'}**"
                )
            elif mname.startswith("ours"):
                ok = row["semantic"] == f"0/{n_points}"
                range_verdicts.append(
                    f"- {case.name}, {mname}: no semantic bottom (got {row['semantic']}, faults "
                    f"{row['fault']}): **{'PASS' if ok else 'FAIL'}**"
                )
    lines += ["", *range_verdicts, ""]

    print(f"  corpus of {n_corpus} ...", flush=True)
    exprs = corpus(n_corpus)
    lines += [
        f"### Corpus ({n_corpus} seeded random trees, {n_corpus_points:,} points each in [-2, 2]^3)",
        "",
        "Generated by `corpus()` in this script (seeded; leaves x, y, z, small integers and "
        "rationals; + - * /, powers -2, -1, 2, 3, and `a + 1/b`). Median relative error; PASS "
        "when ours (strict evaluator) <= 2 x lambdify + u for both dtypes.",
        "",
        "| # | expression | f32 ours | f32 lambdify | f32 expanded | f64 ours | f64 lambdify | f64 expanded | verdict |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    passed = 0
    wrong: list[int] = []
    pooled: dict[str, dict[str, list[float]]] = {d: {OURS: [], LAM: []} for d in DTYPES}
    for k, e in enumerate(exprs):
        res = evaluate(e, -2.0, 2.0, n_corpus_points, seed=500 + k)
        cells = []
        ok = True
        for dname in DTYPES:
            by = res[dname]
            cells += [fmt(by[OURS].median), fmt(by[LAM].median), fmt(by[EXP].median)]
            ok &= within_2x(by[OURS].median, by[LAM].median, dname)
            pooled[dname][OURS].append(by[OURS].median)
            pooled[dname][LAM].append(by[LAM].median)
        passed += ok
        text = str(e).replace("|", "\\|")
        text = text if len(text) <= 70 else text[:67] + "..."
        verdict = "PASS" if ok else "FAIL"
        if res["float64"][LAM].median > 1e-6:  # not rounding: a different function
            verdict += " (lambdify wrong)"
            wrong.append(k)
        lines.append(f"| {k} | `{text}` | " + " | ".join(cells) + f" | {verdict} |")
    lines += [
        "",
        f"- corpus: ours within 2x of lambdify (median, both dtypes) on {passed}/{len(exprs)} "
        f"expressions: **{'PASS' if passed == len(exprs) else 'FAIL'}**",
    ]
    if wrong:
        lines.append(
            f"- `lambdify` computes a different function on corpus entries {wrong} (float64 median "
            "error > 1e-6): sympy's printer drops the structure of some unevaluated trees (e.g. "
            "`2*(1/2)**(-1)` is printed `2/1/2`); there ours is compared with a wrong baseline "
            "and passes trivially."
        )
    for dname in DTYPES:
        o = float(np.median(pooled[dname][OURS]))
        lam = float(np.median(pooled[dname][LAM]))
        lines.append(
            f"- corpus {dname}: median over expressions of the median error: ours {fmt(o)}, "
            f"lambdify {fmt(lam)}"
        )
    lines.append("")
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
