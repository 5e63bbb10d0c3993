"""Bundle validation time: the README example bundle, before and after verification by reproduction.

Run as ``python benchmarks/bench_validate.py --out FILE [--quick]`` (protocol
of ``benchmarks/run_all.py``). The bundle is the README's

    zpml compile "(x**2 + 1)/(x - y) + 1/(1 + 1/x)" --tau-infer 1e-6 --tau-train 1e-3 --onnx DIR

in float32 (the default) and float64. Each side exports its own bundle and
times ``validate_bundle(DIR)`` (fresh random validator points every call, the
default) after one warm-up call. The two sides run alternately in several
rounds (child processes: before, after, before, after, ...) so that a busy
machine slows both alike; the table reports the median and the minimum over
all repeats of all rounds.

* "before": the code of commit ``BASELINE`` (the last commit before bundles
  were verified by reproduction: exact recomputation on ~20 small dyadic
  points only), extracted with ``git archive`` and run in a child process with
  ``PYTHONPATH`` pointing at it;
* "after": the working tree, in a child process the same way.

Both children use the same interpreter and installed dependencies. Outside a
git checkout the "before" column is n/a.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _baseline import extract_baseline

ROOT = Path(__file__).resolve().parent.parent
#: the code before verification by reproduction (validation = exact recomputation on a small grid)
BASELINE = "2e08bea"
EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"


def _child(dtype: str, repeats: int) -> None:
    """Export the README bundle with the code on ``sys.path`` and time ``validate_bundle``."""
    import contextlib
    import io

    from zpml_runtime.bundle import validate_bundle
    from zpml_runtime.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bundle")
        argv = ["compile", EXPR, "--tau-infer", "1e-6", "--tau-train", "1e-3", "--dtype", dtype]
        with contextlib.redirect_stdout(io.StringIO()):
            if main([*argv, "--onnx", out]) != 0:
                raise SystemExit("zpml compile failed")
        validate_bundle(out)  # warm-up: imports, sympy caches
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            validate_bundle(out)
            times.append(time.perf_counter() - t0)
    import zpml_runtime

    print(json.dumps({"times": times, "code": str(Path(zpml_runtime.__file__).parent.parent)}))


def _measure(code_root: Path, dtype: str, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        dtype,
        "--repeats",
        str(repeats),
    ]
    proc = subprocess.run(cmd, cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({code_root}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(result["code"]).resolve() != code_root.resolve():
        raise RuntimeError(f"the child imported {result['code']}, not {code_root}")
    return result


def _ms(times: list[float]) -> tuple[float, float]:
    return statistics.median(times) * 1e3, min(times) * 1e3


def main() -> int:
    """Measure both sides and write the Markdown section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.repeats)
        return 0
    if args.out is None:
        parser.error("--out FILE is required")
    repeats = args.repeats or (5 if args.quick else 10)
    rounds = 1 if args.quick else 4
    rows = []
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        commit = extract_baseline(BASELINE, base)
        for dtype in ("float32", "float64"):
            before: dict | None = {"times": []} if commit else None
            after: dict = {"times": []}
            for _ in range(rounds):
                if before is not None:
                    before["times"] += _measure(base, dtype, repeats)["times"]
                after["times"] += _measure(ROOT, dtype, repeats)["times"]
            rows.append((dtype, before, after))
            print(dtype, before and _ms(before["times"]), _ms(after["times"]), flush=True)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    load = (
        f" 1-minute load average {load_start:.1f} at the start and {load_end:.1f} at the end on "
        f"{os.cpu_count()} CPUs (a busy machine inflates both columns alike)."
        if load_start is not None and load_end is not None
        else ""
    )
    lines = [
        "## bundle validation",
        "",
        "`benchmarks/bench_validate.py`: wall time of `validate_bundle` on the README example bundle "
        f'(`zpml compile "{EXPR}" --tau-infer 1e-6 --tau-train 1e-3`), median and minimum of '
        f"{rounds} x {repeats} calls (the two sides alternating in {rounds} rounds, one warm-up "
        'call each), fresh validator points every call. "before": '
        f"commit `{(commit or BASELINE)[:12]}` (exact recomputation on ~20 points of a small dyadic "
        'grid); "after": this tree (the graph re-emitted from the recorded expression and options '
        "and compared node by node, then exact recomputation and a bit-exact differential check "
        "against the numpy program on wide random, zero-set and tau-band points in batches of "
        "1, 2, 7, the full set and across a row-tile boundary)." + load,
        "",
        "| dtype | before median (ms) | before min (ms) | after median (ms) | after min (ms) | after / before |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for dtype, before, after in rows:
        a_med, a_min = _ms(after["times"])
        if before is None:
            lines.append(f"| {dtype} | n/a | n/a | {a_med:.1f} | {a_min:.1f} | n/a |")
        else:
            b_med, b_min = _ms(before["times"])
            lines.append(
                f"| {dtype} | {b_med:.1f} | {b_min:.1f} | {a_med:.1f} | {a_min:.1f} | {a_med / b_med:.2f}x |"
            )
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
