"""Training: the seed-004 pole fit on 10 seeds, rational layers from random starts, trainer overhead, head cost.

Run as ``python benchmarks/bench_training.py --out FILE [--quick]`` (protocol of
``benchmarks/run_all.py``). Every number comes from this run:

* seed 004's example as written (MLP backbone + ``AngularProjectiveHead``,
  AdamW lr 1e-3, batch 128) with ``TrainingConfig(max_epochs=200)``, seeds
  0-9, once with the defaults and once with ``head_fit="epoch"``: median/max
  relative error where ``|x + 0.1| > 0.05``, pole error (sign change of Q on a
  fine grid), bottom at -0.1 and nowhere with ``|x + 0.1| > 1e-3`` under a
  ``tau_infer`` calibrated with zero false bottoms on a held-out grid;
* ``SCMRationalLayer(3, 3)`` from random N(0, 1) starts on ``1/(x + 0.1)`` and
  ``tan`` on [-2, 2] (5 seeds each): SCMTrainer + Adam with and without
  ``head_fit="init"``, and SCMTrainer + L-BFGS; exact pole report and max
  relative error on a 100,001-point grid;
* the fixed-gauge template through SCMTrainer + Adam (3 seeds);
* trainer overhead vs a plain loop, rational head cost vs an MLP head.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "runtime" / "training"))

from test_angular_pole_fit import evaluate_pole_fit, run_seed_example  # noqa: E402

from zpml_runtime.layers import MultivariateRationalLayer, RationalTemplateLayer, pole_report  # noqa: E402
from zpml_runtime.layers.angular_projective import AngularProjectiveHead  # noqa: E402
from zpml_runtime.layers.rational import SCMRationalLayer  # noqa: E402
from zpml_runtime.losses import implicit_loss  # noqa: E402
from zpml_runtime.training import SCMTrainer, TrainingConfig, lift_targets  # noqa: E402


def seed_loss(outputs, targets):
    p, q = outputs
    y_n, y_d = targets
    return implicit_loss(p, q, y_n, y_d)


def fmt(v: float) -> str:
    return f"{v:.2e}"


# ----------------------------------------------------------------------------- seed 004


def seed004(seeds: list[int], epochs: int, head_fit: str) -> list[dict]:
    rows = []
    extra = {
        "off": "",
        "epoch": ', head_fit="epoch"',
        "step": ', head_fit="step"',
        "epoch-uniform": ', head_fit="epoch", head_fit_weighting="uniform"',
    }[head_fit]
    for s in seeds:
        t = time.perf_counter()
        ns = run_seed_example(
            seed=s, config_line=f"TrainingConfig(max_epochs={epochs}, progress=False{extra})"
        )
        m = evaluate_pole_fit(ns["wrapped"])
        m["seed"], m["time_s"] = s, time.perf_counter() - t
        m["pole_ok"] = m["pole_error"] <= 1e-3 and m["bottom_at_pole"] and m["bottom_far"] == 0
        m["median_ok"] = m["median"] <= 2e-3
        rows.append(m)
    return rows


def seed004_section(seeds: list[int], epochs: int) -> list[str]:
    n = len(seeds)
    need_pole, need_med = -(-9 * n // 10), -(-8 * n // 10)  # 9/10 and 8/10 of the seeds, rounded up
    lines = [
        f"Angular pole fit: the specification's MLP + `AngularProjectiveHead` example as written (imports renamed), `TrainingConfig(max_epochs={epochs})`, seeds "
        f"{seeds[0]}-{seeds[-1]}. Relative error where |x + 0.1| > 0.05 on the seed grid; pole error = distance "
        "of Q's sign change (200,001-point grid on [-0.2, 0]) to -0.1; `tau_infer` calibrated as the largest "
        "swept threshold with zero false bottoms on a 40,001-point held-out grid whose in-range points are "
        "|x + 0.1| > 1e-3; 'bottom ok' = bottom at -0.1 and nowhere with |x + 0.1| > 1e-3. Targets: pole within "
        f"1e-3 with a calibrated bottom on >= {need_pole}/{n} seeds, median <= 2e-3 on >= {need_med}/{n}.",
        "",
    ]
    results = {}
    for mode in ("off", "epoch", "step", "epoch-uniform"):
        results[mode] = seed004(seeds, epochs, mode)
    lines += [
        'With `head_fit="epoch"` (the head is solved from the data before training and after every epoch, the '
        "optimiser trains the backbone, and without a validation loader the epoch with the best head-fit "
        "objective is restored; see docs/training.md):",
        "",
        "| seed | median rel. err | max rel. err | pole error | sign changes | tau_infer | bottom ok | time s |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results["epoch"]:
        lines.append(
            f"| {r['seed']} | {fmt(r['median'])} | {fmt(r['max'])} | {fmt(r['pole_error'])} | {r['n_sign_changes']} "
            f"| {fmt(r['tau_infer'])} | {r['bottom_at_pole'] and r['bottom_far'] == 0} | {r['time_s']:.1f} |"
        )
    lines += [
        "",
        "| configuration | pole + bottom ok | median <= 2e-3 | median (min..max) | max (min..max) | "
        "pole error (max) | time s (mean) | verdict |",
        "|---|---:|---:|---|---|---:|---:|---|",
    ]
    for mode, label in (
        ("off", "defaults (as written)"),
        ("epoch", '`head_fit="epoch"`'),
        ("step", '`head_fit="step"`'),
        ("epoch-uniform", '`head_fit="epoch", head_fit_weighting="uniform"`'),
    ):
        rs = results[mode]
        pole_ok = sum(r["pole_ok"] for r in rs)
        med_ok = sum(r["median_ok"] for r in rs)
        verdict = "PASS" if pole_ok >= need_pole and med_ok >= need_med else "FAIL"
        lines.append(
            f"| {label} | {pole_ok}/{n} | {med_ok}/{n} | {fmt(min(r['median'] for r in rs))}..{fmt(max(r['median'] for r in rs))} "
            f"| {fmt(min(r['max'] for r in rs))}..{fmt(max(r['max'] for r in rs))} | {fmt(max(r['pole_error'] for r in rs))} "
            f"| {statistics.mean(r['time_s'] for r in rs):.1f} | **{verdict}** |"
        )
    return lines + [""]


# ----------------------------------------------------------------------------- rational layers from random starts


class Elementwise(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.squeeze(-1))


CASES = {
    # name: (function, interval, true poles, degrees, pole tolerance of a converged fit)
    "1/(x+0.1)": (lambda x: 1.0 / (x + 0.1), (-1.0, 1.0), [-0.1], (3, 3), 1e-6),  # exact in [3/3]
    "tan": (
        torch.tan,
        (-2.0, 2.0),
        [-np.pi / 2, np.pi / 2],
        (3, 3),
        1e-3,
    ),  # [3/3] is an approximation
}
METHODS = {
    "adam": "Adam",
    "adam+init": 'Adam, `head_fit="init"`',
    "adam+epoch": 'Adam, `head_fit="epoch"`',
    "lbfgs": "L-BFGS",
    "lbfgs+init": 'L-BFGS, `head_fit="init"`',
}


def layer_run(case: str, seed: int, method: str, epochs: int) -> dict:
    f, (lo, hi), poles, (n, m), _tol = CASES[case]
    x = torch.linspace(lo, hi, 512, dtype=torch.float64)
    x = x[torch.stack([(x - p).abs() > 1e-3 for p in poles]).all(0)]
    y = f(x)
    g = torch.Generator().manual_seed(seed)
    layer = SCMRationalLayer(
        n,
        m,
        basis="chebyshev",
        domain=(lo, hi),
        dtype=torch.float64,
        numerator_init=torch.randn(n + 1, generator=g, dtype=torch.float64),
        denominator_init=torch.randn(m + 1, generator=g, dtype=torch.float64),
    )
    model = Elementwise(layer)
    torch.manual_seed(seed)
    t = time.perf_counter()
    head_fit = method.partition("+")[2] or "off"
    if method.startswith("lbfgs"):
        loader = DataLoader(TensorDataset(x[:, None], y), batch_size=len(x))
        opt = torch.optim.LBFGS(model.parameters(), max_iter=50, line_search_fn="strong_wolfe")
        conf = TrainingConfig(max_epochs=max(epochs // 50, 4), progress=False, head_fit=head_fit)
    else:
        loader = DataLoader(TensorDataset(x[:, None], y), batch_size=128, shuffle=True)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        conf = TrainingConfig(max_epochs=epochs, progress=False, head_fit=head_fit)
    SCMTrainer(model, opt, seed_loss, loader, config=conf).fit()
    elapsed = time.perf_counter() - t
    report = pole_report(layer, (lo, hi))
    found = [p.location for p in report.poles]
    errs = [min((abs(a - p) for a in found), default=float("inf")) for p in poles]
    extra = [a for a in found if min(abs(a - p) for p in poles) > 1e-2]
    xf = torch.linspace(lo, hi, 100_001, dtype=torch.float64)
    xf = xf[torch.stack([(xf - p).abs() > 1e-2 for p in poles]).all(0)]
    with torch.no_grad():
        P, Q = layer(xf)
    fx = f(xf)
    err = float(((P / Q - fx).abs() / fx.abs().clamp_min(1.0)).max())
    return {
        "pole_error": max(errs),
        "extra": len(extra),
        "spurious": len(report.spurious),
        "max": err,
        "time_s": elapsed,
    }


def layers_section(seeds: list[int], epochs: int) -> list[str]:
    lines = [
        f"`SCMRationalLayer(3, 3)` (Chebyshev, float64) from random N(0, 1) coefficients, seeds {seeds[0]}-{seeds[-1]}, "
        f"through `SCMTrainer` with `implicit_loss`: Adam (lr 1e-3, batch 128, {epochs} epochs) and L-BFGS (full "
        f"batch, strong Wolfe, 50 iterations per epoch, {max(epochs // 50, 4)} epochs), each from the random start "
        'and with the layer fitted from the data first (`head_fit="init"`) or after every epoch '
        '(`head_fit="epoch"`: the layer is the whole model, so Adam only runs between exact refits). 512 points '
        "minus |x - pole| <= 1e-3; poles from the exact `pole_report`; 'extra' = true poles farther than 1e-2 from "
        "every expected pole; max relative error |r - f| / max(|f|, 1) on 100,001 points with |x - pole| > 1e-2. "
        "A seed is ok when every expected pole is matched within the tolerance (1e-6 for the exactly representable "
        "1/(x + 0.1), 1e-3 for the [3/3] approximation of tan) with no extra or spurious pole. Target: every seed "
        'ok for `head_fit="epoch"` and for L-BFGS after `head_fit="init"`. (Adam after `head_fit="init"` '
        "is shown for what it is: Adam moves every coefficient by about lr per step even at an exact optimum.)",
        "",
        "| function | method | seeds ok | pole error (worst) | extra poles (sum) | spurious (sum) | max rel. err (worst) | time s (mean) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for case, (*_, tol) in CASES.items():
        for method, label in METHODS.items():
            rs = [layer_run(case, s, method, epochs) for s in seeds]
            ok = sum(r["pole_error"] <= tol and r["extra"] == 0 and r["spurious"] == 0 for r in rs)
            if method in ("adam+epoch", "lbfgs+init"):
                verdicts.append((f"{case}, {label}", ok == len(rs)))
            lines.append(
                f"| {case} | {label} | {ok}/{len(rs)} | {fmt(max(r['pole_error'] for r in rs))} | "
                f"{sum(r['extra'] for r in rs)} | {sum(r['spurious'] for r in rs)} | {fmt(max(r['max'] for r in rs))} | "
                f"{statistics.mean(r['time_s'] for r in rs):.2f} |"
            )
    failed = [name for name, ok in verdicts if not ok]
    lines += [
        "",
        f"- target rows ok on every seed: **{'PASS' if not failed else 'FAIL'}**"
        + (f" (not: {'; '.join(failed)})" if failed else ""),
        "",
    ]
    return lines


# ----------------------------------------------------------------------------- template


def template_fit(seeds: list[int], epochs: int) -> list[dict]:
    """``(a0 + a1*x)/(b0 + b1*x)`` through SCMTrainer + Adam (full batch, cosine decay), exact pole report."""
    x = torch.linspace(-1.0, 1.0, 512, dtype=torch.float64)
    y = 1.0 / (x + 0.1)
    rows = []
    for s in seeds:
        t = time.perf_counter()
        g = torch.Generator().manual_seed(s)
        init = {
            k: float(v)
            for k, v in zip(
                ("a0", "a1", "b0", "b1"),
                1.0 + 0.3 * torch.randn(4, generator=g, dtype=torch.float64),
                strict=True,
            )
        }
        layer = RationalTemplateLayer(
            "(a0 + a1*x)/(b0 + b1*x)", ["a0", "a1", "b0", "b1"], init=init, dtype=torch.float64
        )
        loader = DataLoader(TensorDataset(x[:, None], y), batch_size=len(x), shuffle=False)
        opt = torch.optim.Adam(layer.parameters(), lr=3e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        SCMTrainer(
            layer,
            opt,
            seed_loss,
            loader,
            scheduler=sched,
            config=TrainingConfig(max_epochs=epochs, progress=False),
        ).fit()
        report = pole_report(layer, (-1.0, 1.0))
        poles = [p.location for p in report.poles if p.kind == "pole"]
        with torch.no_grad():
            out = layer(x[:, None])
            rel = ((out[0] / out[1] - y) / y).abs()
        rows.append(
            {
                "seed": s,
                "pole_error": min((abs(p + 0.1) for p in poles), default=float("inf")),
                "poles": poles,
                "max": float(rel[(x + 0.1).abs() > 0.05].max()),
                "time_s": time.perf_counter() - t,
            }
        )
    return rows


# ----------------------------------------------------------------------------- speed


class SeedModel(nn.Module):
    def __init__(self, head: str = "angular", width: int = 32) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(1, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.kind = head
        if head == "angular":
            self.head = AngularProjectiveHead(input_dim=width, output_dim=1)
        elif head == "rational":
            self.head = nn.Sequential(nn.Linear(width, 1), SCMRationalLayer(3, 3))
        elif head == "mv1":
            self.head = MultivariateRationalLayer(width, 1, 1, 1)
        elif head == "mv2":
            self.head = MultivariateRationalLayer(width, 1, 2, 2)
        else:
            self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))

    def forward(self, x):
        out = self.head(self.backbone(x))
        if self.kind == "mlp":
            return out[..., 0], out[..., 1]
        p, q = out
        return p.squeeze(-1), q.squeeze(-1)


def overhead(reps: int, n: int) -> dict:
    x = torch.linspace(-1, 1, n).unsqueeze(-1)
    y = (1.0 / (x + 0.1)).squeeze(-1)
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)

    def plain(model, opt):
        for xb, yb in loader:
            loss = seed_loss(model(xb), lift_targets(yb))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    times: dict[str, list[float]] = {"plain": [], "trainer": []}
    torch.manual_seed(0)
    m1, m2 = SeedModel(), SeedModel()
    o1, o2 = (
        torch.optim.AdamW(m1.parameters(), lr=1e-3),
        torch.optim.AdamW(m2.parameters(), lr=1e-3),
    )
    trainer = SCMTrainer(
        m2, o2, seed_loss, loader, config=TrainingConfig(max_epochs=10**6, progress=False)
    )
    for _ in range(reps):
        t = time.perf_counter()
        plain(m1, o1)
        times["plain"].append(time.perf_counter() - t)
        t = time.perf_counter()
        trainer._run_epoch()  # one epoch of fit(), without the fit_start/fit_end bookkeeping
        times["trainer"].append(time.perf_counter() - t)
    return times


def head_cost(reps: int, batch: int = 4096, width: int = 32) -> dict:
    x = torch.randn(batch, 1)
    torch.manual_seed(0)
    models = {k: SeedModel(k, width) for k in ("mlp", "rational", "mv1", "mv2")}
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(reps):
        for name, model in models.items():
            t = time.perf_counter()
            p, q = model(x)
            (p.square().mean() + q.square().mean()).backward()
            times[name].append(time.perf_counter() - t)
    return times


# ----------------------------------------------------------------------------- report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", choices=("seed004", "layers", "template", "speed"), action="append", default=[]
    )
    parser.add_argument(
        "--seed004-seeds", default=None, help="seed range A-B of the seed-004 runs (default 0-9)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    quick = args.quick
    parts = set(args.only) or {"seed004", "layers", "template", "speed"}
    lines = ["## training", "", "`benchmarks/bench_training.py`, one thread.", ""]
    if "seed004" in parts:
        seeds = [0, 1] if quick else list(range(10))
        if args.seed004_seeds:
            a, _, b = args.seed004_seeds.partition("-")
            seeds = list(range(int(a), int(b or a) + 1))
        lines += seed004_section(seeds, 20 if quick else 200)
    if "layers" in parts:
        lines += layers_section([0, 1] if quick else [0, 1, 2, 3, 4], 20 if quick else 200)
    if "template" in parts:
        epochs = 200 if quick else 2000
        tf = template_fit([0, 1, 2], epochs)
        lines += [
            f"Template `(a0 + a1*x)/(b0 + b1*x)` (`RationalTemplateLayer`, float64) through `SCMTrainer` with Adam "
            f"(lr 3e-2, cosine decay, full batch, {epochs} epochs, seed-dependent start) on 1/(x + 0.1); poles from the "
            "exact `pole_report`. Targets: pole error <= 1e-6, max relative error <= 1e-5.",
            "",
            "| seed | pole error | max rel. err (|x+0.1|>0.05) | time s |",
            "|---:|---:|---:|---:|",
        ]
        for r in tf:
            lines.append(
                f"| {r['seed']} | {fmt(r['pole_error'])} | {fmt(r['max'])} | {r['time_s']:.1f} |"
            )
        ok = all(r["pole_error"] <= 1e-6 and r["max"] <= 1e-5 for r in tf)
        lines += [
            "",
            f"- template pole <= 1e-6 and max rel. err <= 1e-5 on 3/3 seeds: **{'PASS' if ok else 'FAIL'}**",
            "",
        ]
    if "speed" in parts:
        reps = 5 if quick else 30
        ov = overhead(reps, 4096)
        ratio_best = min(ov["trainer"]) / min(ov["plain"])
        ratio_med = statistics.median(ov["trainer"]) / statistics.median(ov["plain"])
        hc = head_cost(reps * 5)
        heads = {
            "rational": "Linear(32, 1)-SCMRationalLayer(3, 3)",
            "mv1": "MultivariateRationalLayer(32, 1, 1, 1)",
            "mv2": "MultivariateRationalLayer(32, 1, 2, 2)",
        }
        head_rows = []
        for k, label in heads.items():
            best = min(hc[k]) / min(hc["mlp"])
            med = statistics.median(hc[k]) / statistics.median(hc["mlp"])
            head_rows.append(
                f"| {label} fwd+bwd vs MLP head | {1e3 * min(hc[k]):.3f} | {1e3 * min(hc['mlp']):.3f} | {best:.3f} "
                f"| {med:.3f} | <= 1.25: **{'PASS' if best <= 1.25 else 'FAIL'}** |"
            )
        lines += [
            f"Speed (interleaved in one run; {reps} epochs of 4,096 rows, batch 128, for the trainer; {reps * 5} "
            "fwd+bwd passes of a 4,096-row batch for the heads). The plain loop lifts targets with `lift_targets` "
            "and calls the same loss; the MLP head is Linear(32, 32)-ReLU-Linear(32, 2) (P and Q), each rational "
            "head sits on the same 1-32-32 backbone. The quadratic multivariate head computes all 561 degree-2 "
            "monomials of its 32 inputs for P and Q, about twice the MLP head's multiply-adds.",
            "",
            "| measurement | ours best (ms) | baseline best (ms) | ratio best | ratio median | target |",
            "|---|---:|---:|---:|---:|---|",
            f"| trainer epoch vs plain loop | {1e3 * min(ov['trainer']):.2f} | {1e3 * min(ov['plain']):.2f} | {ratio_best:.3f} | {ratio_med:.3f} | <= 1.05: **{'PASS' if ratio_best <= 1.05 else 'FAIL'}** |",
            *head_rows,
            "",
        ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
