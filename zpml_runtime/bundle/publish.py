"""Publish a bundle directory crash-safely: lock, write a sibling, validate, swap.

Protocol (all under the lock ``<parent>/.<name>.lock``, ``filelock``):

1. recover leftovers of crashed exports: if ``<name>`` is missing but a
   ``.<name>.old-*`` bundle exists (a crash between the two renames of the
   fallback below), it is renamed back; then every ``.<name>.tmp-*`` and
   ``.<name>.old-*`` is removed;
2. refuse to replace anything but an empty directory or a valid bundle that
   holds only bundle and report files;
3. write the files to ``.<name>.tmp-*`` (fsync'd) and validate that directory
   completely (the semantic check included);
4. swap it in. On Linux ``renameat2(RENAME_EXCHANGE)`` exchanges the two
   directories atomically: ``<name>`` is the old or the new bundle at every
   instant, and a crash leaves at most a ``.tmp-*`` sibling that step 1 removes.
   Elsewhere ``<name>`` is renamed to ``.<name>.old-*`` and the new one renamed
   into place; a crash between the two leaves no ``<name>`` until the next
   export restores the old bundle (step 1).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from zpml_runtime.bundle.format import (
    CHECKSUM_FILE,
    METADATA_FILE,
    MODEL_FILE,
    REPORT_FILES,
    SIGNATURE_FILE,
    SMOKE_FILE,
    BundleBusyError,
    BundleError,
    BundleValidationError,
)

from .errors import BundlePathError

#: Test hook: called with the name of each step ("written", "validated", "exchanged",
#: "moved_old", "published"); a test pauses or kills the process there.
STEP_HOOK: Callable[[str], None] | None = None
#: Set to False to use the two-rename fallback even where renameat2 exists (tests).
USE_EXCHANGE = True

_BUNDLE_NAMES = {MODEL_FILE, METADATA_FILE, CHECKSUM_FILE, SMOKE_FILE, SIGNATURE_FILE}
_BUNDLE_NAMES |= set(REPORT_FILES)


def _create_lock_file(lock_path: Path, out: Path) -> None:
    """Create the lock file (if missing) now, so that a directory where it cannot be
    created fails at once instead of after the whole lock timeout."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        raise BundlePathError(
            f"cannot create lock {lock_path} for bundle {out}: {e.strerror or e}; "
            "choose a bundle directory in a writable place"
        ) from e
    os.close(fd)


def _step(name: str) -> None:
    if STEP_HOOK is not None:
        STEP_HOOK(name)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with renameat2; False where unsupported."""
    if not USE_EXCHANGE or not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _leftovers(parent: Path, name: str, kind: str) -> list[Path]:
    prefix = f".{name}.{kind}-"
    return sorted(
        (p for p in parent.iterdir() if p.name.startswith(prefix)),
        key=lambda p: p.stat().st_mtime if p.exists() else 0.0,
        reverse=True,
    )


def recover(out: Path) -> None:
    """Undo what a crashed export left next to ``out`` (call under the lock)."""
    from zpml_runtime.bundle.validate import validate_structure

    parent, name = out.parent, out.name
    if not os.path.lexists(out):
        for old in _leftovers(parent, name, "old"):
            try:
                validate_structure(old)
            except BundleValidationError:
                continue
            os.rename(old, out)
            break
    for kind in ("tmp", "old"):
        for p in _leftovers(parent, name, kind):
            shutil.rmtree(p, ignore_errors=True)


def check_replaceable(out: Path) -> None:
    """Raise :class:`BundleError` unless ``out`` is an empty directory or a clean, valid bundle."""
    from zpml_runtime.bundle.validate import validate_structure

    if out.is_symlink() or not out.is_dir():
        raise BundleError(
            f"{out} exists and is not a directory (or is a symbolic link); refusing to replace "
            "it: remove it or choose another path"
        )
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    extra = [
        e for e in entries if e not in _BUNDLE_NAMES and not e.startswith(".VALIDATION_REPORT")
    ]
    if extra:
        raise BundleError(
            f"{out} holds files that are not part of a bundle ({', '.join(extra[:8])}); refusing "
            "to replace it (they would be lost): move them away or choose another path"
        )
    try:
        validate_structure(out)
    except BundleValidationError as e:
        raise BundleError(
            f"{out} is not a valid bundle, refusing to replace it (remove it yourself if it is "
            f"disposable): {'; '.join(e.problems)[:500]}"
        ) from e


def _write_files(tmp: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        with open(tmp / name, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    _fsync_dir(tmp)


def publish_bundle(
    out: Path, files: dict[str, bytes], *, overwrite: bool, lock_timeout: float
) -> None:
    """Write ``files`` as the bundle directory ``out`` (see the module docstring)."""
    import filelock

    from zpml_runtime.bundle.validate import validate_bundle

    out = Path(os.path.abspath(out))
    parent = out.parent
    lock_path = parent / f".{out.name}.lock"
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BundlePathError(
            f"cannot create the parent directory of bundle {out}: {e.strerror or e}"
        ) from e
    _create_lock_file(lock_path, out)
    try:
        lock = filelock.FileLock(str(lock_path), timeout=lock_timeout)
        lock.acquire()
    except filelock.Timeout as e:
        raise BundleBusyError(
            f"another export is writing {out} (lock {parent / f'.{out.name}.lock'} held for more "
            f"than {lock_timeout} s); retry later or pass a larger lock_timeout"
        ) from e
    except OSError as e:
        raise BundleError(f"cannot create or lock {out}: {e.strerror or e}") from e
    tmp: Path | None = None
    try:
        recover(out)
        exists = os.path.lexists(out)
        if exists:
            if not overwrite:
                raise BundleError(f"{out} already exists; pass overwrite=True to replace it")
            check_replaceable(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bundle is a normal directory
        _write_files(tmp, files)
        _step("written")
        try:
            validate_bundle(tmp)
        except BundleValidationError as e:
            raise BundleError(
                f"the exported bundle for {out} fails its own validation, nothing was written: "
                + "; ".join(e.problems)
            ) from None
        _step("validated")
        if not exists:
            os.rename(tmp, out)
        elif _exchange(tmp, out):
            _step("exchanged")  # tmp now holds the old bundle
        else:
            old = parent / f".{out.name}.old-{uuid.uuid4().hex}"
            os.rename(out, old)
            _step("moved_old")
            os.rename(tmp, out)
            tmp = old
        _fsync_dir(parent)
        _step("published")
    except OSError as e:
        raise BundleError(f"cannot write bundle {out}: {e.strerror or e}") from e
    finally:
        try:
            if tmp is not None and os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            lock.release()


__all__ = ["STEP_HOOK", "BundlePathError", "check_replaceable", "publish_bundle", "recover"]
