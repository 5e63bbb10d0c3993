"""The steps of ``zpml compile`` after argument parsing: compile, smoke inputs, summary."""

from __future__ import annotations

import re
import sys
import warnings
from fractions import Fraction
from typing import Any

from zpml_runtime.cli.errors import UsageError, one_line
from zpml_runtime.errors import ZeroProofRuntimeError

__all__ = [
    "budget_message",
    "check_coefficients",
    "compile_fru",
    "default_smoke_inputs",
    "flatten_noting_constants",
    "parse_expression",
    "print_summary",
    "with_unicode_hint",
]


def compile_fru(
    text: str,
    params: list[str],
    init: dict[str, float],
    constants: dict[str, str],
    variables: list[str] | None,
    budget: Any,
    thresholds: dict[str, Any],
    dtype: str,
) -> tuple[Any, Any, Any]:
    """Parse, flatten and build the strict evaluator; returns ``(fru, evaluator, config)``.

    Every compiler refusal (parse error, budget, coefficient overflow, bad option)
    is a :class:`UsageError`.
    """
    import torch

    import zpml_symbolic as zs
    from zpml_runtime.inference import InferenceConfig

    try:
        expr = parse_expression(zs, text, params, constants)
        fru = flatten_noting_constants(zs, expr, params, variables, budget)
        check_coefficients(fru, dtype)
        config = InferenceConfig(
            tau_infer=thresholds["tau_infer"], tau_train=thresholds["tau_train"]
        )
        evaluator = zs.strict_evaluator(
            fru,
            config=config,
            validity_taus=thresholds["validity_tau"],
            init=init or None,
            dtype=getattr(torch, dtype),
        )
    except UsageError:
        raise
    except zs.BudgetExceededError as e:
        raise UsageError(budget_message(e)) from e
    except (zs.ZeroProofError, ZeroProofRuntimeError) as e:
        raise UsageError(str(e)) from e
    return fru, evaluator, config


def check_coefficients(fru: Any, dtype: str) -> None:
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


def default_smoke_inputs(fru: Any, parameter_values: dict[str, float], dtype: str) -> Any:
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


def print_summary(
    text: str,
    fru: Any,
    evaluator: Any,
    config: Any,
    thresholds: dict[str, Any],
    dtype: str,
    export: tuple[Any, Any],
) -> None:
    """What ``zpml compile`` compiled and where the bundle went."""
    exported, smoke = export
    values = evaluator.model.coefficient_values()
    print(f"compiled  {text}")
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
        f"validity_tau={thresholds['validity_tau']!r} dtype={dtype}"
    )
    print(f"smoke inputs {smoke.shape[0]} row(s)")
    if exported is not None:
        print(f"bundle written to {exported.path} (bundle_id {exported.info.bundle_id})")


def parse_expression(zs: Any, text: str, params: list[str], constants: dict[str, str]) -> Any:
    """``zs.parse``; a parse error becomes one usage line with ASCII spellings of any
    non-ASCII characters (the parser's own :func:`ascii_spelling`)."""
    try:
        return zs.parse(text, parameters=params, constants=constants or None)
    except zs.ZeroProofError as e:
        raise UsageError(with_unicode_hint(one_line(e), text)) from e


def with_unicode_hint(message: str, text: str) -> str:
    """``message`` plus ASCII suggestions for the non-ASCII characters of ``text``."""
    from zpml_symbolic.frontend.unicode_hints import ascii_spelling

    spelled = {c: ascii_spelling(c) for c in dict.fromkeys(c for c in text if not c.isascii())}
    hints = [f"'{c}' -> '{r}'" for c, r in spelled.items() if r is not None]
    if not hints:
        return message
    suggestion = "".join(spelled.get(c) or c for c in text)
    return f"{message}; write ASCII: {', '.join(hints)} (e.g. {suggestion!r})"


def flatten_noting_constants(
    zs: Any, expr: Any, params: list[str], variables: list[str] | None, budget: Any
) -> Any:
    """``zs.flatten``; a constant name used as an input (``pi``) becomes one stderr line
    naming ``--const`` instead of a Python warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fru = zs.flatten(expr, parameters=params, variables=variables, budget=budget)
    for w in caught:
        if issubclass(w.category, zs.ConstantNameWarning):
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


def budget_message(e: Any) -> str:
    """A budget refusal, naming the ``zpml compile`` flag that raises that budget."""
    flag = "--" + str(getattr(e, "budget", "")).replace("_", "-")
    text = one_line(e)
    if flag in text:
        return text
    return f"{text} (raise it with zpml compile {flag} N)"
