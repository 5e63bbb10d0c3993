"""What to evaluate for one or several FlattenedFRUs: named division-free roots.

For each FRU ``k`` (prefix ``""`` for a single one, ``"e{k}_"`` for several)
the plan lists ``P``, ``Q`` and each retained validity factor ``V{i}``, all
as division-free IR in the canonical gauge, lowered together so shared
subexpressions are computed once across expressions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from zpml_symbolic.emit.lowering.gauge import OutputGauge, regauge
from zpml_symbolic.emit.lowering.names import parameter_keys
from zpml_symbolic.emit.lowering.program import Program, lower
from zpml_symbolic.emit.lowering.taps import product_leaves, tap_names
from zpml_symbolic.errors import EmitError, InvalidArgumentError
from zpml_symbolic.flatten.fru import FlattenedFRU
from zpml_symbolic.ir.node import Node


@dataclass(frozen=True, slots=True)
class OutputNames:
    """Program output names of one FRU."""

    P: str
    Q: str
    V: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Several FRUs lowered into one :class:`Program` over a common input order."""

    frus: tuple[FlattenedFRU, ...]
    variables: tuple[str, ...]
    parameters: tuple[str, ...]
    program: Program
    names: tuple[OutputNames, ...]
    #: per FRU, the power-of-two gauge of the emitted outputs (see :mod:`.gauge`); () = identity
    gauges: tuple[OutputGauge, ...] = ()
    #: per FRU, the factors (leaves) its emitted ``Q`` is the product of, () when ``Q`` is
    #: not a product; ``program.taps`` names them ``q_taps[k]`` (see :mod:`..analyses.underflow`)
    q_leaves: tuple[tuple[Node, ...], ...] = ()
    q_taps: tuple[tuple[str, ...], ...] = ()

    def gauge(self, k: int) -> OutputGauge:
        """Gauge of FRU ``k``'s emitted outputs (emitted = ``2**-e`` times canonical)."""
        if self.gauges:
            return self.gauges[k]
        return OutputGauge(0, (0,) * len(self.names[k].V))

    def leaves(self, k: int) -> tuple[Node, ...]:
        """The factors FRU ``k``'s emitted ``Q`` is the product of (``()``: not a product)."""
        return self.q_leaves[k] if self.q_leaves else ()

    @property
    def parameter_keys(self) -> tuple[str, ...]:
        """Storage key of each parameter in the torch back-end (see :mod:`.names`)."""
        return parameter_keys(self.parameters)


def make_plan(
    frus: Sequence[FlattenedFRU], *, variables: Sequence[str | sp.Symbol] | None = None
) -> Plan:
    """Lower ``frus`` into one program; inputs in ``variables`` order (default: first-seen)."""
    names_seen: dict[str, None] = {}
    params_seen: dict[str, None] = {}
    for f in frus:
        for s in f.variables:
            names_seen.setdefault(s.name, None)
        for s in f.parameters:
            params_seen.setdefault(s.name, None)
    clash = set(names_seen) & set(params_seen)
    if clash:
        raise EmitError(f"{sorted(clash)} are inputs of one expression and parameters of another")
    var_names = tuple(names_seen) if variables is None else _variable_order(variables, names_seen)
    listed = sorted(set(var_names) & set(params_seen))
    if listed:
        raise InvalidArgumentError(
            f"variables= lists {listed}, which are parameters (learnable coefficients), not inputs"
        )
    outputs = []
    out_names = []
    gauges = []
    leaves_k: list[tuple[Node, ...]] = []
    taps_k: list[tuple[str, ...]] = []
    taps: list[tuple[str, Node]] = []
    for k, f in enumerate(frus):
        pre = "" if len(frus) == 1 else f"e{k}_"
        vs = tuple(f"{pre}V{i}" for i in range(len(f.validity_factor_irs)))
        out_names.append(OutputNames(f"{pre}P", f"{pre}Q", vs))
        P, Q, V, gauge = regauge(f.numerator_ir, f.denominator_ir, list(f.validity_factor_irs))
        gauges.append(gauge)
        outputs += [(f"{pre}P", P), (f"{pre}Q", Q)]
        outputs += list(zip(vs, V, strict=True))
        leaves = product_leaves(Q)
        names = tap_names(pre, len(leaves))
        leaves_k.append(leaves)
        taps_k.append(names)
        taps += list(zip(names, leaves, strict=True))
    program = lower(outputs, variables=var_names, parameters=tuple(params_seen), taps=taps)
    return Plan(
        tuple(frus),
        var_names,
        tuple(params_seen),
        program,
        tuple(out_names),
        tuple(gauges),
        tuple(leaves_k),
        tuple(taps_k),
    )


def scaled_config(config: Any, e: int) -> Any:
    """``config`` with its thresholds multiplied by ``2**-e`` (the emitted gauge of ``Q``)."""
    if e == 0:
        return config
    import dataclasses

    from zpml_core.errors import InvalidConfigError

    train = None if config.tau_train is None else math.ldexp(config.tau_train, -e)
    try:
        return dataclasses.replace(
            config, tau_infer=math.ldexp(config.tau_infer, -e), tau_train=train
        )
    except InvalidConfigError as exc:
        raise EmitError(
            f"the expression's constants were regauged by 2**-{e} to stay in the float range, "
            f"and the thresholds tau_infer={config.tau_infer!r}, tau_train={config.tau_train!r} "
            f"scaled the same way are not representable ({exc}); use tau_infer=0 or rescale "
            "the formula's constants"
        ) from exc


