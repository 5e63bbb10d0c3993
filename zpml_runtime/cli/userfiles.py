"""Files the ``zpml`` user names: calibration CSV, ``.npy`` smoke inputs, batch inputs.

Every file is opened as a regular file first (a pipe, device or directory is
refused at once) and ``.npy`` files are never unpickled
(:func:`zpml_runtime.bundle.userfiles.load_plain_npy`).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from zpml_runtime.cli.errors import CliError, UsageError

__all__ = ["BatchTable", "load_npy", "read_batch_table", "read_calibration_csv", "write_atomically"]

_TRUE, _FALSE = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}


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
        raise CliError(f"CSV {path} is not UTF-8 text: {e.reason}") from e
    except csv.Error as e:
        raise CliError(f"CSV {path} is malformed: {e}") from e
    if not q:
        raise CliError(f"CSV {path} has a header but no data rows")
    return q, r


def load_npy(path: str, option: str) -> Any:
    """A numeric array from a ``.npy`` file: a file that is not one (text, ``.npz``, a
    device or pipe) exits 2, a damaged or non-numeric ``.npy`` file or an unreadable
    path exits 1; never unpickled."""
    from zpml_runtime.bundle.errors import NpyContentError, UserFileError
    from zpml_runtime.bundle.userfiles import load_plain_npy

    try:
        return load_plain_npy(path, option)
    except NpyContentError as e:
        raise CliError(str(e)) from None
    except UserFileError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot read {option} {path}: {e.strerror or e}") from e


# ----------------------------------------------------------------- batch inputs (zpml run)


@dataclass(frozen=True)
class BatchTable:
    """Rows of a batch input file: a ``[n, c]`` real array and the CSV header (if any)."""

    path: str
    values: Any
    header: tuple[str, ...] | None

    def arranged(self, variables: Sequence[str], option: str = "--inputs") -> Any:
        """The ``[n, len(variables)]`` array in the bundle's variable order: CSV columns are
        matched by header name (any order), headerless data must be in variable order."""
        import numpy as np

        want = len(variables)
        names = ", ".join(variables) or "no variables"
        if self.header is not None:
            missing = [v for v in variables if v not in self.header]
            extra = [h for h in self.header if h not in variables]
            if missing or extra:
                raise UsageError(
                    f"{option} {self.path}: header columns {list(self.header)} do not match the "
                    f"bundle's variables ({names})"
                    + (f": missing {missing}" if missing else "")
                    + (f", unknown {extra}" if extra else "")
                )
            order = [self.header.index(v) for v in variables]
            return np.ascontiguousarray(self.values[:, order])
        if self.values.shape[1] != want:
            raise UsageError(
                f"{option} {self.path} has {self.values.shape[1]} column(s); the bundle takes "
                f"{want} ({names})"
            )
        return self.values


def read_batch_table(path: str, option: str = "--inputs") -> BatchTable:
    """Read a ``.npy`` (2-D real array) or ``.csv`` (numbers, optional header row) batch
    file. Every problem is a :class:`UsageError` naming the file (and row/column)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        return BatchTable(path, _batch_npy(path, option), None)
    if suffix == ".csv":
        return _batch_csv(path, option)
    raise UsageError(
        f"{option} {path}: expected a .npy or .csv file, got {suffix or 'no suffix'!r}"
    )


def _batch_npy(path: str, option: str) -> Any:
    import numpy as np

    from zpml_runtime.bundle.errors import UserFileError
    from zpml_runtime.bundle.userfiles import load_plain_npy

    try:
        arr = load_plain_npy(path, option)
    except UserFileError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"cannot read {option} {path}: {e.strerror or e}") from e
    if arr.ndim != 2:
        raise UsageError(
            f"{option} {path} must be a 2-D array [rows, variables], got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise UsageError(f"{option} {path} has no rows")
    if not np.issubdtype(arr.dtype, np.floating) or arr.dtype.itemsize > 8:
        arr = arr.astype(np.float64)  # integers (exact up to 2**53) and long doubles
    return arr


def _read_text(path: str, option: str) -> str:
    from zpml_runtime.bundle.errors import UserFileError
    from zpml_runtime.bundle.userfiles import open_regular_file

    try:
        fd = open_regular_file(path, option)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
    except UserFileError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"cannot read {option} {path}: {e.strerror or e}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{option} {path} is not UTF-8 text: {e.reason} at byte {e.start}") from e


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _batch_csv(path: str, option: str) -> BatchTable:
    import numpy as np

    text = _read_text(path, option)
    reader = csv.reader(io.StringIO(text, newline=""))
    lines: list[int] = []  # the file row (line) of each non-blank row
    rows: list[list[str]] = []
    try:
        for row in reader:
            if row:
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as e:
        raise UsageError(f"{option} {path} is malformed CSV (row {reader.line_num}): {e}") from e
    if not rows:
        raise UsageError(f"{option} {path} is empty")
    header: tuple[str, ...] | None = None
    first = [c.strip() for c in rows[0]]
    if any(_number(c) is None for c in first):  # a header row: every cell a name
        bad = [c for c in first if not c.isidentifier()]
        if bad:
            raise UsageError(
                f"{option} {path} row {lines[0]}: {bad[0][:40]!r} is neither a number nor a column name"
            )
        if len(set(first)) != len(first):
            raise UsageError(
                f"{option} {path} row {lines[0]}: a column name is repeated in {first}"
            )
        header, rows, lines = tuple(first), rows[1:], lines[1:]
    if not rows:
        raise UsageError(f"{option} {path} has a header but no data rows")
    width = len(header) if header is not None else len(rows[0])
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, (line, row) in enumerate(zip(lines, rows, strict=True)):
        if len(row) != width:
            raise UsageError(
                f"{option} {path} row {line} has {len(row)} field(s); expected {width}"
            )
        for j, cell in enumerate(row):
            v = _number(cell.strip())
            if v is None:
                column = f"column {j + 1}" + (f" ({header[j]})" if header is not None else "")
                raise UsageError(
                    f"{option} {path} row {line}, {column}: {cell[:40]!r} is not a number"
                )
            out[i, j] = v
    return BatchTable(path, out, header)


def write_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Write a file by ``write(binary file)`` to a temporary file beside ``path``, then
    rename it over ``path``: readers never see a partial file. Mode as ``open`` would give."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".zpml-", suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
