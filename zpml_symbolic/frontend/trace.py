"""Build a structure-preserving sympy tree by calling a plain Python function.

:func:`trace` calls ``fn`` with sympy symbols inside
``with sympy.evaluate(False):``, so ``x/x`` stays ``x*(1/x)`` instead of
collapsing to ``1`` (which would lose the bottom at ``x = 0``).

Caveats (all checked by ``tests/symbolic/frontend/test_trace.py`` on this sympy version):

- Python evaluates literal-only subexpressions before sympy sees them:
  ``1/2`` is the float ``0.5`` and ``2*3*x`` is ``6*x``. Write
  ``sympy.Rational(1, 2)`` (or ``x/2``) for exact constants.
- Python floats become sympy ``Float`` nodes, which the compiler takes as the
  exact binary rational they denote: ``0.1`` is
  ``3602879701896397/36028797018963968``, not ``1/10``. Use
  ``sympy.Rational("0.1")`` or the string parser for decimal constants.
- Under ``evaluate(False)`` symbolic operations stay unevaluated, including
  ``x - x`` (``x + (-x)``, not ``0``), ``x*0``, ``0*(1/x)`` and ``1/(1/x)``;
  a few cheap rewrites remain, e.g. ``-(-x)`` -> ``x`` (no division, harmless).
- Do not call rewriting functions inside ``fn``: ``expand``/``together``
  return the unevaluated tree unchanged, while ``cancel``/``simplify`` hit a
  ``RecursionError`` under ``evaluate(False)`` in sympy 1.14 (and, with
  evaluation on, remove the bottoms).
- ``sum(...)`` starts from the int ``0``, giving a harmless ``x + 0`` node.
- Combining traced trees later *outside* ``evaluate(False)`` lets sympy
  flatten and cancel them: for ``e = trace(lambda x: x/x, ["x"])``, ``e*2`` is
  ``2`` and ``e - e`` is ``0``. Do further arithmetic under
  ``with sympy.evaluate(False):`` (or inside the traced function).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sympy

from zpml_symbolic.errors import InputTypeError, InvalidArgumentError, NotRationalError
from zpml_symbolic.frontend.coefficient import Coefficient, as_coefficient, symbol_name

__all__ = ["TracedFunction", "trace", "traced"]


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _as_names(value: object, what: str) -> list[str | sympy.Symbol]:
    if isinstance(value, str | bytes):
        raise InvalidArgumentError(
            f"{what} must be a sequence of names, not a single string; use [{value!r:.60}]"
        )
    if not isinstance(value, Iterable):
        raise InvalidArgumentError(
            f"{what} must be a sequence of names or sympy Symbols, got {type(value).__name__}"
        )
    return list(value)


def _variable_symbol(spec: str | sympy.Symbol) -> sympy.Symbol:
    if isinstance(spec, Coefficient):
        raise InvalidArgumentError(
            f"variable {spec.name!r} is a Coefficient; list it under parameters instead"
        )
    name = symbol_name(spec, role="variable")
    return spec if isinstance(spec, sympy.Symbol) else sympy.Symbol(name)


def _symbols(
    variables: Sequence[str | sympy.Symbol], parameters: Sequence[str | sympy.Symbol]
) -> tuple[tuple[sympy.Symbol, ...], tuple[Coefficient, ...]]:
    var_syms = tuple(_variable_symbol(v) for v in _as_names(variables, "variables"))
    par_syms = tuple(as_coefficient(p) for p in _as_names(parameters, "parameters"))
    seen: set[str] = set()
    for sym in (*var_syms, *par_syms):
        if sym.name in seen:
            raise InvalidArgumentError(
                f"name {sym.name!r} is listed more than once in variables/parameters"
            )
        seen.add(sym.name)
    return var_syms, par_syms


def _check_arity(fn: Callable[..., Any], count: int, name: str) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return
    try:
        signature.bind(*range(count))
    except TypeError as exc:
        raise InvalidArgumentError(
            f"trace: {name} cannot be called with {count} positional argument(s) "
            f"(variables then parameters): {exc}"
        ) from None


def _trace(
    fn: Callable[..., Any],
    var_syms: tuple[sympy.Symbol, ...],
    par_syms: tuple[Coefficient, ...],
) -> sympy.Expr:
    name = _fn_name(fn)
    _check_arity(fn, len(var_syms) + len(par_syms), name)
    try:
        with sympy.evaluate(False):
            result = fn(*var_syms, *par_syms)
    except Exception as exc:
        exc.add_note(f"(raised while tracing {name} with sympy symbols)")
        raise
    if not isinstance(result, sympy.Expr):
        hint = ""
        if isinstance(result, int | float):
            hint = (
                "; it ignored its symbolic arguments (wrap a constant as sympy.Integer/"
                "sympy.Rational if that is intended)"
            )
        elif isinstance(result, tuple | list):
            hint = "; trace one output at a time"
        raise NotRationalError(
            f"trace: {name} returned {type(result).__name__} {result!r:.80}, "
            f"not a sympy expression{hint}",
            subexpression=f"{result!r:.200}",
            path="root",
        )
    return result


def trace(
    fn: Callable[..., Any],
    variables: Sequence[str | sympy.Symbol],
    *,
    parameters: Sequence[str | sympy.Symbol] = (),
) -> sympy.Expr:
    """Call ``fn(*variables, *parameters)`` on sympy symbols under ``evaluate(False)``.

    Names in ``variables`` become ``sympy.Symbol(name)`` (a ``Symbol`` given
    there is used as-is); names in ``parameters`` become
    :class:`~zpml_symbolic.frontend.coefficient.Coefficient` symbols. ``fn``
    receives them positionally, variables first. The returned tree keeps the
    structure ``fn`` built:

    >>> trace(lambda x: x / x, ["x"])
    x/x

    Raises :class:`~zpml_symbolic.errors.InvalidArgumentError` for bad or
    duplicate names or an arity mismatch, :class:`InputTypeError` when ``fn``
    is not callable, and :class:`~zpml_symbolic.errors.NotRationalError` when
    ``fn`` returns something that is not a sympy expression. Exceptions raised
    by ``fn`` itself propagate with a note naming the traced function.
    """
    if not callable(fn):
        raise InputTypeError(f"trace() expects a callable, got {type(fn).__name__}")
    var_syms, par_syms = _symbols(variables, parameters)
    return _trace(fn, var_syms, par_syms)


class TracedFunction:
    """A Python function together with its traced sympy tree.

    ``expr`` is the tree (built once, at decoration time); ``variables`` and
    ``parameters`` are the symbols it was traced with. Calling the object calls
    the original function unchanged, so it still works on plain numbers.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        variables: Sequence[str | sympy.Symbol],
        parameters: Sequence[str | sympy.Symbol] = (),
    ) -> None:
        if not callable(fn):
            raise InputTypeError(f"traced() must decorate a callable, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.variables, self.parameters = _symbols(variables, parameters)
        self.expr: sympy.Expr = _trace(fn, self.variables, self.parameters)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the original (untraced) function."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<traced {_fn_name(self.fn)}: {self.expr}>"


def traced(
    variables: Sequence[str | sympy.Symbol],
    *,
    parameters: Sequence[str | sympy.Symbol] = (),
) -> Callable[[Callable[..., Any]], TracedFunction]:
    """Decorator form of :func:`trace`: ``@traced(["x"])`` gives a :class:`TracedFunction`.

    >>> @traced(["x"], parameters=["a"])
    ... def f(x, a):
    ...     return a * x / x
    >>> f.expr
    (a*x)/x
    >>> f(2, 3)
    3.0

    Names are validated when ``traced(...)`` is called; the function is traced
    when it is decorated.
    """
    var_syms, par_syms = _symbols(variables, parameters)  # fail early on bad names

    def decorate(fn: Callable[..., Any]) -> TracedFunction:
        return TracedFunction(fn, var_syms, par_syms)

    return decorate