def scaled_taus(taus: Any, exponents: Sequence[int]) -> Any:
    """Per-factor thresholds times ``2**-e_i`` (unchanged when every ``e_i`` is 0)."""
    if not any(exponents):
        return taus
    if isinstance(taus, Sequence) and not isinstance(taus, str | bytes):
        if len(taus) != len(exponents):
            return taus  # the decode reports the length mismatch
        return [math.ldexp(float(t), -e) for t, e in zip(taus, exponents, strict=True)]
    return [math.ldexp(float(taus), -e) for e in exponents]


_NP_DTYPES = ("float16", "float32", "float64")


def _round(value: Fraction, dtype: str) -> float:
    import numpy as np

    try:
        f = float(value)
    except OverflowError:
        return math.inf
    with np.errstate(all="ignore"):
        return float(np.asarray(f, dtype=dtype))


def check_constants(plan: Plan, dtype: str) -> None:
    """Refuse constants that ``dtype`` cannot represent (they round to 0 or overflow).

    Checks the constants of every expression *as written* (``fru.root``) and
    those the program evaluates (after the power-of-two regauge). Raises
    :class:`EmitError` naming the constant and the dtype.
    """
    if dtype not in _NP_DTYPES:
        return
    from zpml_symbolic.emit.lowering.gauge import constants_of

    for f in plan.frus:
        for c in constants_of(f.root):
            r = _round(c, dtype)
            if r == 0 or math.isinf(r):
                raise EmitError(
                    f"the constant {_show(c)} in {_short(f.expression)} cannot be represented in {dtype} "
                    f"(it {'rounds to 0' if r == 0 else 'overflows'}); rescale the formula "
                    "(e.g. change units) or evaluate in float64"
                )
    for ins in plan.program.instrs:
        if ins.const is not None and ins.const != 0:
            r = _round(ins.const, dtype)
            if r == 0 or math.isinf(r):
                raise EmitError(
                    f"the evaluated constant {_show(ins.const)} (from the canonical P/Q of "
                    f"{_short('; '.join(str(f.expression) for f in plan.frus))}) cannot be represented in "
                    f"{dtype} (it {'rounds to 0' if r == 0 else 'overflows'}); rescale the formula's "
                    "constants or evaluate in float64"
                )


def _show(c: Fraction) -> str:
    text = str(c)
    if len(text) <= 40:
        return text
    return f"~{sp.Float(sp.Rational(c.numerator, c.denominator), 6)}"


def _short(expr: object) -> str:
    text = str(expr)
    return text if len(text) <= 80 else text[:77] + "..."


def _variable_order(variables: object, used: Mapping[str, None]) -> tuple[str, ...]:
    """``variables=`` as names, checked: strings or sympy Symbols, no repeats, every used input listed."""
    if isinstance(variables, str | sp.Symbol) or not isinstance(variables, Sequence):
        raise InvalidArgumentError(
            f"variables= must be a sequence of names or sympy Symbols (the input column order), "
            f"got {variables!r}; e.g. variables=['x', 'y']"
        )
    names = []
    for v in variables:
        if isinstance(v, sp.Symbol):
            names.append(v.name)
        elif isinstance(v, str):
            names.append(v)
        else:
            raise InvalidArgumentError(
                f"variables= entries must be names or sympy Symbols, got {v!r} ({type(v).__name__})"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidArgumentError(f"variables= lists {repeated} more than once")
    missing = [n for n in used if n not in names]
    if missing:
        raise InvalidArgumentError(
            f"variables= does not list the inputs {missing}; it must name every input "
            f"(columns in that order), got {names}"
        )
    return tuple(names)


def coefficient_values(plan: Plan, init: Mapping[Any, float] | None) -> dict[str, float]:
    """Initial coefficient values by parameter name; every parameter needs one."""
    given: dict[str, float] = {}
    for key, val in (init or {}).items():
        name = key.name if isinstance(key, sp.Symbol) else key
        if name not in plan.parameters:
            raise InvalidArgumentError(
                f"init gives a value for {name!r}, which is not a parameter {list(plan.parameters)}"
            )
        try:
            given[name] = float(val)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"init[{name!r}] must be a real number, got {val!r}"
            ) from exc
    missing = [n for n in plan.parameters if n not in given]
    if missing:
        raise InvalidArgumentError(
            f"no initial value for parameters {missing}; pass init={{name: value}}"
        )
    return {n: given[n] for n in plan.parameters}


def split_expression_taus(validity_taus: Any, counts: Sequence[int]) -> list[Any]:
    """Per-expression ``validity_taus`` of a multi-expression back end.

    One number (or ``None``) applies to every factor of every expression; a sequence
    must have one entry (a number or a per-factor sequence) per expression.
    """
    if isinstance(validity_taus, Sequence) and not isinstance(validity_taus, str | bytes):
        if len(validity_taus) != len(counts):
            raise InvalidArgumentError(
                f"validity_taus has {len(validity_taus)} entries for {len(counts)} expressions; "
                "pass one number for every factor, or one entry (a number or a per-factor "
                "sequence) per expression"
            )
        return list(validity_taus)
    return [validity_taus] * len(counts)


__all__ = [
    "split_expression_taus",
    "OutputNames",
    "Plan",
    "check_constants",
    "coefficient_values",
    "make_plan",
    "scaled_config",
    "scaled_taus",
]
