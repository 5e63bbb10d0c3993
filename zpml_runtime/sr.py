"""Symbolic-regression results -> compiled rational layers with explicit undefinedness.

:func:`read_hall_of_fame` reads a PySR ``hall_of_fame*.csv`` (columns
``Complexity, Loss, Equation``) and compiles every rational equation into a
:class:`~zpml_runtime.layers.RationalTemplateLayer` whose float literals are
learnable coefficients (see :meth:`RationalTemplateLayer.from_equation`). An
equation that is not rational (``sin``, ``exp``, ``x0 ^ 2.5``) or does not parse
becomes an entry with an ``error`` instead: reading never fails because of one
equation. A malformed file (missing columns, a row with the wrong number of
fields, a complexity that is not an integer) raises :class:`HallOfFameError`
naming the file and line.

Each compiled entry says where it is undefined: :meth:`HallOfFameEntry.undefined_where`
lists the factors whose zeros make it bottom, :meth:`HallOfFameEntry.undefined_fraction`
measures the share of your inputs where it is bottom and which factor causes it.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
import torch

from zpml_core.errors import ZeroProofError
from zpml_symbolic.frontend.decimal_number import with_decimals
from zpml_symbolic.frontend.equation import default_variables, equation_identifiers

from .errors import (
    HallOfFameError,
    ShapeMismatchError,
    SymbolicRegressionError,
    UnsupportedInputError,
)
from .layers.template import RationalTemplateLayer

__all__ = [
    "FactorShare",
    "HallOfFame",
    "HallOfFameEntry",
    "HallOfFameError",
    "SymbolicRegressionError",
    "UndefinedReport",
    "read_hall_of_fame",
]

#: Column names (case-insensitive) and the field each fills; ``MSE`` is older PySR's name.
_COLUMNS = {"complexity": "complexity", "loss": "loss", "mse": "loss", "equation": "equation"}
_REQUIRED = ("Complexity", "Loss", "Equation")


@dataclass(frozen=True, slots=True)
class FactorShare:
    """One division of an equation and the rows of the data where its factor vanishes.

    ``factor``: the polynomial whose zeros are bottom, with the entry's current
    constants (6 significant digits); ``divisor``: the subexpression of the
    equation that divides by it; ``rows``/``fraction``: bottom rows where this
    factor is zero or not finite (or, with ``tau > 0``, the factor blamed for
    ``|Q| < tau``). A row can count for several factors.
    """

    factor: str
    divisor: str
    rows: int
    fraction: float


@dataclass(frozen=True, slots=True)
class UndefinedReport:
    """Where an equation is bottom on a set of inputs (see :meth:`HallOfFameEntry.undefined_fraction`).

    ``float(report)`` is :attr:`fraction`. ``faults`` counts the bottom rows that
    are faults (a non-finite input, or an overflow) rather than divisions by
    zero; ``unattributed`` the bottom rows no factor explains (faults in ``P``,
    overflow, a validity threshold).
    """

    total: int
    bottom: int
    faults: int
    unattributed: int
    factors: tuple[FactorShare, ...]

    @property
    def fraction(self) -> float:
        """Share of the rows where the equation is bottom."""
        return self.bottom / self.total

    def __float__(self) -> float:
        return self.fraction

    def __str__(self) -> str:
        lines = [
            f"undefined on {self.bottom} of {self.total} rows ({self.fraction:.3%}), "
            f"{self.faults} of them faults"
        ]
        for f in self.factors:
            lines.append(
                f"  {f.factor} = 0: {_rows_text(f.rows)} ({f.fraction:.3%}), dividing {f.divisor}"
            )
        if self.unattributed:
            lines.append(f"  no factor named: {_rows_text(self.unattributed)}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class HallOfFameEntry:
    """One equation of a hall-of-fame file.

    ``line`` is its line in the file (the header is line 1). Exactly one of
    ``layer`` (the compiled equation, constants learnable) and ``error`` (why it
    was not compiled: a :class:`~zpml_symbolic.errors.NotRationalTextError` for
    ``sin(x0)``, a ``ParseError``, ...) is set.
    """

    path: str
    line: int
    complexity: int
    loss: float
    equation: str
    layer: RationalTemplateLayer | None
    error: ZeroProofError | None = None
    _evaluators: dict[float, Any] = field(
        default_factory=dict, repr=False, init=False, compare=False
    )

    @property
    def rational(self) -> bool:
        """True when the equation compiled (``layer`` is set)."""
        return self.layer is not None

    def _layer(self) -> RationalTemplateLayer:
        if self.layer is None:
            raise SymbolicRegressionError(
                f"{self.path}, line {self.line}: equation {self.equation!r} was not compiled "
                f"({self.error}); only rational entries have a layer"
            )
        return self.layer

    @property
    def constants(self) -> dict[str, float]:
        """Current values of the entry's constants ``c0, c1, ...`` ({} if not compiled)."""
        return self.layer.coefficient_values() if self.layer is not None else {}

    @property
    def validity_factors(self) -> tuple[sp.Expr, ...]:
        """The retained validity factors ``V_i`` (constants as symbols): bottoms ``Q`` alone misses."""
        return tuple(self._layer().fru.validity_factors)

    @property
    def denominator_factors(self) -> tuple[tuple[sp.Expr, int], ...]:
        """``Q`` as irreducible factors with multiplicities (constants as symbols)."""
        return tuple(self._layer().fru.denominator_factors)

    def undefined_where(self, digits: int = 6) -> tuple[str, ...]:
        """One line per division of the equation: ``"<factor> = 0  (dividing <subexpression>)"``,
        with the current constants to ``digits`` significant digits."""
        layer = self._layer()
        values = layer.coefficient_values()
        out = []
        for src in layer.fru.denominator_provenance:
            factor = with_decimals(src.factor, values, digits)
            out.append(
                f"{factor} = 0  (dividing {with_decimals(_text(src.source), values, digits)})"
            )
        return tuple(out)

    def undefined_fraction(self, X: Any, *, tau: float = 0.0) -> UndefinedReport:
        """The share of the rows of ``X`` (``[n, len(variables)]``) where the equation is bottom,
        and which factor is zero there.

        Evaluated with the strict evaluator in the layer's dtype (``X`` is cast to
        it). ``tau``: also count ``|Q| < tau`` or ``|V_i| < tau`` as bottom (the
        ``tau_infer`` a deployment would use); default exact zeros only.
        """
        layer = self._layer()
        x = _as_rows(X, layer, self.line)
        evaluator = self._evaluator(tau)
        with torch.no_grad():
            result = evaluator(x)
        bottom = result.bottom_mask.detach().cpu().numpy()
        faults = int((result.fault_mask.detach().cpu().numpy() & bottom).sum())
        sources = layer.fru.denominator_provenance
        index = {id(s): k for k, s in enumerate(sources)}
        blamed = np.zeros((len(x), len(sources)), dtype=bool)
        semantic = result.semantic_bottom_mask.detach().cpu().numpy()
        for expl in evaluator.explain(x, result, limit=None):
            row = expl.index[0]
            for cause in expl.causes:
                # a zero (or non-finite) factor; or, for |Q| < tau, the factor closest to 0.
                # Not "underflow" (a float failure) nor a fault's nearest factor.
                if cause.reason in ("zero", "non-finite") or (
                    cause.reason == "smallest factor of Q" and semantic[row]
                ):
                    blamed[row, index[id(cause.source)]] = True
        retained = [index[id(s)] for s in layer.fru.strict_validity_sources]
        for k, fault, semantic in zip(
            retained, result.factor_fault_masks, result.factor_semantic_masks, strict=True
        ):
            blamed[:, k] |= (fault | semantic).detach().cpu().numpy() & bottom
        values = layer.coefficient_values()
        n = len(x)
        shares = tuple(
            FactorShare(
                str(with_decimals(src.factor, values, 6)),
                str(with_decimals(_text(src.source), values, 6)),
                int(blamed[:, k].sum()),
                float(blamed[:, k].sum()) / n,
            )
            for k, src in enumerate(sources)
        )
        unattributed = int((bottom & ~blamed.any(axis=1)).sum())
        return UndefinedReport(n, int(bottom.sum()), faults, unattributed, shares)

    def _evaluator(self, tau: float) -> Any:
        import zpml_symbolic as zs
        from zpml_core.config import InferenceConfig

        if (
            isinstance(tau, bool)
            or not isinstance(tau, int | float)
            or not math.isfinite(tau)
            or tau < 0
        ):
            raise UnsupportedInputError(f"tau must be a finite number >= 0, got {tau!r}")
        ev = self._evaluators.get(float(tau))
        if ev is None:
            layer = self._layer()
            ev = zs.strict_evaluator(
                layer.module, config=InferenceConfig(tau_infer=float(tau)), validity_taus=float(tau)
            )
            self._evaluators[float(tau)] = ev
        return ev

    def __str__(self) -> str:
        head = (
            f"line {self.line}: complexity {self.complexity}, loss {self.loss:.6g}: {self.equation}"
        )
        if self.layer is None:
            return f"{head}\n  not compiled: {str(self.error).splitlines()[0]}"
        where = self.undefined_where()
        return (
            head + "".join(f"\n  undefined where {w}" for w in where)
            if where
            else (head + "\n  defined everywhere")
        )


