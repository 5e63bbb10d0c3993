"""``zpml calibrate --csv FILE --out DIR``: sweep tau_infer over held-out ``|Q|``."""

from __future__ import annotations

import argparse
import math
from typing import Any

from zpml_runtime.cli.args import csv_floats
from zpml_runtime.cli.errors import CliError, UsageError

__all__ = ["DEFAULT_TAUS", "add_parser", "run"]

DEFAULT_TAUS = "0,1e-8,1e-7,1e-6,1e-5,1e-4,1e-3,1e-2"


def add_parser(sub: Any) -> None:
    """Register ``zpml calibrate``."""
    p = sub.add_parser("calibrate", help="sweep tau_infer over held-out |Q| from a CSV file")
    p.add_argument("--csv", required=True, metavar="FILE", help="CSV file with a header row")
    p.add_argument("--q-column", default="q_abs", help="column of |Q| (default q_abs)")
    p.add_argument(
        "--in-range-column", default="in_range", help="column of labels (default in_range)"
    )
    p.add_argument("--taus", default=DEFAULT_TAUS, help=f"candidates (default {DEFAULT_TAUS})")
    p.add_argument(
        "--max-false-bottom-rate", type=float, default=0.01, help="target (default 0.01)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``zpml calibrate``."""
    from zpml_runtime.cli.userfiles import read_calibration_csv
    from zpml_runtime.errors import CalibrationError
    from zpml_runtime.metrics import (
        recommend_tau_infer,
        tau_infer_sweep_from_q_abs,
        write_tau_infer_sweep,
    )

    taus = csv_floats(args.taus, "--taus")
    rate = args.max_false_bottom_rate
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise UsageError(f"--max-false-bottom-rate {rate!r} must be a rate in [0, 1]")
    q, in_range = read_calibration_csv(args.csv, args.q_column, args.in_range_column)
    curves = tau_infer_sweep_from_q_abs(q_abs=q, is_in_range=in_range, taus=taus)
    provenance = {
        "csv": str(args.csv),
        "q_column": args.q_column,
        "in_range_column": args.in_range_column,
    }
    paths = write_tau_infer_sweep(
        args.out, curves, provenance=provenance, max_false_bottom_rate=rate
    )
    print(
        f"swept {len(taus)} thresholds on {curves.n_total} samples ({curves.n_in_range} in range)"
    )
    for path in paths.values():
        print(f"  wrote {path}")
    try:
        rec = recommend_tau_infer(curves, max_false_bottom_rate=rate)
    except CalibrationError as e:
        raise CliError(f"{e} (the sweep was written to {args.out})") from None
    print(f"recommended tau_infer = {rec.tau_infer!r} ({rec.reason})")
    return 0
