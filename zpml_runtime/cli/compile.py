"""``zpml compile EXPR --bundle DIR``: parse, flatten and export a strict ONNX bundle.

``--bundle DIR`` writes a bundle directory (``model.onnx``, ``metadata.json``,
its hash and the smoke inputs), what ``inspect``, ``explain``, ``run`` and
``report`` read; ``--onnx DIR`` is the same option under its former name.
``--onnx-file FILE.onnx`` writes the bundle's ``model.onnx`` alone (no metadata,
so it cannot be validated or inspected); both may be given.
"""

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
    p.add_argument(
        "--bundle",
        "--onnx",
        dest="bundle",
        action=_StoreSpelling,
        metavar="DIR",
        help="bundle directory to write (model.onnx, metadata.json, metadata.sha256, smoke "
        "inputs); --onnx is the former name of this option",
    )
    p.add_argument(
        "--onnx-file",
        metavar="FILE.onnx",
        help="also (or only) write the bundle's model.onnx to this file: a bare ONNX model "
        "without metadata, which zpml cannot validate or inspect",
    )
    p.add_argument(
        "--box",
        metavar="x=0:1,y=-2:2",
        help="operating box (exact bounds) recorded in the bundle with its certified "
        "domain report; printed after compiling",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle or file")
    options.add_budget_options(p)
    options.add_signing_key(p, "sign metadata.json with the key in FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``zpml compile``."""
    from zpml_runtime.cli.compile_steps import compile_fru, print_summary

    _check_targets(args)
    if args.box is not None:
        cli_args.parse_box_option(args.box)  # syntax first: before compiling
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
    exported, smoke = _export(args, fru, evaluator, key)
    written = exported if args.bundle is not None else None
    print_summary(args.expression, fru, evaluator, config, thresholds, args.dtype, (written, smoke))
    if args.onnx_file is not None:
        print(f"onnx file written to {args.onnx_file} (the bundle's model.onnx, without metadata)")
    if args.box is not None:
        from zpml_runtime.cli.domain import print_domain, recorded_domain

        print_domain(recorded_domain(exported.info), "operating box")
    if key is not None:
        print("signed     metadata.sig (HMAC-SHA256 with the key from --signing-key-file)")
    return 0


class _StoreSpelling(argparse.Action):
    """Store the value and the spelling the user typed (``--bundle`` or ``--onnx``)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.bundle_option = option_string or "--bundle"


def _check_targets(args: argparse.Namespace) -> None:
    """At least one of ``--bundle``/``--onnx-file``; each a usable path (before compiling)."""
    import os

    option = getattr(args, "bundle_option", "--bundle")
    if args.bundle is None and args.onnx_file is None:
        raise UsageError(
            "the following arguments are required: --bundle DIR (or its former name --onnx "
            "DIR), or --onnx-file FILE.onnx"
        )
    if args.bundle is not None and not args.bundle:
        raise UsageError(f"{option} is an empty path; give the bundle directory to write")
    if args.onnx_file is not None:
        path = args.onnx_file
        if not path.lower().endswith(".onnx"):
            raise UsageError(
                f"--onnx-file {path!r} must end in .onnx (for a bundle directory use --bundle)"
            )
        if os.path.isdir(path):
            raise UsageError(f"--onnx-file {path} is a directory; give a file name ending in .onnx")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UsageError(f"--onnx-file {path}: the directory {parent} does not exist")
        if os.path.lexists(path) and not args.overwrite:
            raise CliError(f"{path} already exists; pass --overwrite to replace it")


def _export(args: argparse.Namespace, fru: Any, evaluator: Any, key: bytes | None) -> Any:
    """Write the bundle; returns ``(exported, smoke)``."""
    import contextlib
    import os
    import tempfile
    from pathlib import Path

    import torch

    from zpml_runtime.bundle import export_bundle
    from zpml_runtime.bundle.errors import BundlePathError
    from zpml_runtime.cli.compile_steps import default_smoke_inputs
    from zpml_runtime.cli.userfiles import load_npy

    if args.bundle is not None:
        out_dir = Path(args.bundle)
        if out_dir.exists() and not args.overwrite:
            raise CliError(f"{out_dir} already exists; pass --overwrite to replace it")
    values = evaluator.model.coefficient_values()
    if args.smoke_inputs is not None:
        smoke = load_npy(args.smoke_inputs, "--smoke-inputs")
    else:
        smoke = default_smoke_inputs(fru, values, args.dtype)
    option = getattr(args, "bundle_option", "--bundle")
    box = {} if args.box is None else {"input_box": _input_box(args.box, fru, values)}
    with contextlib.ExitStack() as stack:
        target = args.bundle
        if target is None:  # --onnx-file only: a temporary bundle beside the file
            parent = os.path.dirname(os.path.abspath(args.onnx_file))
            tmp = stack.enter_context(
                tempfile.TemporaryDirectory(prefix=".zpml-compile-", dir=parent)
            )
            target = os.path.join(tmp, "bundle")
        try:
            exported = export_bundle(
                evaluator,
                target,
                (torch.from_numpy(smoke.astype(args.dtype)),),
                dtype=args.dtype,
                overwrite=args.overwrite,
                signing_key=key,
                **box,
            )
        except BundlePathError as e:  # --bundle names a place where no bundle can be written
            raise UsageError(f"{option} {args.bundle}: {e}") from None
        if args.onnx_file is not None:
            _copy_model(Path(exported.path) / exported.info.model_file, args.onnx_file)
    return exported, smoke


def _input_box(text: str, fru: Any, values: dict[str, float]) -> Any:
    """``--box`` checked against the compiled variables (a usage error naming the field)."""
    from zpml_runtime.bundle.domain import check_input_box
    from zpml_runtime.bundle.errors import InputBoxError

    try:
        return check_input_box(text, [v.name for v in fru.variables], values)
    except InputBoxError as e:
        raise UsageError(f"--box ({e.field}): {e}") from e


def _copy_model(source: Any, path: str) -> None:
    """Copy the bundle's ``model.onnx`` to ``path`` atomically (temporary file + rename)."""
    import shutil

    from zpml_runtime.cli.userfiles import write_atomically

    def write(out: Any) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out)

    write_atomically(path, write)
