"""Training: seed-004 fit, rational-layer pole fits, trainer overhead, rational head cost.

Run as ``python benchmarks/bench_training.py --out FILE [--quick]`` (protocol of
``benchmarks/run_all.py``). Every number comes from this run, 3 seeds each:

* seed 004's example (MLP backbone + ``AngularProjectiveHead``, AdamW lr 1e-3,
  batch 128, 200 epochs) on ``1/(x + 0.1)``: median/max relative error where
  ``|x + 0.1| > 0.05``, pole error (sign change of Q), bottom at the pole under
  a ``tau_infer`` calibrated with zero false bottoms on a held-out grid;
* ``SCMRationalLayer(3, 3)`` on the same data: pole error (real root of Q);
* ``tan(x)`` on [-2, 2] with a [3/3] layer: real roots of Q vs +-pi/2, spurious
  real roots, L-inf relative error away from the poles;
* trainer overhead: ``SCMTrainer.fit`` vs a plain-torch loop of the same model,
  loss and target lifting, interleaved, best of N epochs;
* rational head fwd+bwd vs an MLP head of the same width, interleaved, best of N.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "runtime"))

from test_seed004 import evaluate_pole_fit, run_seed_example  # noqa: E402

from zpml_runtime.layers import MultivariateRationalLayer, RationalTemplateLayer, pole_report  # noqa: E402
from zpml_runtime.layers.angular_projective import AngularProjectiveHead  # noqa: E402
from zpml_runtime.layers.rational import SCMRationalLayer  # noqa: E402
from zpml_runtime.losses import implicit_loss  # noqa: E402
from zpml_runtime.training import SCMTrainer, TrainingConfig, lift_targets  # noqa: E402

SEEDS = (0, 1, 2)


def seed_loss(outputs, targets):
    p, q = outputs
    y_n, y_d = targets
    return implicit_loss(p, q, y_n, y_d)


# ----------------------------------------------------------------------------- fits


def seed004(epochs: int) -> list[dict]:
    rows = []
    for s in SEEDS:
        t = time.perf_counter()
        ns = run_seed_example(seed=s, config_line=f"TrainingConfig(max_epochs={epochs}, progress=False)")
        m = evaluate_pole_fit(ns["wrapped"])
        m["seed"], m["time_s"] = s, time.perf_counter() - t
        rows.append(m)
    return rows


def real_roots(coeffs_low_first: np.ndarray, lo: float, hi: float) -> list[float]:
    roots = np.roots(coeffs_low_first[::-1].astype(np.float64))
    return sorted(float(r.real) for r in roots if abs(r.imag) < 1e-9 and lo <= r.real <= hi)


def fit_rational(x, y, deg, *, seed, epochs, lr, basis="monomial", domain=(-1.0, 1.0)):
    torch.manual_seed(seed)
    layer = SCMRationalLayer(deg[0], deg[1], basis="monomial", dtype=torch.float64)
    loader = DataLoader(TensorDataset(x, y), batch_size=len(x), shuffle=False)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    SCMTrainer(layer, opt, seed_loss, loader, scheduler=sched, config=TrainingConfig(max_epochs=epochs, progress=False)).fit()
    return layer


def rational_pole(epochs: int) -> list[dict]:
    x = torch.linspace(-1.0, 1.0, 512, dtype=torch.float64)
    y = 1.0 / (x + 0.1)
    rows = []
    for s in SEEDS:
        g = torch.Generator().manual_seed(s)
        xs = x + 1e-4 * torch.randn(x.shape, generator=g, dtype=torch.float64)  # seed-dependent jitter
        layer = fit_rational(xs, 1.0 / (xs + 0.1), (3, 3), seed=s, epochs=epochs, lr=1e-2)
        roots = real_roots(layer.denominator.detach().numpy(), -1.0, 1.0)
        err = min((abs(r + 0.1) for r in roots), default=float("inf"))
        with torch.no_grad():
            P, Q = layer(x)
            away = (x + 0.1).abs() > 0.05
            rel = ((P / Q - y) / y).abs()[away]
        rows.append({"seed": s, "pole_error": err, "roots": roots, "max": float(rel.max())})
    return rows


def tan_pade(epochs: int) -> list[dict]:
    x = torch.linspace(-2.0, 2.0, 2001, dtype=torch.float64)
    keep = (x.abs() - np.pi / 2).abs() > 1e-3
    x = x[keep]
    y = torch.tan(x)
    rows = []
    for s in SEEDS:
        layer = fit_rational(x, y, (3, 3), seed=s, epochs=epochs, lr=1e-2)
        roots = real_roots(layer.denominator.detach().numpy(), -2.0, 2.0)
        found = [min((abs(r - p) for r in roots), default=float("inf")) for p in (-np.pi / 2, np.pi / 2)]
        spurious = [r for r in roots if min(abs(r - np.pi / 2), abs(r + np.pi / 2)) > 1e-2]
        with torch.no_grad():
            P, Q = layer(x)
            away = (x.abs() - np.pi / 2).abs() > 0.05
            linf = float(((P / Q - y) / y.abs().clamp_min(1e-12)).abs()[away & (y.abs() > 1e-3)].max())
        rows.append({"seed": s, "pole_errors": found, "spurious": spurious, "linf_rel": linf})
    return rows


def template_fit(epochs: int) -> list[dict]:
    """``(a0 + a1*x)/(b0 + b1*x)`` through SCMTrainer + Adam (full batch, cosine decay), exact pole report."""
    x = torch.linspace(-1.0, 1.0, 512, dtype=torch.float64)
    y = 1.0 / (x + 0.1)
    rows = []
    for s in SEEDS:
        t = time.perf_counter()
        g = torch.Generator().manual_seed(s)
        init = {k: float(v) for k, v in zip(("a0", "a1", "b0", "b1"), 1.0 + 0.3 * torch.randn(4, generator=g, dtype=torch.float64), strict=True)}
        layer = RationalTemplateLayer("(a0 + a1*x)/(b0 + b1*x)", ["a0", "a1", "b0", "b1"], init=init, dtype=torch.float64)
        loader = DataLoader(TensorDataset(x[:, None], y), batch_size=len(x), shuffle=False)
        opt = torch.optim.Adam(layer.parameters(), lr=3e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        SCMTrainer(layer, opt, seed_loss, loader, scheduler=sched,
                   config=TrainingConfig(max_epochs=epochs, progress=False)).fit()
        report = pole_report(layer, (-1.0, 1.0))
        poles = [p.location for p in report.poles if p.kind == "pole"]
        with torch.no_grad():
            out = layer(x[:, None])
            rel = ((out[0] / out[1] - y) / y).abs()
        rows.append({"seed": s, "pole_error": min((abs(p + 0.1) for p in poles), default=float("inf")),
                     "poles": poles, "max": float(rel[(x + 0.1).abs() > 0.05].max()), "time_s": time.perf_counter() - t})
    return rows


# ----------------------------------------------------------------------------- speed


class SeedModel(nn.Module):
    def __init__(self, head: str = "angular", width: int = 32) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(1, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
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
    o1, o2 = torch.optim.AdamW(m1.parameters(), lr=1e-3), torch.optim.AdamW(m2.parameters(), lr=1e-3)
    trainer = SCMTrainer(m2, o2, seed_loss, loader, config=TrainingConfig(max_epochs=10**6, progress=False))
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


def fmt(v: float) -> str:
    return f"{v:.2e}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    epochs = 20 if args.quick else 200
    reps = 5 if args.quick else 30
    lines = ["## training", ""]
    lines.append(
        "`benchmarks/bench_training.py`, one thread, seeds 0-2. Seed 004: the seed's example as written "
        f"(imports renamed) with `TrainingConfig(max_epochs={epochs})`; relative error where |x + 0.1| > 0.05 "
        "on the seed grid; pole error = distance of Q's sign change to -0.1; `tau_infer` calibrated as the "
        "largest swept threshold with zero false bottoms on a 40,001-point held-out grid whose in-range "
        "points are |x + 0.1| > 1e-3. Issue targets: median <= 1e-3, max <= 1e-2, pole <= 1e-3, bottom at "
        "-0.1 and nowhere with |x + 0.1| > 1e-3 (anchor zeroproofml 0.6.1: median 2.5e-3..4.5e-3, max "
        "5.9e-2..7.4e-2, pole 4.5e-4..2.6e-3, never bottom).",
    )
    lines.append("")
    lines += ["| seed | median rel. err | max rel. err | pole error | tau_infer | bottom at -0.1 | bottom far | time s |",
              "|---:|---:|---:|---:|---:|---|---:|---:|"]
    s4 = seed004(epochs)
    for r in s4:
        lines.append(
            f"| {r['seed']} | {fmt(r['median'])} | {fmt(r['max'])} | {fmt(r['pole_error'])} | {fmt(r['tau_infer'])} "
            f"| {r['bottom_at_pole']} | {r['bottom_far']} | {r['time_s']:.1f} |"
        )
    ok = all(r["median"] <= 1e-3 and r["max"] <= 1e-2 and r["pole_error"] <= 1e-3 for r in s4)
    lines += ["", f"- seed 004 issue targets on 3/3 seeds: **{'PASS' if ok else 'FAIL'}**", ""]

    rp = rational_pole(3000 if not args.quick else 200)
    lines += ["`SCMRationalLayer(3, 3)` (float64, full batch, Adam lr 1e-2 with cosine decay, 3000 epochs) on "
              "1/(x + 0.1) (512 points, seed-dependent 1e-4 jitter). Target: pole error <= 1e-4 on 3/3 seeds.", "",
              "| seed | pole error | real roots of Q in [-1, 1] | max rel. err (|x+0.1|>0.05) |", "|---:|---:|---|---:|"]
    for r in rp:
        lines.append(f"| {r['seed']} | {fmt(r['pole_error'])} | {', '.join(f'{v:.6f}' for v in r['roots'])} | {fmt(r['max'])} |")
    ok = all(r["pole_error"] <= 1e-4 for r in rp)
    lines += ["", f"- rational layer pole error <= 1e-4 on 3/3 seeds: **{'PASS' if ok else 'FAIL'}**", ""]

    tp = tan_pade(3000 if not args.quick else 200)
    lines += ["tan(x) on [-2, 2] (2,001 points minus |x| within 1e-3 of pi/2) with `SCMRationalLayer(3, 3)`; poles = real "
              "roots of Q (numpy), spurious = real roots farther than 1e-2 from +-pi/2. Target: both poles to 1e-3, no "
              "spurious pole.", "",
              "| seed | error at -pi/2 | error at +pi/2 | spurious real roots | L-inf rel. err (away 0.05) |",
              "|---:|---:|---:|---|---:|"]
    for r in tp:
        lines.append(f"| {r['seed']} | {fmt(r['pole_errors'][0])} | {fmt(r['pole_errors'][1])} | {r['spurious'] or 'none'} | {fmt(r['linf_rel'])} |")
    ok = all(max(r["pole_errors"]) <= 1e-3 and not r["spurious"] for r in tp)
    lines += ["", f"- tan [3/3] poles to 1e-3, none spurious, 3/3 seeds: **{'PASS' if ok else 'FAIL'}**", ""]

    tf = template_fit(2000 if not args.quick else 200)
    lines += ["Template `(a0 + a1*x)/(b0 + b1*x)` (`RationalTemplateLayer`, float64) through `SCMTrainer` with Adam "
              "(lr 3e-2, cosine decay, full batch, 2000 epochs, seed-dependent start) on the same data; poles from "
              "the exact `pole_report`. Targets: pole error <= 1e-6, max relative error <= 1e-5.", "",
              "| seed | pole error | max rel. err (|x+0.1|>0.05) | time s |", "|---:|---:|---:|---:|"]
    for r in tf:
        lines.append(f"| {r['seed']} | {fmt(r['pole_error'])} | {fmt(r['max'])} | {r['time_s']:.1f} |")
    ok = all(r["pole_error"] <= 1e-6 and r["max"] <= 1e-5 for r in tf)
    lines += ["", f"- template pole <= 1e-6 and max rel. err <= 1e-5 on 3/3 seeds: **{'PASS' if ok else 'FAIL'}**", ""]

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
