"""Pole fitting: ``fit_rational`` + ``pole_report`` against ``scipy.interpolate.AAA`` and an MLP.

Run as ``python benchmarks/bench_polefit.py --out FILE [--quick]`` (protocol of
``benchmarks/run_all.py``). Everything is measured in this run:

* every case on ``linspace(lo, hi, 512)`` (float64): ours at the stated type,
  AAA with ``max_terms = degree + 1`` (the same type; it may stop earlier), an
  MLP (1-64-64-1 tanh, Adam, relative loss, 3 seeds): pole error / width, max
  error ``|r - f| / max(|f|, 1)`` on 100,001 points away from the poles,
  number of real poles reported in the interval, fit time;
* the same cases on random sample positions (3 seeds, worst seed shown);
* data holding the exact pole as ``+inf``; 1% multiplicative noise, [3/3],
  10 seeds (our report vs AAA's real poles);
* the generic multivariate head on 2-link inverse-Jacobian data (6,000 rows,
  ~20% near-singular, ~2% exactly singular; 3 seeds), with an MLP baseline.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import torch
from scipy import special
from scipy.interpolate import AAA

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "runtime" / "layers"))

from test_fit_rational import two_link  # noqa: E402

from zpml_runtime.inference import InferenceConfig, SCMInferenceWrapper  # noqa: E402
from zpml_runtime.layers import fit_rational, pole_report, zero_set_report  # noqa: E402

FINE = 100_001
NAMES = ["c1", "s1", "c2", "s2", "dx", "dy"]

# (name, f, interval, degrees, true poles, kind): kind "exact" -> targets 1e-10 / 1e-8 at 1e-3,
# "approx" -> 1e-8 / 1e-5 at 1e-2
CASES = [
    ("1/(x+0.1)", lambda x: 1 / (x + 0.1), (-1.0, 1.0), (3, 3), [-0.1], "exact"),
    ("1/(1.69-w^2)", lambda w: 1 / (1.69 - w**2), (0.0, 2.5), (2, 2), [1.3], "exact"),
    ("1/(1.69-w^2)", lambda w: 1 / (1.69 - w**2), (0.0, 2.5), (4, 4), [1.3], "exact"),
    (
        "1/(x-0.3)^2 + x (double pole)",
        lambda x: 1 / (x - 0.3) ** 2 + x,
        (-1.0, 1.0),
        (3, 2),
        [0.3],
        "exact",
    ),
    (
        "1/(x-0.3) + 1/(x-0.32)",
        lambda x: 1 / (x - 0.3) + 1 / (x - 0.32),
        (-1.0, 1.0),
        (2, 2),
        [0.3, 0.32],
        "exact",
    ),
    (
        "(x-0.31)/((x-0.3)(x-0.32))",
        lambda x: (x - 0.31) / ((x - 0.3) * (x - 0.32)),
        (-1.0, 1.0),
        (2, 2),
        [0.3, 0.32],
        "exact",
    ),
    (
        "1/((1-w^2)^2+0.04w^2) (no real pole)",
        lambda w: 1 / ((1 - w**2) ** 2 + 0.04 * w**2),
        (0.0, 2.5),
        (2, 4),
        [],
        "exact",
    ),
    ("tan", np.tan, (-2.0, 2.0), (6, 6), [-math.pi / 2, math.pi / 2], "approx"),
    ("Gamma", special.gamma, (-1.8, 2.5), (8, 8), [-1.0, 0.0], "approx"),
    ("digamma", special.digamma, (-2.5, 3.0), (8, 8), [-2.0, -1.0, 0.0], "approx"),
]
TARGETS = {"exact": (1e-10, 1e-8, 1e-3), "approx": (1e-8, 1e-5, 1e-2)}
#: the issue's aim (not a pass/fail target): pole errors within 10x of AAA's
AIMS: list[tuple[str, bool]] = []


def fine_error(r_fine, f, lo, hi, poles, away):
    x = np.linspace(lo, hi, FINE)
    with np.errstate(all="ignore"):
        fx = f(x)
        keep = np.isfinite(fx) & np.isfinite(r_fine)
        if poles:
            keep &= np.min(np.abs(x[:, None] - np.asarray(poles)[None, :]), axis=1) > away
        bad = np.isfinite(fx) & ~np.isfinite(r_fine)
        if poles:
            bad &= np.min(np.abs(x[:, None] - np.asarray(poles)[None, :]), axis=1) > away
        err = np.abs(r_fine[keep] - fx[keep]) / np.maximum(np.abs(fx[keep]), 1)
    return math.inf if bad.any() else float(err.max())


def pole_error(found, poles, width):
    if not poles:
        return 0.0
    return max(min((abs(p - t) for p in found), default=math.inf) for t in poles) / width


def ours(x, y, case):
    _, f, (lo, hi), (n, m), poles, kind = case
    t = time.perf_counter()
    layer = fit_rational(x, y, n, m)
    dt = time.perf_counter() - t
    report = pole_report(layer, (lo, hi))
    with torch.no_grad():
        P, Q = layer(torch.linspace(lo, hi, FINE, dtype=torch.float64))
    with np.errstate(all="ignore"):
        r = (P / Q).numpy()
    away = TARGETS[kind][2]
    return dict(
        pole=pole_error(report.locations, poles, hi - lo),
        err=fine_error(r, f, lo, hi, poles, away),
        n=len(report.poles),
        spurious=len(report.spurious),
        time=dt,
    )


def aaa(x, y, case):
    _, f, (lo, hi), (n, m), poles, kind = case
    t = time.perf_counter()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # "failed to converge within max_terms": expected
        model = AAA(x, y, max_terms=max(n, m) + 1)
    dt = time.perf_counter() - t
    pz = model.poles()
    real = [float(p.real) for p in pz if abs(p.imag) <= 1e-6 * (hi - lo) and lo <= p.real <= hi]
    with np.errstate(all="ignore"):
        r = np.real(model(np.linspace(lo, hi, FINE)))
    away = TARGETS[kind][2]
    return dict(
        pole=pole_error(real, poles, hi - lo),
        err=fine_error(r, f, lo, hi, poles, away),
        n=len(real),
        time=dt,
    )


def mlp(x, y, case, seed, steps):
    _, f, (lo, hi), _, poles, kind = case
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(1, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 1),
    ).double()
    keep = np.isfinite(y)
    xt = torch.tensor((2 * x[keep] - (lo + hi)) / (hi - lo)).unsqueeze(-1)
    yt = torch.tensor(y[keep]).unsqueeze(-1)
    scale = yt.abs().clamp_min(1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = (((net(xt) - yt) / scale) ** 2).mean()
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t
    xf = torch.linspace(-1, 1, FINE, dtype=torch.float64).unsqueeze(-1)
    with torch.no_grad():
        r = net(xf).squeeze(-1).numpy()
    return dict(err=fine_error(r, f, lo, hi, poles, TARGETS[kind][2]), time=dt)


def fmt(v):
    return "inf" if not math.isfinite(v) else ("0" if v == 0 else f"{v:.1e}")


def grid_table(args, lines, checks):
    lines += [
        "### Cases on `linspace(lo, hi, 512)`",
        "",
        "Pole error = max over true poles of the distance to the nearest reported real pole, "
        "divided by the interval width; *poles* = real poles reported in the interval (ours: "
        "`report.poles`, spurious ones flagged separately in *spur.*; AAA: poles with "
        "`|Im| <= 1e-6 * width`) / true count; max error away from the poles (1e-3 for the exact "
        "rational cases, 1e-2 for tan, Gamma, digamma) on 100,001 points. MLP: median over "
        f"{len(args.mlp_seeds)} seeds of {args.mlp_steps} Adam steps.",
        "",
        "| case | type | ours pole err | ours max err | ours poles | spur. | ours time s | "
        "AAA pole err | AAA max err | AAA poles | AAA time s | MLP max err | MLP time s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        name, f, (lo, hi), (n, m), poles, kind = case
        x = np.linspace(lo, hi, 512)
        with np.errstate(all="ignore"):
            y = f(x)
        o, a = ours(x, y, case), aaa(x, y, case)
        ms = [mlp(x, y, case, s, args.mlp_steps) for s in args.mlp_seeds]
        m_err = float(np.median([r["err"] for r in ms]))
        m_time = float(np.median([r["time"] for r in ms]))
        lines.append(
            f"| {name} | [{n}/{m}] | {fmt(o['pole'])} | {fmt(o['err'])} | {o['n']}/{len(poles)} | "
            f"{o['spurious']} | {o['time']:.2f} | {fmt(a['pole'])} | {fmt(a['err'])} | "
            f"{a['n']}/{len(poles)} | {a['time']:.3f} | {fmt(m_err)} | {m_time:.1f} |"
        )
        pt, et, _ = TARGETS[kind]
        ok = o["pole"] <= pt and o["err"] <= et and o["n"] == len(poles) and o["time"] < 1.0
        checks.append(
            (
                f"{name} [{n}/{m}]: pole err <= {pt:g} x width, max err <= {et:g}, no spurious "
                f"pole in report.poles, fit < 1 s",
                ok,
            )
        )
        if poles:
            AIMS.append(
                (
                    f"{name} [{n}/{m}]: pole error within 10x of AAA's "
                    f"(ours {fmt(o['pole'])}, AAA {fmt(a['pole'])}); max error vs AAA's: "
                    f"{o['err'] / a['err']:.2g}x",
                    o["pole"] <= 10 * a["pole"],
                )
            )
        print(f"  {name} [{n}/{m}] ours {o} aaa {a} mlp {m_err:.2e}", flush=True)
    lines.append("")


def random_table(args, lines, checks):
    lines += [
        "### Random sample positions",
        "",
        f"512 points uniform in the interval, seeds {list(args.seeds)}; worst seed shown.",
        "",
        "| case | type | ours pole err | ours max err | ours poles (all seeds) | AAA pole err | "
        "AAA max err | AAA poles (all seeds) |",
        "|---|---|---:|---:|---|---:|---:|---|",
    ]
    for case in CASES:
        name, f, (lo, hi), (n, m), poles, kind = case
        rows_o, rows_a = [], []
        for s in args.seeds:
            x = np.sort(np.random.default_rng(s).uniform(lo, hi, 512))
            with np.errstate(all="ignore"):
                y = f(x)
            rows_o.append(ours(x, y, case))
            rows_a.append(aaa(x, y, case))
        worst = lambda rows, k: max(r[k] for r in rows)  # noqa: E731
        lines.append(
            f"| {name} | [{n}/{m}] | {fmt(worst(rows_o, 'pole'))} | {fmt(worst(rows_o, 'err'))} | "
            f"{','.join(str(r['n']) for r in rows_o)} | {fmt(worst(rows_a, 'pole'))} | "
            f"{fmt(worst(rows_a, 'err'))} | {','.join(str(r['n']) for r in rows_a)} |"
        )
        pt, et, _ = TARGETS[kind]
        checks.append(
            (
                f"random x, {name} [{n}/{m}]: targets on every seed",
                worst(rows_o, "pole") <= pt
                and worst(rows_o, "err") <= et
                and all(r["n"] == len(poles) for r in rows_o),
            )
        )
    lines.append("")


def robust_table(args, lines, checks):
    case = CASES[0]
    lines += [
        "### Bottom-labelled rows and noise (`1/(x + 0.1)` on [-1, 1], [3/3])",
        "",
        "AAA discards non-finite values, so a `+inf` label at the pole is invisible to it; "
        "ours imposes `Q = 0` there. Noise: `y * (1 + 0.01 N(0, 1))`; *poles* counts real "
        "poles reported in [-1, 1] (ours: `report.poles`).",
        "",
        "| data | seed | ours pole err | ours poles | ours spur. | AAA pole err | AAA poles |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    x = np.sort(np.concatenate([np.linspace(-1, 1, 512), [-0.1]]))
    with np.errstate(divide="ignore"):
        y = 1 / (x + 0.1)
    for label in ("+inf", "NaN"):
        yy = y.copy()
        yy[~np.isfinite(yy)] = np.inf if label == "+inf" else np.nan
        o, a = ours(x, yy, case), aaa(x, yy, case)
        lines.append(
            f"| exact pole labelled {label} | - | {fmt(o['pole'] * 2)} | {o['n']} | {o['spurious']} | "
            f"{fmt(a['pole'] * 2)} | {a['n']} |"
        )
        checks.append(
            (
                f"exact pole labelled {label}: pole within 1e-10 x width, one pole",
                o["pole"] <= 1e-10 and o["n"] == 1 and o["err"] <= 1e-8,
            )
        )
    good = 0
    for s in args.noise_seeds:
        rng = np.random.default_rng(s)
        xn = np.linspace(-1, 1, 512)
        yn = 1 / (xn + 0.1) * (1 + 0.01 * rng.standard_normal(512))
        o, a = ours(xn, yn, case), aaa(xn, yn, case)
        good += o["n"] == 1 and o["pole"] * 2 <= 1e-3
        lines.append(
            f"| 1% noise | {s} | {fmt(o['pole'] * 2)} | {o['n']} | {o['spurious']} | "
            f"{fmt(a['pole'] * 2)} | {a['n']} |"
        )
    lines += ["", "(pole errors in this table are absolute, not divided by the width)", ""]
    checks.append(
        (
            f"1% noise: exactly one reported pole within 1e-3 of -0.1 on every seed "
            f"({good}/{len(args.noise_seeds)})",
            good == len(args.noise_seeds),
        )
    )


def mlp_multivariate(feats, y, det, train, test, seed, steps):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 2),
    ).double()
    rows = train & (np.abs(det) >= 1e-2)
    xt, yt = torch.tensor(feats[rows]), torch.tensor(y[rows])
    scale = yt.abs().clamp_min(1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        (((net(xt) - yt) / scale) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():
        r = net(torch.tensor(feats[test])).numpy()
    ok = np.abs(det[test]) >= 1e-5
    return float(np.median(np.abs(r[ok] - y[test][ok]) / np.maximum(np.abs(y[test][ok]), 1)))


def multivariate_table(args, lines, checks):
    lines += [
        "### Generic multivariate head on 2-link inverse-Jacobian data",
        "",
        "Features `(cos th1, sin th1, cos th2, sin th2, dx, dy)`, two outputs (joint velocities), "
        "link lengths 1 and 0.7, 6,000 rows (4,500 train / 1,500 held out), ~20% near-singular "
        "and ~2% exactly singular (`sin th2 = 0`, labelled `+inf`). Ours: `fit_rational(feats, y, 3, 1)` "
        "(no Jacobian formula); median relative error on held-out rows with `|det J| >= 1e-5`; "
        "bottom precision/recall of `SCMInferenceWrapper(tau_infer=0)` on the exactly singular "
        "held-out rows; singular set from `zero_set_report`. AAA is univariate only. MLP: "
        f"6-128-128-2 tanh, relative loss on `|det J| >= 1e-2` rows, {args.mv_steps} Adam steps.",
        "",
        "| seed | ours time s | ours median rel err | bottom precision | bottom recall | singular set | "
        "MLP median rel err |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in args.seeds:
        feats, y, det, exact = two_link(6000, seed=s)
        train = np.arange(6000) < 4500
        test = ~train
        t = time.perf_counter()
        head = fit_rational(feats[train], y[train], 3, 1)
        dt = time.perf_counter() - t
        with torch.no_grad():
            P, Q = head(torch.as_tensor(feats[test]))
        r = (P / Q).numpy()
        ok = np.abs(det[test]) >= 1e-5
        med = float(np.median(np.abs(r[ok] - y[test][ok]) / np.maximum(np.abs(y[test][ok]), 1)))
        _, bottom, _ = SCMInferenceWrapper(head, config=InferenceConfig(tau_infer=0.0)).eval()(
            torch.as_tensor(feats[test])
        )
        pred = bottom.all(dim=-1).numpy()
        truth = exact[test]
        precision = float((pred & truth).sum() / max(pred.sum(), 1))
        recall = float((pred & truth).sum() / max(truth.sum(), 1))
        rep = zero_set_report(head, NAMES)
        sset = " or ".join(f"{f} = 0" for f, _ in rep.factors[0])
        m = mlp_multivariate(feats, y, det, train, test, s, args.mv_steps)
        lines.append(
            f"| {s} | {dt:.2f} | {fmt(med)} | {precision:.3f} | {recall:.3f} | {sset} | {fmt(m)} |"
        )
        checks.append(
            (
                f"2-link seed {s}: median rel err <= 1e-6, bottom precision = recall = 1, singular set s2 = 0",
                med <= 1e-6 and precision == 1.0 and recall == 1.0 and sset == "s2 = 0",
            )
        )
        print(
            f"  2-link seed {s}: {dt:.2f}s med {med:.2e} P {precision} R {recall} {sset} mlp {m:.2e}",
            flush=True,
        )
    lines.append("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.seeds = (0, 1, 2) if not args.quick else (0,)
    args.noise_seeds = tuple(range(10)) if not args.quick else (0, 1)
    args.mlp_seeds = (0, 1, 2) if not args.quick else (0,)
    args.mlp_steps = 3000 if not args.quick else 300
    args.mv_steps = 3000 if not args.quick else 200
    torch.set_num_threads(1)  # small MLPs: one thread is fastest and immune to other processes
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    warm = np.linspace(-1, 1, 64)
    fit_rational(warm, 1 / (warm + 0.1), 1, 1)
    aaa(warm, 1 / (warm + 0.1), CASES[0])
    lines = [
        "## pole fitting",
        "",
        "`fit_rational` (deterministic linearised least squares with Sanathanan-Koerner reweighting, "
        "degree selection and spurious-pole removal) and `pole_report`, against "
        "`scipy.interpolate.AAA` at the same type and an MLP, on the same data in the same run "
        f"(`benchmarks/bench_polefit.py`{', `--quick`' if args.quick else ''}). Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, torch "
        f"{torch.__version__} (1 thread); 1-minute load average at start {load:.1f} on "
        f"{os.cpu_count()} CPUs (times include it). Fit times exclude the first call (warm-up).",
        "",
    ]
    checks: list[tuple[str, bool]] = []
    grid_table(args, lines, checks)
    random_table(args, lines, checks)
    robust_table(args, lines, checks)
    multivariate_table(args, lines, checks)
    lines += ["### Targets", ""]
    lines += [f"- {text}: **{'PASS' if ok else 'FAIL'}**" for text, ok in checks]
    lines += [
        "",
        "Aim (not a target): pole errors within 10x of AAA's at the same type "
        f"(met on {sum(ok for _, ok in AIMS)}/{len(AIMS)} cases with poles):",
        "",
    ]
    lines += [f"- {text}: {'met' if ok else 'not met'}" for text, ok in AIMS]
    lines.append("")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {sum(ok for _, ok in checks)}/{len(checks)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
