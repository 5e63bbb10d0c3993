"""The ``zpml`` command line: compile, inspect, explain, report, calibrate.

Every subcommand is a thin layer over the Python API (``zpml_symbolic`` and
``zpml_runtime.bundle``/``metrics``). User errors (the typed errors of both
packages, ``OSError``) print one line starting with ``zpml: error:`` to
stderr and exit with 2 (the command line itself is wrong: options,
expression, thresholds, ``--input`` values) or 1 (a file, bundle or data set
is unusable, or the reference smoke test failed); an unexpected exception is a
bug: one line naming the command, exit 1, never a traceback. Heavy imports
(torch, onnx) happen inside the subcommands, so ``zpml --help`` is fast.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

from zpml_runtime.errors import ThresholdUnderflowError, ZeroProofRuntimeError

DEFAULT_TAUS = "0,1e-8,1e-7,1e-6,1e-5,1e-4,1e-3,1e-2"
_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NONFINITE = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf}
_NONFINITE |= {"+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}
_TRUE, _FALSE = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}
_MAX_VALUE_CHARS = 100


class CliError(ZeroProofRuntimeError, ValueError):
    """A user error of the ``zpml`` command (exit status 1): bad file or data."""


class UsageError(CliError):
    """The command line itself is wrong (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------- small parsers


def _csv_floats(text: str, what: str) -> list[float]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what} is empty; give comma-separated numbers such as 1e-6,1e-5")
    try:
        return [float(t) for t in items]
    except ValueError:
        raise UsageError(f"{what} {text!r} must be comma-separated numbers") from None


def parse_threshold(text: str, option: str) -> Fraction:
    """An exact non-negative threshold from its decimal text (``1e-400`` stays positive)."""
    field = option.lstrip("-").replace("-", "_")
    item = text.strip()
    if len(item) > _MAX_VALUE_CHARS or not _DECIMAL.match(item):
        raise UsageError(
            f"{option} ({field}) {text[:40]!r} is not a number (use decimals such as 1e-6 or 0)"
        )
    value = Fraction(item)
    if value < 0:
        raise UsageError(f"{option} ({field}) {text!r} must be >= 0 (0 means 'exact zeros only')")
    return value


def threshold_float(value: Fraction, option: str, dtype: str) -> float:
    """The threshold as the config stores it (the smallest float64 ``>= value``, via
    ``zpml_core``'s exact converter); a positive value ``dtype`` cannot hold is refused."""
    import numpy as np

    from zpml_runtime.errors import ThresholdUnderflowError
    from zpml_runtime.inference.config import check_threshold

    field = option.lstrip("-").replace("-", "_")
    smallest = Fraction(float(np.finfo(dtype).smallest_subnormal))
    if 0 < value < smallest:
        raise ThresholdUnderflowError(
            f"{option} ({field}) = {_fraction_text(value)} is positive but below the smallest "
            f"positive {dtype} value ({float(smallest):.6g}): it would round to 0 and only catch "
            f"exact zeros. Use {option} >= {float(smallest):.6g}, or 0 for exact-zero-only semantics"
        )
    if value > Fraction(float(np.finfo(np.float64).max)):
        raise UsageError(f"{option} ({field}) is too large for float64; use a finite threshold")
    return check_threshold(value, field)


def parse_exact_input(text: str, variables: Sequence[str]) -> list[Fraction | float]:
    """Parse ``--input`` values: exact decimals as :class:`Fraction`, ``inf``/``nan`` as floats."""
    items = [t.strip() for t in text.split(",")] if text.strip() or variables else []
    if len(items) != len(variables):
        raise UsageError(
            f"--input {text!r} has {len(items)} value(s); the bundle takes {len(variables)} "
            f"({', '.join(variables) or 'no variables'})"
        )
    out: list[Fraction | float] = []
    for name, item in zip(variables, items, strict=True):
        low = item.lower()
        if low in _NONFINITE:
            out.append(_NONFINITE[low])
            continue
        if len(item) > _MAX_VALUE_CHARS or not _DECIMAL.match(item):
            raise UsageError(
                f"--input value {item[:40]!r} for {name} is not a number "
                "(use decimals such as 0.5, -2, 1e-3, or inf/nan)"
            )
        if not math.isfinite(float(item)):
            raise UsageError(f"--input value {item!r} for {name} overflows float64")
        out.append(Fraction(item))
    return out


