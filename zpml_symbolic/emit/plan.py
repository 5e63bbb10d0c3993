"""What to evaluate for one or several FlattenedFRUs: named division-free roots.

For each FRU ``k`` (prefix ``""`` for a single one, ``"e{k}_"`` for several)
the plan lists ``P``, ``Q`` and each retained validity factor ``V{i}``, all
as division-free IR in the canonical gauge, lowered together so shared
subexpressions are computed once across expressions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from zpml_symbolic.emit.program import Program, lower
from zpml_symbolic.errors import EmitError, InvalidArgumentError
from zpml_symbolic.flatten.fru import FlattenedFRU


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
    if variables is None:
        var_names = tuple(names_seen)
    else:
        var_names = tuple(v if isinstance(v, str) else v.name for v in variables)
        missing = [n for n in names_seen if n not in var_names]
        if missing:
            raise InvalidArgumentError(f"variables= does not list {missing}")
    outputs = []
    out_names = []
    for k, f in enumerate(frus):
        pre = "" if len(frus) == 1 else f"e{k}_"
        vs = tuple(f"{pre}V{i}" for i in range(len(f.validity_factor_irs)))
        out_names.append(OutputNames(f"{pre}P", f"{pre}Q", vs))
        outputs += [(f"{pre}P", f.numerator_ir), (f"{pre}Q", f.denominator_ir)]
        outputs += list(zip(vs, f.validity_factor_irs, strict=True))
    program = lower(outputs, variables=var_names, parameters=tuple(params_seen))
    return Plan(tuple(frus), var_names, tuple(params_seen), program, tuple(out_names))


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


__all__ = ["OutputNames", "Plan", "coefficient_values", "make_plan"]
