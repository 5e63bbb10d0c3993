"""Reading a bundle's files safely: plain names, one directory descriptor, sizes first.

Every file of a bundle is read through the directory descriptor (symbolic links
refused, the size checked with ``fstat`` before anything is read, at most the
limit plus one byte read); the SHA-256 and size recorded in the metadata are
compared; ``.npy`` smoke inputs are parsed from bytes without unpickling; the
optional HMAC signature is checked. Problems are appended to a list so that the
validator reports them all together.
"""

from __future__ import annotations

import hmac
import io
import math
import os
import stat

import numpy as np

from zpml_runtime.bundle.format import SIGNATURE_FILE, BundleError, sha256_bytes, signature_line

MAX_FILE_BYTES = 2**31 - 1  # protobuf's limit for one model
MAX_METADATA_BYTES = 64 * 2**20
MAX_CHECKSUM_BYTES = 4096
MAX_SMOKE_BYTES = 256 * 2**20


def check_name(name: object, field: str, problems: list[str]) -> str | None:
    """A file name from metadata: a plain name inside the bundle, or a problem."""
    if not isinstance(name, str) or not name:
        problems.append(f"metadata field {field!r} must be a file name, got {name!r:.80}")
        return None
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name) or len(name) > 255:
        problems.append(
            f"metadata field {field!r} = {name!r:.80} contains control characters (e.g. NUL) or is "
            "longer than 255 characters; write a plain file name such as 'model.onnx'"
        )
        return None
    if "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        problems.append(
            f"metadata field {field!r} = {name!r} is not a plain file name inside the bundle (path traversal refused)"
        )
        return None
    return name


def read_at(
    dfd: int,
    name: str,
    field: str,
    limit: int,
    problems: list[str],
    *,
    exact: int | None = None,
    label: str | None = None,
) -> bytes | None:
    """Read a regular file of the bundle through the directory descriptor ``dfd``.

    Symbolic links are refused (``O_NOFOLLOW``), the size is checked with
    ``fstat`` before anything is read (against ``limit``, and against the
    recorded size ``exact`` when given), and at most ``limit + 1`` bytes are read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(name, flags, dir_fd=dfd)
    except FileNotFoundError:
        problems.append(f"missing file {name!r} (metadata field {field!r})")
        return None
    except OSError as e:
        if os.path.islink(os.path.join(f"/proc/self/fd/{dfd}", name)) or e.errno == 40:
            problems.append(f"{field} {name!r} is a symbolic link; bundles hold regular files only")
        else:
            problems.append(f"cannot open {name!r} ({field}): {e.strerror or e}")
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{field} {name!r} is not a regular file")
            return None
        if st.st_size > limit:
            problems.append(
                f"{name} is {st.st_size} bytes, larger than the limit of {limit} bytes for {field}; "
                "not read"
            )
            return None
        if exact is not None and st.st_size != exact:
            problems.append(
                f"{label or name}: size {st.st_size} bytes differs from the recorded size {exact} "
                "(truncated or replaced file); not read"
            )
            return None
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            problems.append(f"{name} grew beyond {limit} bytes while it was read")
            return None
        return data
    except OSError as e:
        problems.append(f"cannot read {name!r} ({field}): {e.strerror or e}")
        return None
    finally:
        os.close(fd)


def recorded_size(value: object, limit: int) -> int | None:
    """A recorded file size usable as the exact size to expect (``None``: out of range)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit:
        return value
    return None


def check_hash(
    data: bytes,
    recorded: tuple[str, object, str, object],
    label: str,
    problems: list[str],
) -> None:
    """``data`` must have the recorded size and SHA-256.

    ``recorded`` is ``(sha_field, sha256, size_field, size)``: the metadata field
    names (for the message) and their values.
    """
    sha_field, sha, size_field, size = recorded
    if size != len(data):
        problems.append(
            f"{label}: size {len(data)} bytes differs from metadata {size_field}={size!r} (truncated or replaced file)"
        )
    digest = sha256_bytes(data)
    if sha != digest:
        problems.append(
            f"{label}: sha256 {digest} differs from metadata {sha_field}={sha!r} (the file was modified)"
        )


def load_npy_bytes(data: bytes, what: str) -> np.ndarray:
    """Parse a plain ``.npy`` array from bytes, checking the header before allocating.

    Raises :class:`BundleError` for a malformed or oversized header, a non-float
    dtype, object arrays, or a shape that does not match the data length.
    """
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, OverflowError, MemoryError, RecursionError) as e:
        raise BundleError(f"{what} is not a plain .npy array: {str(e)[:200]}") from e
    if dtype.hasobject or dtype.name not in ("float32", "float64") or dtype.byteorder == ">":
        raise BundleError(f"{what} must be a little-endian float32/float64 .npy array, got {dtype}")
    count = math.prod(shape)
    body = len(data) - buf.tell()
    if count * dtype.itemsize != body:
        raise BundleError(
            f"{what}: the .npy header promises shape {tuple(shape)} ({count * dtype.itemsize} bytes) "
            f"but {body} bytes follow it"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=buf.tell())
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def check_signature(
    dfd: int, meta_bytes: bytes, signing_key: bytes | None, problems: list[str]
) -> None:
    """With a ``signing_key``: ``metadata.sig`` must hold the HMAC of ``meta_bytes``."""
    if signing_key is None:
        return
    if not isinstance(signing_key, bytes | bytearray) or not signing_key:
        raise BundleError(
            "signing_key must be non-empty bytes (the key the bundle was signed with)"
        )
    data = read_at(dfd, SIGNATURE_FILE, "signature file", MAX_CHECKSUM_BYTES, problems)
    if data is None:
        problems.append(
            f"a signing key was given but the bundle has no readable {SIGNATURE_FILE}: it is unsigned"
        )
        return
    want = signature_line(meta_bytes, bytes(signing_key)).encode("ascii")
    if not hmac.compare_digest(data.strip(), want.strip()):
        problems.append(
            f"{SIGNATURE_FILE} does not match metadata.json under the given key: the bundle was "
            "modified or signed with another key"
        )


__all__ = [
    "MAX_CHECKSUM_BYTES",
    "MAX_FILE_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_SMOKE_BYTES",
    "check_hash",
    "check_name",
    "check_signature",
    "load_npy_bytes",
    "read_at",
    "recorded_size",
]
