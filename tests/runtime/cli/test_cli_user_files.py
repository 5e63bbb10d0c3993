"""Files and paths named on the command line: signing keys, ``.npy`` inputs, ``--onnx``.

Nothing hangs or reads without bound (devices, named pipes), nothing suggests
unpickling, and each refusal is one ``zpml: error:`` line naming the file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zpml_runtime.bundle import validate_bundle
from zpml_runtime.bundle.errors import BundleError
from zpml_runtime.bundle.userfiles import (
    MAX_SIGNING_KEY_BYTES,
    NotARegularFileError,
    NotNpyFileError,
    NpyContentError,
    SigningKeyFileError,
    load_plain_npy,
    read_signing_key,
)
from zpml_runtime.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    assert err.startswith("zpml: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err and "pickle" not in err.lower(), err
    return err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uf") / "b"
    assert main(["compile", "1/(x - 1)", "--onnx", str(out)]) == 0
    return out


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe. A helper thread opens its write end, so a reader that (wrongly) opens
    it blocking is released (and then reads an empty file) instead of hanging the test."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    path = tmp_path / "pipe"
    os.mkfifo(path)

    def writer() -> None:
        fd = os.open(path, os.O_WRONLY)  # blocks until some reader opens the pipe
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    yield path
    if thread.is_alive():  # nobody opened it for reading (the expected case): release it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        thread.join(5)
        os.close(fd)
    assert not thread.is_alive()


# ----------------------------------------------------------------- signing keys


@pytest.mark.parametrize("command", ["compile", "inspect"])
def test_signing_key_device_is_refused_at_once(
    command: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    args = (
        ["compile", "1/x", "--onnx", str(tmp_path / "o")]
        if command == "compile"
        else ["inspect", str(bundle)]
    )
    code, _, err = _run([*args, "--signing-key-file", "/dev/zero"], capsys)
    assert code == 2
    assert "--signing-key-file /dev/zero is a character device; give a regular file" in _one_line(
        err
    )
    assert not (tmp_path / "o").exists()


def test_signing_key_fifo_and_directory_are_refused(
    fifo: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["inspect", str(bundle), "--signing-key-file", str(fifo)], capsys)
    assert code == 2 and f"--signing-key-file {fifo} is a named pipe (FIFO)" in _one_line(err)
    code, _, err = _run(["inspect", str(bundle), "--signing-key-file", str(tmp_path)], capsys)
    assert code == 2 and f"--signing-key-file {tmp_path} is a directory" in _one_line(err)


def test_signing_key_size_is_capped(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big, edge = tmp_path / "big", tmp_path / "edge"
    big.write_bytes(b"k" * (MAX_SIGNING_KEY_BYTES + 1))
    edge.write_bytes(b"k" * MAX_SIGNING_KEY_BYTES)
    code, _, err = _run(["inspect", str(bundle), "--signing-key-file", str(big)], capsys)
    assert code == 2 and f"--signing-key-file {big} is larger than 65536 bytes" in _one_line(err)
    assert read_signing_key(edge) == b"k" * MAX_SIGNING_KEY_BYTES  # the cap itself is accepted
    with pytest.raises(SigningKeyFileError, match="larger than 65536 bytes"):
        read_signing_key(big)


def test_trailing_newline_is_not_part_of_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``echo key > FILE`` and ``signing_key=b"key"`` are the same key, both ways."""
    from zpml_runtime.bundle import load_onnx_runtime_bundle

    echoed = tmp_path / "echoed"
    echoed.write_bytes(b"s3cret\n")  # what `echo s3cret > echoed` writes
    b = tmp_path / "b"
    assert (
        _run(["compile", "1/(x - 1)", "--signing-key-file", str(echoed), "--onnx", str(b)], capsys)[
            0
        ]
        == 0
    )
    validate_bundle(b, signing_key=b"s3cret")  # the API key without the newline
    load_onnx_runtime_bundle(b, signing_key=read_signing_key(echoed))
    with pytest.raises(BundleError, match="metadata.sig does not match"):
        validate_bundle(b, signing_key=b"s3cret\n")
    # a CRLF file and a file without newline hold the same key; a second newline is key material
    (tmp_path / "crlf").write_bytes(b"s3cret\r\n")
    (tmp_path / "bare").write_bytes(b"s3cret")
    (tmp_path / "two").write_bytes(b"s3cret\n\n")
    for name, code_want in (("crlf", 0), ("bare", 0), ("two", 1)):
        code, _, err = _run(["inspect", str(b), "--signing-key-file", str(tmp_path / name)], capsys)
        assert code == code_want, (name, err)
    assert read_signing_key(tmp_path / "two") == b"s3cret\n"
    (tmp_path / "nl").write_bytes(b"\n")
    code, _, err = _run(["inspect", str(b), "--signing-key-file", str(tmp_path / "nl")], capsys)
    assert code == 2 and "is empty but for one newline" in _one_line(err)


