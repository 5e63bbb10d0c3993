"""``zpml`` start-up: ``--help`` against ``inspect``/``explain``/``run`` on the README bundle.

Run as ``python benchmarks/bench_cli.py --out FILE [--quick]`` (protocol of
``benchmarks/run_all.py``). The bundle is the README's

    zpml compile "(x**2 + 1)/(x - y) + 1/(1 + 1/x)" --tau-infer 1e-6 --tau-train 1e-3 --bundle DIR

Every command runs as a fresh process (``python -m zpml_runtime.cli ...``, what
the ``zpml`` script runs), all commands alternating in several rounds so that a
busy machine slows them alike. Reported per command: the median and minimum
wall time and the median CPU time (user + system of the child, which a loaded
machine disturbs far less than wall time), and each one's ratio to ``--help``.
"before" runs the same commands on the code of commit ``BASELINE`` (the single
``cli.py`` module, before the ``cli/`` package), extracted with ``git archive``.

A second table says where the time of ``zpml inspect`` goes, measured in one
child process: each heavy import in turn, then ``validate_bundle`` (which
``inspect`` runs) split by cProfile into its stages.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _baseline import extract_baseline

ROOT = Path(__file__).resolve().parent.parent
#: the last commit with the single-module ``zpml_runtime/cli.py``
BASELINE = "99be7124648dee4a35ec92f6037c5f6f8a5edc6e"
EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
#: modules timed one after another in the breakdown child (each includes what it imports first)
IMPORTS = (
    "numpy",
    "torch",
    "sympy",
    "onnx",
    "onnxruntime",
    "flint",
    "zpml_symbolic",
    "zpml_runtime.bundle",
)
#: validate_bundle stages reported from the profile (cumulative; a later row runs inside the
#: row before it with one more level): (label, function name, file suffix, depth)
STAGES = (
    ("graph verification (`verify_graph`)", "verify_graph", "bundle/verify.py", 1),
    (
        "emitter fingerprint (re-emits a fixed input set)",
        "emitter_fingerprint",
        "bundle/reproduce.py",
        2,
    ),
    ("second line (wide points, differential)", "_second_line", "bundle/verify.py", 2),
    ("exact semantic recomputation", "check_semantics", "bundle/semantic.py", 3),
)


def _commands(bundle: str, inputs: str, out: str) -> dict[str, list[str]]:
    return {
        "--help": ["--help"],
        "inspect": ["inspect", bundle],
        "explain": ["explain", bundle, "--input", "0,1"],
        "run (3 rows)": ["run", bundle, "--inputs", inputs, "--out", out, "--overwrite"],
    }


def _time(argv: list[str], code_root: Path) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one ``python -m zpml_runtime.cli`` process."""
    env = dict(os.environ, PYTHONPATH=str(code_root))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "zpml_runtime.cli", *argv],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({code_root}): {proc.stderr[-1500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _breakdown_child(bundle: str) -> None:
    """Time each heavy import, then validate_bundle by stage; print JSON."""
    import cProfile
    import importlib
    import pstats

    imports = {}
    for name in IMPORTS:
        t0 = time.perf_counter()
        importlib.import_module(name)
        imports[name] = time.perf_counter() - t0
    from zpml_runtime.bundle import validate_bundle

    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    validate_bundle(bundle)
    profile.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    stages = {}
    for label, func, suffix, _ in STAGES:
        cum = [
            v[3] for (file, _, name), v in stats.items() if name == func and file.endswith(suffix)
        ]
        stages[label] = max(cum) if cum else None
    print(json.dumps({"imports": imports, "validate": total, "stages": stages}))


def _breakdown(bundle: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--breakdown", bundle]
    proc = subprocess.run(cmd, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"breakdown failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _stats(samples: list[tuple[float, float]]) -> tuple[float, float, float]:
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return statistics.median(walls), min(walls), statistics.median(cpus)


def _table(results: dict[str, list[tuple[float, float]]]) -> list[str]:
    help_wall, _, help_cpu = _stats(results["--help"])
    rows = []
    for name, samples in results.items():
        wall, wmin, cpu = _stats(samples)
        rows.append(
            f"| `zpml {name}` | {wall:.2f} | {wmin:.2f} | {cpu:.2f} | "
            f"{wall / help_wall:.1f}x | {cpu / help_cpu:.1f}x |"
        )
    return rows


def _floor_note(imported: float, ratio: float, validate: float) -> str:
    return (
        "`zpml inspect`, `explain` and `run` validate the bundle before anything else (validation "
        "must run), and validation needs torch (`zpml_core.result` and `zpml_core.arrays` import "
        "it at module level, and so does `zpml_runtime/bundle/traced.py`, which the emitter "
        "fingerprint imports), "
        "sympy (the recorded expression is flattened again), onnx and onnxruntime. These imports "
        f"alone take {imported:.2f} s here ({ratio:.0f}x `zpml --help`), validation itself "
        f"{validate:.2f} s, so `zpml inspect` within 2.5x of `zpml --help` is out of reach while "
        "validation loads these libraries; nothing is cached between runs. `zpml --help`, every "
        "subcommand's `--help` and usage errors found before loading a bundle import none of them."
    )


def main() -> int:
    """Measure and write the Markdown section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--breakdown", metavar="BUNDLE")
    args = parser.parse_args()
    if args.breakdown:
        _breakdown_child(args.breakdown)
        return 0
    if args.out is None:
        parser.error("--out FILE is required")
    rounds = 2 if args.quick else 5
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        base, work = Path(tmp) / "before", Path(tmp) / "work"
        base.mkdir()
        work.mkdir()
        has_base = extract_baseline(BASELINE, base) is not None
        bundle, inputs = str(work / "bundle"), str(work / "x.npy")
        np.save(inputs, np.array([[0.0, 1.0], [1.0, 1.0], [0.5, 2.0]]))
        compile_argv = [
            "compile",
            EXPR,
            "--tau-infer",
            "1e-6",
            "--tau-train",
            "1e-3",
            "--onnx",
            bundle,
        ]
        _time(compile_argv, ROOT)
        commands = _commands(bundle, inputs, str(work / "p.npz"))
        after: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
        before: dict[str, list[tuple[float, float]]] = {
            k: [] for k in commands if k != "run (3 rows)"
        }
        for _ in range(rounds):
            for name, argv in commands.items():
                after[name].append(_time(argv, ROOT))
                if has_base and name in before:
                    before[name].append(_time(argv, base))
        parts = _breakdown(bundle)
    for name in after:
        print(name, _stats(after[name]), flush=True)
    head = [
        "| command | median wall (s) | min wall (s) | median CPU (s) | wall / `--help` | CPU / `--help` |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    imports = parts["imports"]
    lines = [
        "## zpml command start-up",
        "",
        "`benchmarks/bench_cli.py`: each command as a fresh process on the README bundle "
        f'(`zpml compile "{EXPR}" --tau-infer 1e-6 --tau-train 1e-3`), {rounds} rounds with all '
        "commands alternating; CPU is user + system time of the child process.",
        "",
        "This tree:",
        "",
        *head,
        *_table(after),
    ]
    if has_base:
        lines += [
            "",
            f"Before (commit `{BASELINE[:12]}`, the single-module CLI):",
            "",
            *head,
            *_table(before),
        ]
    lines += [
        "",
        "Where `zpml inspect` spends its time (one process, wall seconds; each import includes "
        "what it imports itself and was not loaded before; indented stages run inside the stage "
        "above them):",
        "",
        "| step | seconds |",
        "|---|---:|",
        *[f"| `import {k}` | {v:.2f} |" for k, v in imports.items()],
        f"| `validate_bundle` (all of it) | {parts['validate']:.2f} |",
        *[
            f"| {'- ' * depth}{label} | {'n/a' if v is None else f'{v:.2f}'} |"
            for (label, v), (*_, depth) in zip(parts["stages"].items(), STAGES, strict=True)
        ],
    ]
    imported = sum(imports.values())
    help_wall = _stats(after["--help"])[0]
    lines += ["", _floor_note(imported, imported / help_wall, parts["validate"])]
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
