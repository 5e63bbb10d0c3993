"""Files named by the user (signing keys, ``.npy`` inputs), read the same way in the API and the CLI.

Only a regular file is read. It is opened non-blocking and checked with
``fstat`` on the open descriptor, so a named pipe (whose ``open`` would wait
for a writer), a device such as ``/dev/zero`` (which never ends), a directory
or a socket is refused at once, without reading it.

**Signing keys.** The key is the file's bytes with **one** trailing newline
removed (``\\n`` or ``\\r\\n``), so a key written with ``echo key > FILE`` is
the key ``b"key"`` of ``export_bundle(..., signing_key=b"key")``; use
:func:`read_signing_key` to get exactly the key ``--signing-key-file`` uses.

**Arrays.** :func:`load_plain_npy` reads one numeric array from a ``.npy``
file (``numpy.save``); anything else is refused as "not a .npy file" before
numpy sees it (numpy would otherwise try to unpickle it).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from .errors import (
    NotARegularFileError,
    NotNpyFileError,
    NpyContentError,
    SigningKeyFileError,
    UserFileError,
)

#: Largest signing-key file read (a key is a short secret; HMAC-SHA256 hashes
#: keys longer than 64 bytes anyway).
MAX_SIGNING_KEY_BYTES = 64 * 1024
#: The first bytes of every ``.npy`` file (``numpy.lib.format``).
NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular_file(path: str | os.PathLike[str], what: str) -> int:
    """A blocking read-only descriptor of ``path``, which must be a regular file.

    Raises :class:`NotARegularFileError` naming ``what`` and the path for a
    directory, device, named pipe or socket, and ``OSError`` when the file
    cannot be opened. The caller closes the descriptor.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFileError(
                f"{what} {os.fspath(path)} is {_kind(mode)}; give a regular file"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def strip_one_newline(data: bytes) -> bytes:
    """``data`` without one trailing ``\\r\\n`` or ``\\n`` (unchanged otherwise)."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def read_signing_key(path: str | os.PathLike[str], *, what: str = "signing key file") -> bytes:
    """The HMAC key stored in the file at ``path`` (exactly what ``--signing-key-file`` uses).

    The key is the file's bytes without one trailing newline (``\\n`` or
    ``\\r\\n``; any other byte, a second newline included, is part of the key).
    Raises :class:`NotARegularFileError` for anything but a regular file,
    :class:`SigningKeyFileError` for a file over :data:`MAX_SIGNING_KEY_BYTES`
    bytes or an empty key (both name the file), and ``OSError`` when the file
    cannot be opened or read.
    """
    name = os.fspath(path)
    too_large = (
        f"{what} {name} is larger than {MAX_SIGNING_KEY_BYTES} bytes (64 KiB); a signing key "
        "is a short secret (32 random bytes are plenty)"
    )
    fd = open_regular_file(path, what)
    try:
        if os.fstat(fd).st_size > MAX_SIGNING_KEY_BYTES:
            raise SigningKeyFileError(too_large)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SIGNING_KEY_BYTES:  # a file can grow while read: at most cap + 1 bytes
            chunk = os.read(fd, MAX_SIGNING_KEY_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_SIGNING_KEY_BYTES:
        raise SigningKeyFileError(too_large)
    key = strip_one_newline(data)
    if not key:
        detail = " but for one newline" if data else ""
        raise SigningKeyFileError(
            f"{what} {name} is empty{detail}; the key must be non-empty bytes"
        )
    return key


def _object_dtype(fh: Any) -> bool:
    """Whether the ``.npy`` header at the start of ``fh`` declares Python objects (seeks back)."""
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            _, _, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            _, _, dtype = fmt.read_array_header_2_0(fh)
        else:  # a newer header: numpy's own loader decides below
            return False
    except ValueError:
        return False  # a damaged header: reported by numpy's loader below
    finally:
        fh.seek(0)
    return bool(dtype.hasobject)


def load_plain_npy(path: str | os.PathLike[str], what: str = "file") -> Any:
    """One numeric array (real floats or integers) from the ``.npy`` file at ``path``.

    Never unpickles. Raises :class:`NotARegularFileError`,
    :class:`NotNpyFileError` (the file does not start with the ``.npy`` magic
    bytes: a text, CSV or ``.npz`` file), :class:`NpyContentError` (Python
    objects, non-numeric dtype, a damaged file), each naming ``what`` and the
    path, and ``OSError`` when the file cannot be opened or read.
    """
    import numpy as np

    name = os.fspath(path)
    fd = open_regular_file(path, what)
    with os.fdopen(fd, "rb") as fh:
        head = fh.read(len(NPY_MAGIC))
        if head != NPY_MAGIC:
            kind = "not a .npy file"
            if head.startswith(_ZIP_MAGIC):
                kind = "an .npz (zip) archive, not a .npy file"
            raise NotNpyFileError(
                f"{what} {name} is {kind} (it does not start with the .npy magic bytes); "
                "save one numeric array with numpy.save(path, array)"
            )
        fh.seek(0)
        if _object_dtype(fh):
            raise NpyContentError(
                f"{what} {name} holds Python objects (dtype object), which are never loaded; "
                "save a plain numeric array"
            )
        try:
            arr = np.load(fh, allow_pickle=False)
        except (ValueError, EOFError) as e:
            raise NpyContentError(f"{what} {name} is a damaged .npy file: {e}") from e
    if not isinstance(arr, np.ndarray) or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise NpyContentError(f"{what} {name} must hold real numbers, got dtype {arr.dtype}")
    return arr


__all__ = [
    "MAX_SIGNING_KEY_BYTES",
    "NPY_MAGIC",
    "NotARegularFileError",
    "NotNpyFileError",
    "NpyContentError",
    "SigningKeyFileError",
    "UserFileError",
    "load_plain_npy",
    "open_regular_file",
    "read_signing_key",
    "strip_one_newline",
]
