"""``zpml compile EXPR --onnx DIR``: parse, flatten and export a strict ONNX bundle."""

from __future__ import annotations

import argparse
from typing import Any

from zpml_runtime.cli import args as cli_args
from zpml_runtime.cli import options
from zpml_runtime.cli.errors import CliError, UsageError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register ``zpml compile``."""
    p = sub.add_parser("compile", help="compile an expression to an ONNX bundle")
    p.add_argument(
        "expression", help="rational expression, e.g. '(x**2 + 1)/(x - y)' (safe parser)"
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME", help="learnable coefficient"
    )
    p.add_argument(
        "--init", action="append", default=[], metavar="NAME=VALUE", help="initial value"
    )
    p.add_argument(
        "--const",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="named constant, e.g. pi=3.141592653589793 (exact decimal)",
    )
    p.add_argument(
        "--tau-infer", default="0", help="bottom threshold (default 0: exact zeros), read exactly"
    )
    p.add_argument("--tau-train", default=None, help="gap threshold (default: none)")
    p.add_argument("--validity-tau", default="0", help="threshold of every validity factor")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--variables", metavar="x,y", help="input column order (default: sorted names)")
    p.add_argument("--smoke-inputs", metavar="FILE.npy", help="smoke inputs [n, n_vars]")
    p.add_argument("--onnx", required=True, metavar="DIR", help="bundle directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    options.add_budget_options(p)
    options.add_signing_key(p, "sign metadata.json with the key in FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``zpml compile``."""
    from zpml_runtime.cli.compile_steps import compile_fru, print_summary

    if not args.onnx:
        raise UsageError("--onnx is an empty path; give the bundle directory to write")
    thresholds = {
        "tau_infer": cli_args.threshold_value(args.tau_infer, "--tau-infer", args.dtype),
        "tau_train": None
        if args.tau_train is None
        else cli_args.threshold_value(args.tau_train, "--tau-train", args.dtype),
        "validity_tau": cli_args.threshold_value(args.validity_tau, "--validity-tau", args.dtype),
    }
    params = cli_args.unique_params(args.param)
    init = cli_args.parse_init(args.init, params)
    constants = cli_args.parse_constants(args.const)
    budget = options.budget(args)
    key = options.signing_key(args)
    variables = None
    if args.variables is not None:
        variables = [v.strip() for v in args.variables.split(",") if v.strip()]
    fru, evaluator, config = compile_fru(
        args.expression, params, init, constants, variables, budget, thresholds, args.dtype
    )
    export = _export(args, fru, evaluator, key)
    print_summary(args.expression, fru, evaluator, config, thresholds, args.dtype, export)
    if key is not None:
        print("signed     metadata.sig (HMAC-SHA256 with the key from --signing-key-file)")
    return 0


def _export(args: argparse.Namespace, fru: Any, evaluator: Any, key: bytes | None) -> Any:
    """Write the bundle; returns ``(exported, smoke)``."""
    from pathlib import Path

    import torch

    from zpml_runtime.bundle import export_bundle
    from zpml_runtime.bundle.publish import BundlePathError
    from zpml_runtime.cli.compile_steps import default_smoke_inputs
    from zpml_runtime.cli.userfiles import load_npy

    out_dir = Path(args.onnx)
    if out_dir.exists() and not args.overwrite:
        raise CliError(f"{out_dir} already exists; pass --overwrite to replace it")
    values = evaluator.model.coefficient_values()
    if args.smoke_inputs is not None:
        smoke = load_npy(args.smoke_inputs, "--smoke-inputs")
    else:
        smoke = default_smoke_inputs(fru, values, args.dtype)
    try:
        exported = export_bundle(
            evaluator,
            args.onnx,
            (torch.from_numpy(smoke.astype(args.dtype)),),
            dtype=args.dtype,
            overwrite=args.overwrite,
            signing_key=key,
        )
    except BundlePathError as e:  # --onnx names a place where no bundle can be written
        raise UsageError(f"--onnx {args.onnx}: {e}") from None
    return exported, smoke
