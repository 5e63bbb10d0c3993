"""IR -> FlattenedFRU: the flattening pass.

One bottom-up walk over the interned DAG (each shared node once) computes an
exact reduced fraction per node. At every division node ``b**-n`` it records
the irreducible factors of ``b``'s numerator (their zeros make the division
bottom) and of ``b``'s denominator (already bottom inside ``b``), with the
division's place in the user's tree. Validity is recorded *before* any
cancellation can erase it: the fraction arithmetic may cancel a factor from
``P/Q``, but never from the provenance.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Literal

import sympy as sp
from sympy.polys.rings import PolyElement

from zpml_symbolic.errors import ConstantNameWarning, InvalidArgumentError
from zpml_symbolic.flatten.algebra import FactoredProduct, Frac, PolyContext
from zpml_symbolic.flatten.budget import Budget, BudgetMeter
from zpml_symbolic.flatten.fru import FactorRecord, FlattenedFRU
from zpml_symbolic.flatten.provenance import SourceKind, SourceOccurrence
from zpml_symbolic.frontend.constants import CONSTANT_NAMES, constant_values
from zpml_symbolic.frontend.sympy_in import FrontendResult, from_sympy
from zpml_symbolic.ir import node as ir
from zpml_symbolic.ir.node import Node, Op
from zpml_symbolic.ir.printer import to_text
from zpml_symbolic.ir.traverse import postorder

Mode = Literal["scm_strict", "algebraic"]
MODES: tuple[str, ...] = ("scm_strict", "algebraic")
SOURCE_TEXT_CHARS = 160


def flatten(
    expr: object,
    *,
    parameters: Iterable[sp.Symbol | str] = (),
    variables: Sequence[sp.Symbol | str] | None = None,
    mode: Mode = "scm_strict",
    budget: Budget | None = None,
    constants: Mapping[str, object] | None = None,
) -> FlattenedFRU:
    """Flatten a rational expression into one exact fraction ``P/Q`` plus validity factors.

    ``expr`` is a sympy expression (evaluated or built with
    ``evaluate=False``; its tree is kept as given) or a string, which goes
    through the safe parser :func:`zpml_symbolic.parse`. ``parameters`` are
    learnable coefficients (not inputs). ``variables`` fixes the input order
    (default: the input symbols sorted by name). ``mode="scm_strict"`` (the
    default) keeps every bottom; ``mode="algebraic"`` is an explicit opt-in
    that keeps only ``Q`` as the guard and so may drop bottoms (``x/x`` is
    then ``1`` everywhere). ``budget`` limits degree, terms, work, time and
    coefficient size. ``constants`` gives named constants exact values
    (``{"pi": 3.141592653589793}``; a float is taken exactly): the name in
    the text, a symbol of that name and sympy's constant of that name become
    that number. An input variable named ``pi`` or ``E`` that is neither a
    constant nor listed in ``variables=`` gives a :class:`ConstantNameWarning`.
    """
    if mode not in MODES:
        raise InvalidArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    params = tuple(parameters)
    consts = constant_values(constants)
    if isinstance(expr, str):
        from zpml_symbolic.frontend.parser import parse

        expr = parse(expr, parameters=params, constants=consts)
    param_keys = frozenset(p if isinstance(p, str) else _symbol(p, "parameters") for p in params)
    front = from_sympy(expr, parameters=param_keys, constants=consts)
    var_syms, param_syms = _order_symbols(front, params, variables)
    if variables is None:
        _warn_constant_names(var_syms)
    if budget is not None and not isinstance(budget, Budget):
        raise InvalidArgumentError(
            f"budget must be a zpml_symbolic.Budget, got {type(budget).__name__}"
        )
    meter = BudgetMeter(budget or Budget())
    gen_nodes = tuple(ir.var(s.name) for s in var_syms) + tuple(
        ir.param(s.name) for s in param_syms
    )
    ctx = PolyContext(tuple(s.name for s in var_syms + param_syms), meter, gen_nodes)
    values, records, order = _walk(front, ctx, meter)
    root_value = values[front.root]
    ctx.expanded_den(root_value)  # expand Q within the budget, not lazily later
    fru = FlattenedFRU(
        expression=expr,
        root=front.root,
        variables=var_syms,
        parameters=param_syms,
        mode=mode,
        context=ctx,
        numerator_poly=root_value.num,
        numerator_ir=root_value.num_ir,
        denominator_ir=root_value.den_ir,
        denominator_factors=dict(root_value.den),
        records=records,
        node_ids={n: i for i, n in enumerate(order)},
        denominator_poly=root_value.den_expanded,
    )
    ctx.meter = BudgetMeter(Budget(max_seconds=float("inf")))  # the result is not budgeted further
    return fru


def _warn_constant_names(var_syms: tuple[sp.Symbol, ...]) -> None:
    for s in var_syms:
        if s.name in CONSTANT_NAMES:
            warnings.warn(
                ConstantNameWarning(
                    f"{s.name!r} is treated as an input variable (it may become a validity "
                    f"factor such as '{s.name} = 0'); if it is the constant, give its value "
                    f"with constants={{{s.name!r}: ...}}, else list it in variables= to "
                    "silence this warning"
                ),
                stacklevel=3,
            )


def _symbol(item: object, what: str) -> sp.Symbol:
    if not isinstance(item, sp.Symbol):
        raise InvalidArgumentError(f"{what} must be sympy Symbols or names, got {item!r}")
    return item


def _order_symbols(
    front: FrontendResult,
    params: tuple[sp.Symbol | str, ...],
    variables: Sequence[sp.Symbol | str] | None,
) -> tuple[tuple[sp.Symbol, ...], tuple[sp.Symbol, ...]]:
    """Input variables (given order, or sorted by name) and parameters (given order)."""
    used_vars: dict[str, sp.Symbol] = {}
    used_params: dict[str, sp.Symbol] = {}
    for node in postorder(front.root):
        if node.op is Op.VAR:
            used_vars[str(node.value)] = front.symbols[str(node.value)]
        elif node.op is Op.PARAM:
            used_params[str(node.value)] = front.symbols[str(node.value)]
    param_syms: list[sp.Symbol] = []
    for p in params:
        name = p if isinstance(p, str) else p.name
        if name in used_vars:
            raise InvalidArgumentError(f"parameter {name!r} is also used as an input variable")
        param_syms.append(
            used_params.get(name) or (p if isinstance(p, sp.Symbol) else sp.Symbol(p))
        )
    declared = {s.name for s in param_syms}
    if len(declared) != len(param_syms):
        raise InvalidArgumentError(f"duplicate parameter names in {[s.name for s in param_syms]}")
    param_syms += [used_params[n] for n in sorted(used_params) if n not in declared]
    if variables is None:
        var_syms = [used_vars[n] for n in sorted(used_vars)]
    else:
        var_syms = []
        for v in variables:
            name = v if isinstance(v, str) else _symbol(v, "variables").name
            if name in declared or name in used_params:
                raise InvalidArgumentError(f"variable {name!r} is declared as a parameter")
            var_syms.append(
                used_vars.get(name) or (v if isinstance(v, sp.Symbol) else sp.Symbol(name))
            )
        names = [s.name for s in var_syms]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"duplicate variable names in {names}")
        missing = sorted(set(used_vars) - set(names))
        if missing:
            raise InvalidArgumentError(
                f"variables= does not list {missing}, which the expression uses"
            )
    return tuple(var_syms), tuple(param_syms)


def _walk(
    front: FrontendResult, ctx: PolyContext, meter: BudgetMeter
) -> tuple[dict[Node, Frac], list[FactorRecord], list[Node]]:
    order = postorder(front.root)
    node_id = {n: i for i, n in enumerate(order)}
    divisor_only = _divisor_only_products(order, front.root)
    values: dict[Node, Frac] = {}
    factored: dict[Node, FactoredProduct] = {}
    records: list[FactorRecord] = []
    for node in order:
        meter.check_time()
        if node.args:
            meter.context = lambda node=node: to_text(node, max_chars=SOURCE_TEXT_CHARS)
        op = node.op
        if op is Op.VAR or op is Op.PARAM:
            values[node] = ctx.gen(str(node.value))
        elif op is Op.CONST:
            assert isinstance(node.value, Fraction)
            values[node] = ctx.const(node.value)
        elif op is Op.ADD:
            terms = [values[a] for a in node.args]
            _check_sum_degree(terms, ctx, meter)
            acc = terms[0]
            for term in terms[1:]:
                acc = ctx.add(acc, term)
            values[node] = acc
        elif op is Op.MUL and node in divisor_only:
            factored[node] = ctx.factored_product([values[a] for a in node.args])
        elif op is Op.MUL:
            acc = values[node.args[0]]
            for arg in node.args[1:]:
                acc = ctx.mul(acc, values[arg])
            values[node] = acc
        else:
            exponent = node.value
            assert isinstance(exponent, int)
            if exponent >= 0:
                values[node] = ctx.pow(values[node.args[0]], exponent)
                continue
            base_node = node.args[0]
            if base_node in factored:
                values[node] = _divide_factored(
                    node, factored[base_node], -exponent, ctx, front, node_id[node], records
                )
                continue
            values[node] = _divide(
                node, values[base_node], -exponent, ctx, front, node_id[node], records
            )
    return values, records, order


def _check_sum_degree(terms: list[Frac], ctx: PolyContext, meter: BudgetMeter) -> None:
    """Refuse a sum whose common denominator will exceed ``max_degree``, before adding.

    A denominator factor of exactly one term cannot cancel while the terms are added
    (the sum keeps its pole there), so the last step of the left-to-right sum forms a
    denominator of at least the total degree of those factors, and the budget would
    refuse it then: ``1/v0 + ... + 1/v1199`` is refused here instead of after 512
    ever wider additions. Nothing that would be accepted is refused.
    """
    if len(terms) < 2:
        return
    seen: dict[PolyElement, int] = {}
    exponent: dict[PolyElement, int] = {}
    for t in terms:
        for f, e in t.den.items():
            seen[f] = seen.get(f, 0) + 1
            exponent[f] = e
    degree = sum(exponent[f] * ctx.degree(f) for f, n in seen.items() if n == 1)
    meter.check_degree(degree, "a sum (the common denominator of its terms)")


def _divisor_only_products(order: list[Node], root: Node) -> set[Node]:
    """Products used only as divisors (``1/(a*b*c)``): kept factored, never expanded."""
    uses_ok: dict[Node, bool] = {}
    for node in order:
        for arg in node.args:
            if arg.op is Op.MUL:
                ok = node.op is Op.POW and isinstance(node.value, int) and node.value < 0
                uses_ok[arg] = uses_ok.get(arg, True) and ok
    return {n for n, ok in uses_ok.items() if ok and n is not root}


def _source_text(node: Node, front: FrontendResult) -> str:
    occ = front.occurrences.get(node)
    owner = occ.parent_node if occ is not None and occ.parent_node is not None else None
    target = owner if owner is not None and owner.op is Op.MUL else node
    return to_text(target, max_chars=SOURCE_TEXT_CHARS)


def _divide_factored(
    node: Node,
    base: FactoredProduct,
    n: int,
    ctx: PolyContext,
    front: FrontendResult,
    nid: int,
    records: list[FactorRecord],
) -> Frac:
    """:func:`_divide` for a divisor kept as a :class:`FactoredProduct` (same records)."""
    occ = front.occurrences.get(node)
    path = occ.path if occ is not None else "root"
    source = _source_text(node, front)
    divisor = to_text(node.args[0], max_chars=SOURCE_TEXT_CHARS)
    num_kind: SourceKind = "explicit_denominator" if not base.den else "divisor_numerator"
    if base.zero:
        records.append(
            FactorRecord(ctx.zero, SourceOccurrence(num_kind, source, path, nid, divisor))
        )
        return ctx.zero_frac()
    for g, _m in base.pairs:
        records.append(FactorRecord(g, SourceOccurrence(num_kind, source, path, nid, divisor)))
    for g in base.den:
        records.append(
            FactorRecord(g, SourceOccurrence("divisor_denominator", source, path, nid, divisor))
        )
    return ctx.inverse_factored(base, n)


def _divide(
    node: Node,
    base: Frac,
    n: int,
    ctx: PolyContext,
    front: FrontendResult,
    nid: int,
    records: list[FactorRecord],
) -> Frac:
    occ = front.occurrences.get(node)
    path = occ.path if occ is not None else "root"
    source = _source_text(node, front)
    divisor = to_text(node.args[0], max_chars=SOURCE_TEXT_CHARS)

    def record(kind: SourceKind, factor: PolyElement) -> None:
        records.append(FactorRecord(factor, SourceOccurrence(kind, source, path, nid, divisor)))

    if not base.num:
        record("explicit_denominator" if not base.den else "divisor_numerator", ctx.zero)
        return ctx.zero_frac()  # the value is never used: always bottom
    _, pairs = ctx.factor(base.num)
    num_kind: SourceKind = "explicit_denominator" if not base.den else "divisor_numerator"
    for g, _m in pairs:
        record(num_kind, g)
    for g in base.den:
        record("divisor_denominator", g)
    return ctx.inverse_pow(base, n)


__all__ = ["MODES", "Mode", "flatten"]