@dataclass(frozen=True)
class HallOfFame(Sequence[HallOfFameEntry]):
    """The entries of a hall-of-fame file, in file order; ``variables`` are the input columns."""

    path: str
    variables: tuple[str, ...]
    entries: tuple[HallOfFameEntry, ...]

    def __getitem__(self, index: Any) -> Any:
        return self.entries[index]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[HallOfFameEntry]:
        return iter(self.entries)

    def rational(self) -> tuple[HallOfFameEntry, ...]:
        """The entries that compiled."""
        return tuple(e for e in self.entries if e.layer is not None)

    def __str__(self) -> str:
        return "\n".join(
            [f"{self.path}: {len(self)} equations, inputs {list(self.variables)}"]
            + [str(e) for e in self.entries]
        )


def _rows_text(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _text(source: str) -> sp.Expr:
    """A provenance source text as a sympy tree (for substituting constants)."""
    import zpml_symbolic as zs

    try:
        return zs.parse(source)
    except ZeroProofError:  # pragma: no cover - sources are printed by zpml itself
        return sp.Symbol(source)


def _as_rows(X: Any, layer: RationalTemplateLayer, line: int) -> torch.Tensor:
    """``X`` as a ``[n, n_vars]`` tensor in the layer's dtype and device."""
    param = next(layer.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if isinstance(X, torch.Tensor):
        x = X.detach()
    else:
        try:
            x = torch.as_tensor(np.asarray(X, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise UnsupportedInputError(
                f"undefined_fraction: X must be a numeric array of shape [n, {len(layer.variables)}] "
                f"({exc})"
            ) from None
    if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64, torch.bool)):
        raise UnsupportedInputError(f"undefined_fraction: X must be real numbers, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != len(layer.variables):
        raise ShapeMismatchError(
            f"undefined_fraction: X must have shape [n, {len(layer.variables)}] (columns "
            f"{list(layer.variables)}), got {list(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ShapeMismatchError("undefined_fraction: X has no rows")
    return x.to(device=device, dtype=layer.dtype)


# ----------------------------------------------------------------------------- reading


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise HallOfFameError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    except OSError as exc:
        raise HallOfFameError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if "\x00" in text:
        raise HallOfFameError(f"{path}: not a text file (it contains NUL bytes)")
    return text.removeprefix("\ufeff")


def _header(path: str, row: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, name in enumerate(row):
        key = _COLUMNS.get(name.strip().lower())
        if key is None:
            continue
        if key in columns:
            raise HallOfFameError(f"{path}, line 1: column {name.strip()!r} appears twice")
        columns[key] = i
    missing = [n for n in _REQUIRED if n.lower() not in columns]
    if missing:
        raise HallOfFameError(
            f"{path}, line 1: missing column(s) {missing} (header {[c.strip() for c in row]}); "
            "a PySR hall-of-fame file starts with Complexity,Loss,Equation"
        )
    return columns


def _rows(path: str, text: str) -> Iterator[tuple[int, int, float, str]]:
    """``(line, complexity, loss, equation)`` per data row of a hall-of-fame file."""
    first = text.split("\n", 1)[0]
    delimiter = "|" if "|" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise HallOfFameError(
                f"{path}: the file is empty (expected a Complexity,Loss,Equation header)"
            )
        columns = _header(path, header)
        width = len(header)
        last = columns["equation"] == width - 1
        for row in reader:
            line = reader.line_num
            if not row or all(not f.strip() for f in row):
                continue
            if len(row) > width and last:
                row = row[: width - 1] + [delimiter.join(row[width - 1 :])]  # unquoted commas
            if len(row) != width:
                raise HallOfFameError(
                    f"{path}, line {line}: expected {width} fields ({', '.join(h.strip() for h in header)}), "
                    f"got {len(row)}"
                )
            raw_c, raw_l = row[columns["complexity"]].strip(), row[columns["loss"]].strip()
            try:
                complexity = int(raw_c)
            except ValueError:
                raise HallOfFameError(
                    f"{path}, line {line}: Complexity {raw_c!r} is not an integer"
                ) from None
            try:
                loss = float(raw_l)
            except ValueError:
                raise HallOfFameError(
                    f"{path}, line {line}: Loss {raw_l!r} is not a number"
                ) from None
            yield line, complexity, loss, row[columns["equation"]].strip()
    except csv.Error as exc:
        raise HallOfFameError(f"{path}, line {reader.line_num}: malformed CSV: {exc}") from None


def read_hall_of_fame(
    path: str | os.PathLike[str],
    *,
    variables: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float64,
    prefix: str = "c",
) -> HallOfFame:
    """Read a PySR hall-of-fame CSV and compile each rational equation.

    ``variables``: the input columns in order (your data's columns); default:
    ``x0 .. x<max k>`` when the equations use PySR's ``x<k>`` names, else every
    name used, in natural sort order. All entries share these inputs, so one
    ``X`` serves every entry. ``dtype``: the layers' dtype (float64 by default,
    as symbolic-regression data usually is). ``prefix``: the constants' names
    (``c0, c1, ...``). The delimiter may be ``,`` or ``|`` (older PySR backups),
    and the loss column ``Loss`` or ``MSE``; other columns (``Score``) are ignored.

    Raises :class:`HallOfFameError` for an unreadable or malformed file; an
    equation that is not rational or does not parse is an entry with ``error``.
    """
    name = os.fspath(path)
    if not isinstance(name, str):
        raise UnsupportedInputError(
            f"read_hall_of_fame: path must be a str or os.PathLike, got {path!r}"
        )
    rows = list(_rows(name, _read_text(name)))
    if variables is None:
        seen: list[str] = []
        for *_, equation in rows:
            seen.extend(equation_identifiers(equation))
        variables = default_variables(seen)
    else:
        if isinstance(variables, str) or not all(isinstance(v, str) for v in variables):
            raise UnsupportedInputError(
                f"read_hall_of_fame: variables must be a sequence of names, got {variables!r}"
            )
        variables = tuple(variables)
    entries = []
    for line, complexity, loss, equation in rows:
        layer, error = None, None
        try:
            layer = RationalTemplateLayer.from_equation(
                equation, variables=variables or None, prefix=prefix, dtype=dtype
            )
        except (ZeroProofError, RecursionError) as exc:
            error = (
                exc
                if isinstance(exc, ZeroProofError)
                else SymbolicRegressionError(f"equation is nested too deeply to compile: {exc}")
            )
        entries.append(HallOfFameEntry(name, line, complexity, loss, equation, layer, error))
    return HallOfFame(name, tuple(variables), tuple(entries))