def _bool_cell(value: str, row: int, column: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise CliError(
        f"CSV row {row}: {column} value {value[:40]!r} is not a boolean (0/1/true/false)"
    )


def read_calibration_csv(
    path: str, q_column: str, in_range_column: str
) -> tuple[list[float], list[bool]]:
    """``|Q|`` values and in-range labels from a CSV file (``csv`` module, header row)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in (q_column, in_range_column) if c not in header]
            if missing:
                raise CliError(
                    f"CSV {path} has no column(s) {missing}; its columns are {header} "
                    "(choose them with --q-column / --in-range-column)"
                )
            q, r = [], []
            for i, row in enumerate(reader, start=2):
                cell = row.get(q_column)
                if cell is None or row.get(in_range_column) is None:
                    raise CliError(f"CSV row {i} has too few fields")
                try:
                    q.append(float(cell.strip()))
                except ValueError:
                    raise CliError(
                        f"CSV row {i}: {q_column} value {cell[:40]!r} is not a number"
                    ) from None
                r.append(_bool_cell(row[in_range_column], i, in_range_column))
    except UnicodeDecodeError as e:
        raise CliError(f"CSV {path} is not UTF-8 text: {e.reason}") from None
    except csv.Error as e:
        raise CliError(f"CSV {path} is malformed: {e}") from None
    if not q:
        raise CliError(f"CSV {path} has a header but no data rows")
    return q, r


# ----------------------------------------------------------------- formatting


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _fraction_text(v: Fraction) -> str:
    """An exact rational as text; very long ones only approximately (with their size)."""
    try:
        approx = f"{float(v):.6g}"
    except OverflowError:
        approx = "-inf" if v < 0 else "inf"
    digits = max(len(str(abs(v.numerator))), len(str(v.denominator)))
    if digits > 40:
        return f"~{approx} (exact: a rational with {digits}-digit terms)"
    return str(v) if v.denominator == 1 else f"{v} (~{approx})"


def _sources(occurrences: Sequence[dict[str, Any]]) -> str:
    return "; ".join(f"{o.get('source')} @ {o.get('path')}" for o in occurrences) or "-"


# ----------------------------------------------------------------- compile


def _default_smoke_inputs(fru: Any, parameter_values: dict[str, float], dtype: str) -> Any:
    """Deterministic smoke inputs: 16 seeded points in [-2, 2]^n, the zero row, and one
    point on the zero set of each provenance factor that is linear in some variable
    (the other variables at 1, parameters at their values)."""
    import numpy as np
    import sympy as sp

    n = len(fru.variables)
    rows = [list(r) for r in np.random.default_rng(0).uniform(-2.0, 2.0, size=(16, n))]
    rows.append([0.0] * n)
    params = {p: sp.Rational(Fraction(parameter_values[p.name])) for p in fru.parameters}
    for src in fru.denominator_provenance:
        if not isinstance(src.factor, sp.Expr):
            continue
        factor = src.factor.subs(params)
        for j, v in enumerate(fru.variables):
            others = {w: sp.Integer(1) for w in fru.variables if w != v}
            poly = sp.Poly(sp.expand(factor.subs(others)), v)
            if poly.degree() == 1:
                a, b = poly.all_coeffs()
                point = [1.0] * n
                point[j] = float(-b / a)
                rows.append(point)
                break
    unique = list(dict.fromkeys(tuple(r) for r in rows))
    return np.array(unique, dtype=dtype).reshape(len(unique), n)


def _load_npy(path: str, option: str) -> Any:
    """A numeric array from a ``.npy`` file: a file that is not one (text, ``.npz``, a
    device or pipe) exits 2, a damaged or non-numeric ``.npy`` file or an unreadable
    path exits 1; never unpickled."""
    from zpml_runtime.bundle.userfiles import NpyContentError, UserFileError, load_plain_npy

    try:
        return load_plain_npy(path, option)
    except NpyContentError as e:
        raise CliError(str(e)) from None
    except UserFileError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot read {option} {path}: {e.strerror or e}") from None


def _parse_init(items: Sequence[str], params: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--init {item!r} must look like NAME=VALUE")
        if name not in params:
            raise UsageError(f"--init {name}: {name!r} is not declared with --param {name}")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--init {item!r}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise UsageError(f"--init {item!r}: the value must be finite")
        out[name] = number
    return out


def _check_coefficients(fru: Any, dtype: str) -> None:
    """Refuse an expression whose exact coefficients overflow ``dtype`` (a fault on every input)."""
    from zpml_runtime.bundle.exact import read_metadata_fru
    from zpml_runtime.bundle.export import fru_metadata
    from zpml_runtime.bundle.semantic import coefficient_overflows

    names = [v.name for v in fru.variables]
    meta = {"source": "compiled_fru", "fru": fru_metadata(fru), "input": {"variables": names}}
    view = read_metadata_fru(meta)
    assert view is not None
    problems = coefficient_overflows(view, dtype)
    if problems:
        raise UsageError(problems[0] + (" (use --dtype float64)" if dtype == "float32" else ""))


def _cmd_compile(args: argparse.Namespace) -> int:
    import torch

    import zpml_symbolic as zs
    from zpml_runtime.bundle import export_bundle
    from zpml_runtime.bundle.publish import BundlePathError
    from zpml_runtime.inference import InferenceConfig

    if not args.onnx:
        raise UsageError("--onnx is an empty path; give the bundle directory to write")
    params = _unique_params(args.param)
    init = _parse_init(args.init, params)
    constants = _parse_constants(args.const)
    budget = _budget(args)
    signing_key = _signing_key(args)
    variables = None
    if args.variables is not None:
        variables = [v.strip() for v in args.variables.split(",") if v.strip()]
    tau_infer = threshold_float(parse_threshold(args.tau_infer, "--tau-infer"), "--tau-infer", args.dtype)
    tau_train = None
    if args.tau_train is not None:
        tau_train = threshold_float(
            parse_threshold(args.tau_train, "--tau-train"), "--tau-train", args.dtype
        )
    validity_tau = threshold_float(
        parse_threshold(args.validity_tau, "--validity-tau"), "--validity-tau", args.dtype
    )
    try:
        try:
            expr = zs.parse(args.expression, parameters=params, constants=constants or None)
        except zs.ZeroProofError as e:
            raise UsageError(_with_unicode_hint(_one_line(e), args.expression)) from e
        fru = _flatten_noting_constants(zs, expr, params, variables, budget)
        _check_coefficients(fru, args.dtype)
        config = InferenceConfig(tau_infer=tau_infer, tau_train=tau_train)
        evaluator = zs.strict_evaluator(
            fru,
            config=config,
            validity_taus=validity_tau,
            init=init or None,
            dtype=getattr(torch, args.dtype),
        )
    except UsageError:
        raise
    except zs.BudgetExceededError as e:
        raise UsageError(_budget_message(e)) from e
    except (zs.ZeroProofError, ZeroProofRuntimeError) as e:
        raise UsageError(str(e)) from e
    out_dir = Path(args.onnx)
    if out_dir.exists() and not args.overwrite:
        raise CliError(f"{out_dir} already exists; pass --overwrite to replace it")
    values = evaluator.model.coefficient_values()
    if args.smoke_inputs is not None:
        smoke = _load_npy(args.smoke_inputs, "--smoke-inputs")
    else:
        smoke = _default_smoke_inputs(fru, values, args.dtype)
    try:
        exported = export_bundle(
            evaluator,
            args.onnx,
            (torch.from_numpy(smoke.astype(args.dtype)),),
            dtype=args.dtype,
            overwrite=args.overwrite,
            signing_key=signing_key,
        )
    except BundlePathError as e:  # --onnx names a place where no bundle can be written
        raise UsageError(f"--onnx {args.onnx}: {e}") from None
    print(f"compiled  {args.expression}")
    print(f"variables {', '.join(v.name for v in fru.variables) or '(none)'}")
    if values:
        print("parameters " + ", ".join(f"{k}={v:g}" for k, v in values.items()))
    print(f"P = {fru.numerator}")
    print(f"Q = {fru.denominator}")
    if fru.strict_validity_sources:
        print("validity factors (not enforced by Q):")
        for i, src in enumerate(fru.strict_validity_sources):
            print(f"  [{i}] {src.factor}  from {src.source!r} at {src.path}")
    else:
        print("validity factors: none (Q enforces every division)")
    print(
        f"thresholds tau_infer={config.tau_infer!r} tau_train={config.tau_train!r} "
        f"validity_tau={validity_tau!r} dtype={args.dtype}"
    )
    print(f"smoke inputs {smoke.shape[0]} row(s)")
    print(f"bundle written to {exported.path} (bundle_id {exported.metadata['bundle_id']})")
    if signing_key is not None:
        print("signed     metadata.sig (HMAC-SHA256 with the key from --signing-key-file)")
    return 0


def _flatten_noting_constants(
    zs: Any, expr: Any, params: list[str], variables: list[str] | None, budget: Any
) -> Any:
    """``zs.flatten``; a constant name used as an input (``pi``) becomes one stderr line
    naming ``--const`` instead of a Python warning."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fru = zs.flatten(expr, parameters=params, variables=variables, budget=budget)
    for w in caught:
        if type(w.category).__name__ == "type" and w.category.__name__ == "ConstantNameWarning":
            names = re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)' is treated as an input", str(w.message))
            name = names[0] if names else "NAME"
            print(
                f"zpml: warning: '{name}' is an input variable here; if it is the constant, "
                f"pass --const {name}=VALUE (e.g. --const pi=3.141592653589793)",
                file=sys.stderr,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fru


def _parse_constants(items: Sequence[str]) -> dict[str, str]:
    """``--const NAME=VALUE`` (repeatable): exact decimals, each name once."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UsageError(f"--const {item!r} must look like NAME=VALUE, e.g. pi=3.141592653589793")
        if name in out:
            raise UsageError(f"--const {name} is given twice; give each constant once")
        if len(value) > _MAX_VALUE_CHARS or not _DECIMAL.match(value):
            raise UsageError(
                f"--const {item!r}: {value[:40]!r} is not a decimal number (it is read exactly)"
            )
        out[name] = value
    return out


def _unique_params(items: Sequence[str]) -> list[str]:
    """``--param`` names in order; a name given twice is refused."""
    seen: list[str] = []
    for name in items:
        if name in seen:
            raise UsageError(
                f"--param {name} is given twice; declare each learnable coefficient once"
            )
        seen.append(name)
    return seen


_BUDGET_OPTIONS = {
    "max_degree": int,
    "max_terms": int,
    "max_work": int,
    "max_seconds": float,
    "max_coefficient_bits": int,
}


def _budget(args: argparse.Namespace) -> Any:
    """The flattening :class:`Budget` from ``--max-*`` (defaults for the options not given)."""
    from zpml_symbolic.flatten.budget import Budget

    given = {k: getattr(args, k) for k in _BUDGET_OPTIONS if getattr(args, k, None) is not None}
    if not given:
        return None
    try:
        return Budget(**given)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from e


def _budget_message(e: Any) -> str:
    """A budget refusal, naming the ``zpml compile`` flag that raises that budget."""
    flag = "--" + str(getattr(e, "budget", "")).replace("_", "-")
    text = _one_line(e)
    if flag in text:
        return text
    return f"{text} (raise it with zpml compile {flag} N)"


#: ASCII replacements suggested for characters users paste from papers
_UNICODE_HINTS = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "*", "\u22c5": "*", "\u00b7": "*",
    "\u2217": "*", "\u00f7": "/", "\u2215": "/", "\u00b2": "**2", "\u00b3": "**3",
    "\u03c0": "pi", "\u03bb": "lam", "\u039b": "Lam",
}


def _ascii_for(ch: str) -> str | None:
    import unicodedata

    if ch in _UNICODE_HINTS:
        return _UNICODE_HINTS[ch]
    name = unicodedata.name(ch, "")
    if name.startswith("SUBSCRIPT ") or name.startswith("SUPERSCRIPT "):
        digit = unicodedata.digit(ch, None)
        if digit is not None:
            return str(digit) if name.startswith("SUBSCRIPT ") else f"**{digit}"
    if name.startswith("GREEK SMALL LETTER ") or name.startswith("GREEK CAPITAL LETTER "):
        word = name.split(" LETTER ", 1)[1].lower().replace("lamda", "lam")
        return word if "SMALL" in name else word.capitalize()
    return None


def _with_unicode_hint(message: str, text: str) -> str:
    """``message`` plus ASCII suggestions for the non-ASCII characters of ``text``."""
    hints = []
    for ch in dict.fromkeys(c for c in text if ord(c) > 127):
        repl = _ascii_for(ch)
        if repl is not None:
            hints.append(f"'{ch}' -> '{repl}'")
    if not hints:
        return message
    suggestion = "".join(_ascii_for(c) or c if ord(c) > 127 else c for c in text)
    return f"{message}; write ASCII: {', '.join(hints)} (e.g. {suggestion!r})"


def _signing_key(args: argparse.Namespace) -> bytes | None:
    """The HMAC key from ``--signing-key-file`` (:func:`read_signing_key`: the file's
    bytes without one trailing newline; a regular file of at most 64 KiB), or None."""
    from zpml_runtime.bundle.userfiles import UserFileError, read_signing_key

    path = getattr(args, "signing_key_file", None)
    if path is None:
        return None
    try:
        return read_signing_key(path, what="--signing-key-file")
    except UserFileError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot read --signing-key-file {path}: {e.strerror or e}") from None


# ----------------------------------------------------------------- inspect


def _cmd_inspect(args: argparse.Namespace) -> int:
    from zpml_runtime.bundle import validate_bundle
    from zpml_runtime.bundle.exact import read_metadata_fru
    from zpml_runtime.bundle.multi import expression_views, is_multi

    vb = validate_bundle(args.dir, signing_key=_signing_key(args), **_policy(args))
    m = vb.metadata
    cfg, eff = m["inference_config"], m["effective_thresholds"]
    rows = [
        ("bundle", f"{vb.path} (valid{'' if vb.verified else ', UNVERIFIED'})"),
        (
            "verified",
            f"yes: {vb.verification}" if vb.verified else f"UNVERIFIED: {vb.unverified_reason}",
        ),
        ("bundle_id", m["bundle_id"]),
        ("source", m["source"]),
        ("dtype", m["input"]["dtype"]),
        ("input", f"{m['input']['name']} {m['input']['shape']}, batch axis 0"),
        ("variables", ", ".join(m["input"]["variables"]) or "(none)"),
        ("parameters", ", ".join(f"{k}={v!r}" for k, v in m["parameters"].items()) or "(none)"),
        (
            "thresholds",
            f"tau_infer={cfg['tau_infer']!r} tau_train={cfg['tau_train']!r} "
            f"validity_taus={m['validity_taus']!r}",
        ),
        (
            "effective",
            f"t_infer={eff['t_infer']!r} t_train={eff['t_train']!r} "
            f"t_factors={eff['t_factors']!r} ({eff['dtype']})",
        ),
        ("outputs", ", ".join(m["output_order"])),
        ("smoke", f"{vb.smoke_inputs.shape} {vb.smoke_inputs.dtype} ({m['smoke_inputs']['file']})"),
        ("model", f"{m['model_file']} sha256 {m['model_sha256']} ({m['model_size']} bytes)"),
    ]
    if args.signing_key_file is not None:
        rows.append(("signature", "metadata.sig matches the key (HMAC-SHA256)"))
    views: list[tuple[str | None, Any]] = []
    if is_multi(m):
        mo = m["multi_output"]
        rows.append(("outputs/sample", f"{mo['k']}: {', '.join(mo['output_names'])} (columns of [batch, {mo['k']}])"))
        if m.get("expressions") is not None:
            views = [(v["output_name"], read_metadata_fru(v)) for v, _ in expression_views(m)]
        else:
            rows += [("P/Q", "n/a (traced model: no exact terms in the metadata)")]
    else:
        fru = read_metadata_fru(m)
        if fru is not None:
            views = [(None, fru)]
        else:
            rows += [("P/Q", "n/a (traced model: no exact terms in the metadata)")]
    for label, fru in views:
        tag = f" [{label}]" if label is not None else ""
        rows += [(f"expression{tag}", fru.expression), (f"P{tag}", fru.numerator), (f"Q{tag}", fru.denominator)]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    for label, fru in views:
        print()
        if label is not None:
            print(f"output {label}:")
        if not fru.factors:
            print("provenance: no division in the expression")
        else:
            print("provenance (denominator factors):")
            table = [
                (
                    str(f.index),
                    f.factor,
                    f.kind,
                    f"validity output {f.output_index}" if f.retained else "Q",
                    _sources(f.occurrences),
                )
                for f in fru.factors
            ]
            print(_table(("#", "factor", "kind", "enforced by", "sources"), table))
    return 0


# ----------------------------------------------------------------- explain


def _cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np

    from zpml_runtime.bundle.exact import read_metadata_fru
    from zpml_runtime.bundle.multi import expression_views, is_multi, view_outputs

    runtime = _load_quietly(args.dir, _signing_key(args), args)
    variables = runtime.variables
    points = [parse_exact_input(text, variables) for text in args.input]
    x = np.array([[float(v) for v in p] for p in points], dtype=np.float64)
    with np.errstate(over="ignore"):  # overflow to inf is reported per value below
        cast = x.reshape(len(points), len(variables)).astype(runtime.input_dtype)
    out = runtime.run(cast).as_dict()
    meta = runtime.metadata
    # one (label, outputs, exact FRU, factor output names) per output of the bundle
    parts: list[tuple[str | None, dict[str, Any], Any, list[str]]] = []
    if is_multi(meta):
        if meta.get("expressions") is not None:
            for view, mapping in expression_views(meta):
                parts.append(
                    (view["output_name"], view_outputs(out, view, mapping), read_metadata_fru(view), view["output_order"][6:])
                )
        else:
            for j, name in enumerate(meta["multi_output"]["output_names"]):
                col = {k: (v[:, j] if v.ndim == 2 else v) for k, v in out.items()}
                parts.append((name, col, None, meta["output_order"][6:]))
    else:
        parts.append((None, out, read_metadata_fru(meta), meta["output_order"][6:]))
    for k, point in enumerate(points):
        typed = [t.strip() for t in args.input[k].split(",")] if variables else []
        shown = ", ".join(f"{v}={t}" for v, t in zip(variables, typed, strict=True))
        print(f"input {k}: {shown or '(no variables)'}")
        rounded = False
        for j, v in enumerate(point):
            seen = float(cast[k, j])
            if isinstance(v, Fraction) and (not math.isfinite(seen) or Fraction(seen) != v):
                rounded = True
                print(
                    f"  note: {variables[j]}={typed[j]} is not exact in {runtime.input_dtype}; "
                    f"the runtime saw {seen!r}"
                )
        for label, values, fru, factor_outputs in parts:
            if label is not None:
                print(f" output {label}:")
            _explain_one(values, k, fru, factor_outputs, point, rounded, runtime)
    return 0


def _explain_one(
    out: dict[str, Any],
    k: int,
    fru: Any,
    factor_outputs: Sequence[str],
    point: Sequence[Fraction | float],
    rounded: bool,
    runtime: Any,
) -> None:
    """Print the runtime outputs of sample ``k`` and, for compiled bundles, the exact factors."""
    names = {0: "finite", 1: "fault", 2: "semantic", 3: "mixed"}
    code = int(out["bottom_provenance"][k])
    bottom = bool(out["bottom_mask"][k])
    print(
        f"  runtime ({runtime.input_dtype}): decoded={float(out['decoded'][k])!r} "
        f"bottom={bottom} gap={bool(out['gap_mask'][k])} "
        f"fault={bool(out['fault_mask'][k])} "
        f"semantic_bottom={bool(out['semantic_bottom_mask'][k])} "
        f"provenance={code} ({names.get(code, '?')})"
    )
    for name in factor_outputs:
        print(f"  {name} = {out[name][k].item()!r}")
    if fru is None:
        print("  exact factors: n/a (traced model: no exact terms in the metadata)")
        return
    exact_bottom, q = _explain_exact(fru, point)
    _explain_agreement(exact_bottom, bottom, q, rounded, runtime)


def _explain_exact(fru: Any, point: Sequence[Fraction | float]) -> tuple[bool, Fraction | None]:
    """Print every provenance factor evaluated exactly; return (exactly bottom, exact Q)."""
    from zpml_runtime.bundle.exact import eval_terms_exact

    gens = fru.generator_values(point)
    bad = {i for i, v in enumerate(gens) if not isinstance(v, Fraction) and not math.isfinite(v)}
    # Parameters are floats: their exact binary value.
    exact = [Fraction(v) if i not in bad else Fraction(0) for i, v in enumerate(gens)]

    def value(terms: Any) -> Fraction | None:
        """Exact value, or None when a term uses a non-finite generator."""
        if any(e and i in bad for exps, _ in terms for i, e in enumerate(exps)):
            return None
        return eval_terms_exact(terms, exact)

    if bad:
        names = [fru.generators[i] for i in sorted(bad)]
        print(
            f"  exact: {', '.join(names)} non-finite: a fault (every value using it is non-finite)"
        )
    bottomed = []
    print("  denominator factors (exact at the decimal input):")
    if not fru.factors:
        print("    none (no division)")
    for f in fru.factors:
        v = value(f.terms)
        where = "Q" if not f.retained else f"validity output {f.output_index}"
        if v is None or v == 0:
            bottomed.append(f)
        text = "non-finite" if v is None else _fraction_text(v)
        mark = "  <- bottom" if v is None or v == 0 else ""
        print(f"    #{f.index} {f.factor} = {text}  [{f.kind}, in {where}]{mark}")
    q, p = value(fru.denominator_terms), value(fru.numerator_terms)
    # a fault needs P, Q or a factor to use the non-finite input (docs/semantics.md section 3)
    fault = p is None or q is None or any(value(f.terms) is None for f in bottomed)
    if fault:
        print(
            f"  exact: Q = {'non-finite' if q is None else _fraction_text(q)}; strict value = bottom (fault)"
        )
    elif bottomed or q == 0:
        print(f"  exact: Q = {_fraction_text(q)}; strict value = bottom")
    else:
        assert p is not None and q is not None
        print(f"  exact: Q = {_fraction_text(q)}; strict value P/Q = {_fraction_text(p / q)}")
    if bottomed:
        print("  bottomed denominators:")
        for f in bottomed:
            for o in f.occurrences:
                print(
                    f"    {o.get('source')}  at {o.get('path')}  ({o.get('kind')}, factor {f.factor})"
                )
    else:
        print("  bottomed denominators: none")
    return bool(fault or bottomed or q == 0), q


def _explain_agreement(
    exact_bottom: bool, bottom: bool, q: Fraction | None, rounded: bool, runtime: Any
) -> None:
    """Say why the runtime and the exact evaluation differ, when they do."""
    if exact_bottom == bottom:
        return
    dtype = runtime.input_dtype
    if exact_bottom:
        why = (
            "the runtime evaluated at the rounded input, which is off the zero set"
            if rounded
            else f"rounding in {dtype}; please report this with the bundle"
        )
        print(f"  note: exactly bottom, but the runtime accepted it: {why}")
        return
    tau = float(runtime.metadata["inference_config"]["tau_infer"])
    if q is not None and abs(q) < Fraction(tau):
        print(f"  note: |Q| < tau_infer={tau!r}: bottom by threshold, not by an exact zero")
    else:
        print(
            f"  note: no exact zero: bottom from a validity threshold, from evaluating in "
            f"{dtype} (rounding/overflow){' at the rounded input' if rounded else ''}"
        )


# ----------------------------------------------------------------- report, calibrate


def _cmd_report_bundle(args: argparse.Namespace) -> int:
    import warnings

    from zpml_runtime.bundle import UnverifiedBundleWarning
    from zpml_runtime.bundle.report import write_bundle_report
    from zpml_runtime.bundle.userfiles import NotARegularFileError, NotNpyFileError

    signing_key = _signing_key(args)
    try:
        with warnings.catch_warnings():  # the report says UNVERIFIED itself (printed below)
            warnings.simplefilter("ignore", UnverifiedBundleWarning)
            report = write_bundle_report(
                args.dir, inputs=args.inputs, signing_key=signing_key, **_policy(args)
            )
    except (NotNpyFileError, NotARegularFileError) as e:  # --inputs is not a .npy file
        raise UsageError(str(e)) from None
    s = report.summary
    print(f"validation report for {report.path} ({s['inputs']['samples']} samples)")
    if not s["validation"]["verified"]:
        print(f"  UNVERIFIED: {s['validation']['unverified']}")
    print(
        f"  bottom rate {s['rates']['bottom_rate']:.4g}, gap rate {s['rates']['gap_rate']:.4g}, "
        f"fault rate {s['rates']['fault_rate']:.4g}"
    )
    smoke = s["reference_smoke_test"]
    print(f"  reference smoke test: {smoke['status']}")
    print(f"  recommended fallback: {s['recommended_fallback']['policy']}")
    for path in report.files.values():
        print(f"  wrote {path}")
    if smoke["status"] == "failed":
        raise CliError(f"the reference smoke test failed: {smoke.get('detail', '')}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from zpml_runtime.errors import CalibrationError
    from zpml_runtime.metrics import (
        recommend_tau_infer,
        tau_infer_sweep_from_q_abs,
        write_tau_infer_sweep,
    )

    taus = _csv_floats(args.taus, "--taus")
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


# ----------------------------------------------------------------- parsers


def _add_report_bundle(sub: Any) -> None:
    p = sub.add_parser("bundle", help="write VALIDATION_REPORT.{md,summary.json,summary.svg}")
    p.add_argument("dir", help="bundle directory")
    p.add_argument(
        "--inputs", metavar="FILE.npy", help="inputs [n, n_vars] (default: smoke inputs)"
    )
    _add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    _add_verification_flags(p)
    p.set_defaults(func=_cmd_report_bundle)


def _add_signing_key(p: Any, what: str) -> None:
    p.add_argument(
        "--signing-key-file",
        metavar="FILE",
        default=None,
        help=f"{what} (HMAC-SHA256). The key is the file's bytes without one trailing "
        "newline, so 'echo KEY > FILE' gives the key b'KEY'; a regular file of at most 64 KiB",
    )


def _add_verification_flags(p: Any) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept a bundle whose graph cannot be verified by reproduction (written by another "
        "zpml version, or without its exact expression); everything then says UNVERIFIED",
    )
    group.add_argument(
        "--require-verified",
        action="store_true",
        help="refuse every bundle whose graph is not verified, traced models included",
    )


def _policy(args: argparse.Namespace) -> dict[str, bool]:
    return {
        "allow_unverified": bool(getattr(args, "allow_unverified", False)),
        "require_verified": bool(getattr(args, "require_verified", False)),
    }


def _load_quietly(directory: str, signing_key: bytes | None, args: argparse.Namespace) -> Any:
    """load_onnx_runtime_bundle; its UNVERIFIED warning becomes a line the command prints."""
    import warnings

    from zpml_runtime.bundle import UnverifiedBundleWarning, load_onnx_runtime_bundle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedBundleWarning)
        runtime = load_onnx_runtime_bundle(directory, signing_key=signing_key, **_policy(args))
    if not runtime.verified:
        print(f"UNVERIFIED: {runtime.unverified_reason}")
    return runtime


def build_parser(prog: str = "zpml") -> argparse.ArgumentParser:
    """The ``zpml`` argument parser."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("zpml")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ver = "unknown"
    parser = _Parser(
        prog=prog, description="Compile, inspect, explain and report strict ONNX bundles."
    )
    parser.add_argument("--version", action="version", version=f"zpml {ver}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    for option, kind in _BUDGET_OPTIONS.items():
        flag = "--" + option.replace("_", "-")
        p.add_argument(
            flag, type=kind, default=None, metavar="N", help=f"flattening budget {option} (raise when refused)"
        )
    _add_signing_key(p, "sign metadata.json with the key in FILE")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("inspect", help="validate a bundle and print its metadata and provenance")
    p.add_argument("dir", help="bundle directory")
    _add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    _add_verification_flags(p)
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("explain", help="run a bundle on inputs and explain its bottoms exactly")
    p.add_argument("dir", help="bundle directory")
    p.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="V1,V2,...",
        help="values in variable order",
    )
    _add_signing_key(p, "require a valid metadata.sig under the key in FILE")
    _add_verification_flags(p)
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("report", help="validation reports")
    _add_report_bundle(p.add_subparsers(dest="report_kind", required=True, metavar="KIND"))

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
    p.set_defaults(func=_cmd_calibrate)
    return parser


def _one_line(e: BaseException) -> str:
    from zpml_runtime.bundle.format import BundleValidationError
    from zpml_symbolic.errors import ParseError

    if isinstance(e, BundleValidationError):
        return f"bundle {e.directory!r} is invalid: " + "; ".join(e.problems)
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        return f"{e.strerror}: {e.filename}"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    first = lines[0]
    # A parse error's further lines are the text and a caret: the first line has the column.
    parse_error = isinstance(e, ParseError) or isinstance(e.__cause__, ParseError)
    return first if parse_error else " ".join(lines)


def _glue_input_values(argv: Sequence[str]) -> list[str]:
    """``--input -1,3`` -> ``--input=-1,3`` (argparse would take ``-1,3`` for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--input" and i + 1 < len(argv):
            out.append(f"--input={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    from zpml_symbolic.errors import ZeroProofError

    argv = _glue_input_values(sys.argv[1:] if argv is None else list(argv))
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except SystemExit as e:  # --help / --version
        return e.code if isinstance(e.code, int) else 0
    except (UsageError, ThresholdUnderflowError) as e:  # a threshold from the command line
        print(f"zpml: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (ZeroProofError, ZeroProofRuntimeError, OSError) as e:
        print(f"zpml: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a bug: one line, not a traceback
        words = [a for a in argv if not a.startswith("-")]
        command = " ".join(words[:2] if words[:1] == ["report"] else words[:1]) or "zpml"
        detail = (str(e).splitlines() or [""])[0][:300]
        print(
            f"zpml: error: {command} failed unexpectedly ({type(e).__name__}: {detail}); "
            "please report this with the command line",
            file=sys.stderr,
        )
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zpml`` console script; returns the exit status."""
    return _run(build_parser(), argv)


def report_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m zpml_runtime.report bundle DIR [--inputs FILE]``."""
    parser = _Parser(prog="python -m zpml_runtime.report", description="Bundle validation report.")
    _add_report_bundle(parser.add_subparsers(dest="report_kind", required=True, metavar="KIND"))
    return _run(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