def test_help_says_how_the_key_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["compile"], ["inspect"], ["explain"], ["report", "bundle"]):
        assert main([*command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "without one trailing newline" in text and "64 KiB" in text, command


def test_docs_say_how_the_key_is_read() -> None:
    doc = " ".join((Path(__file__).parents[3] / "docs" / "deployment.md").read_text().split())
    assert "without one trailing newline" in doc and "read_signing_key" in doc


def test_read_signing_key_refuses_special_files(fifo: Path, tmp_path: Path) -> None:
    with pytest.raises(NotARegularFileError, match="named pipe"):
        read_signing_key(fifo)
    with pytest.raises(NotARegularFileError, match="is a directory"):
        read_signing_key(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_signing_key(tmp_path / "missing")


# ----------------------------------------------------------------- lock and --onnx


class _NeverAcquired:
    """Stands in for ``filelock.FileLock``: waiting for the lock is the bug under test."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def acquire(self) -> None:
        raise AssertionError("waited for a lock whose file cannot be created")


def test_lock_that_cannot_be_created_fails_at_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock file's directory refuses new files: a typed error before any waiting
    (it used to retry for the whole 60 s lock timeout)."""
    import filelock

    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    monkeypatch.setattr(filelock, "FileLock", _NeverAcquired)
    code, _, err = _run(["compile", "1/x", "--onnx", "/proc/self/c13"], capsys)
    assert code == 2 and "cannot create lock /proc/self/.c13.lock" in _one_line(err)


def test_export_bundle_lock_error_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API raises the typed :class:`BundlePathError` (here the lock path is a directory,
    which even root cannot open as a file)."""
    import filelock
    import torch

    import zpml_symbolic as zs
    from zpml_runtime.bundle import export_bundle
    from zpml_runtime.bundle.errors import BundlePathError

    (tmp_path / ".b.lock").mkdir()
    monkeypatch.setattr(filelock, "FileLock", _NeverAcquired)
    ev = zs.strict_evaluator("1/x")
    with pytest.raises(BundlePathError, match=r"cannot create lock .*\.b\.lock for bundle"):
        export_bundle(ev, tmp_path / "b", (torch.tensor([[1.0]]),), lock_timeout=60.0)
    assert not (tmp_path / "b").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(BundlePathError, match="cannot create the parent directory"):
        export_bundle(ev, tmp_path / "file" / "b", (torch.tensor([[1.0]]),))


def test_empty_onnx_path_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(["compile", "1/x", "--onnx", ""], capsys)
    assert code == 2 and "--onnx is an empty path" in _one_line(err)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- .npy files


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"1.0,2.0\n3.0,4.0\n", "not a .npy file"),
        (b"", "not a .npy file"),
        (b"\x80\x04K\x01.", "not a .npy file"),  # a pickle: never unpickled
        (b"PK\x03\x04rest", "an .npz (zip) archive, not a .npy file"),
    ],
)
def test_non_npy_inputs_exit_2(
    content: bytes,
    kind: str,
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    f = tmp_path / "data.npy"
    f.write_bytes(content)
    code, _, err = _run(
        ["compile", "1/x", "--smoke-inputs", str(f), "--onnx", str(tmp_path / "o")], capsys
    )
    assert code == 2 and f"--smoke-inputs {f} is {kind}" in _one_line(err)
    assert not (tmp_path / "o").exists()
    code, _, err = _run(["report", "bundle", str(bundle), "--inputs", str(f)], capsys)
    assert code == 2 and f"inputs file {f} is {kind}" in _one_line(err)
    with pytest.raises(NotNpyFileError, match="not a .npy file"):
        load_plain_npy(f)


def test_npz_archive_written_by_numpy_is_not_a_npy_file(tmp_path: Path) -> None:
    f = tmp_path / "a.npz"
    np.savez(f, a=np.zeros((2, 1)))
    with pytest.raises(NotNpyFileError, match=r"an \.npz \(zip\) archive, not a \.npy file"):
        load_plain_npy(f)


def test_object_npy_is_refused_without_unpickling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "obj.npy"
    np.save(f, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    code, _, err = _run(
        ["compile", "1/x", "--smoke-inputs", str(f), "--onnx", str(tmp_path / "o")], capsys
    )
    assert code == 1 and "holds Python objects (dtype object)" in _one_line(err)
    with pytest.raises(NpyContentError, match="holds Python objects"):
        load_plain_npy(f)


def test_npy_from_a_pipe_or_device_is_refused(
    fifo: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["report", "bundle", str(bundle), "--inputs", str(fifo)], capsys)
    assert code == 2 and "is a named pipe (FIFO)" in _one_line(err)
    if Path("/dev/zero").exists():
        code, _, err = _run(
            ["compile", "1/x", "--smoke-inputs", "/dev/zero", "--onnx", str(tmp_path / "o")], capsys
        )
        assert code == 2 and "--smoke-inputs /dev/zero is a character device" in _one_line(err)


def test_plain_npy_still_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bundle: Path
) -> None:
    f = tmp_path / "x.npy"
    np.save(f, np.array([[0.5], [2.0], [1.0]]))
    assert load_plain_npy(f).shape == (3, 1)
    code, out, _ = _run(["report", "bundle", str(bundle), "--inputs", str(f)], capsys)
    assert code == 0 and "(3 samples)" in out
    damaged = tmp_path / "damaged.npy"
    damaged.write_bytes(f.read_bytes()[:-8])
    code, _, err = _run(["report", "bundle", str(bundle), "--inputs", str(damaged)], capsys)
    assert code == 1 and "is a damaged .npy file" in _one_line(err)
