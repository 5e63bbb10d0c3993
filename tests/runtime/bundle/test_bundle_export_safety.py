"""Issue 13 item 4: exporting never loses data, survives SIGKILL, and serialises races."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import filelock
import numpy as np
import pytest
import torch

import zpml_symbolic as zs
from zpml_runtime.bundle import BundleError, export_bundle, validate_bundle
from zpml_runtime.bundle import publish as publish_mod
from zpml_runtime.bundle.errors import BundleBusyError
from zpml_runtime.inference import InferenceConfig

EXPR = "(x**2 + 1)/(x - y) + 1/(1 + 1/x)"
X = torch.tensor([[2.0, 1.0], [0.5, -0.5], [1.0, 1.0]])


@pytest.fixture(scope="module")
def evaluator() -> zs.StrictEvaluator:
    return zs.strict_evaluator(zs.flatten(zs.parse(EXPR)), config=InferenceConfig(tau_infer=0.0))


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_directory_with_a_metadata_file_and_other_files_is_kept(
    tmp_path: Path, evaluator: zs.StrictEvaluator
) -> None:
    target = tmp_path / "results"
    target.mkdir()
    (target / "metadata.json").write_text("{}")
    (target / "experiment.csv").write_text("precious")
    with pytest.raises(BundleError, match="experiment.csv.*refusing to replace"):
        export_bundle(evaluator, target, (X,), overwrite=True)
    assert (target / "experiment.csv").read_text() == "precious"
    assert _leftovers(tmp_path) == []


def test_invalid_bundle_like_directory_is_kept(
    tmp_path: Path, evaluator: zs.StrictEvaluator
) -> None:
    target = tmp_path / "b"
    export_bundle(evaluator, target, (X,))
    (target / "model.onnx").write_bytes(b"user replaced this")
    with pytest.raises(BundleError, match="not a valid bundle, refusing to replace"):
        export_bundle(evaluator, target, (X,), overwrite=True)
    assert (target / "model.onnx").read_bytes() == b"user replaced this"


def test_symlink_and_file_targets_are_refused(
    tmp_path: Path, evaluator: zs.StrictEvaluator
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    for name in ("link", "file"):
        with pytest.raises(BundleError, match="not a directory .or is a symbolic link"):
            export_bundle(evaluator, tmp_path / name, (X,), overwrite=True)
    assert (tmp_path / "file").read_text() == "x"


def test_empty_directory_and_valid_bundle_are_replaced(
    tmp_path: Path, evaluator: zs.StrictEvaluator
) -> None:
    target = tmp_path / "b"
    target.mkdir()
    export_bundle(evaluator, target, (X,), overwrite=True)
    export_bundle(evaluator, target, (X[:2],), overwrite=True)
    assert validate_bundle(target).smoke_inputs.shape == (2, 2)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("use_exchange", [True, False])
def test_leftovers_of_a_crash_are_recovered(
    tmp_path: Path,
    evaluator: zs.StrictEvaluator,
    monkeypatch: pytest.MonkeyPatch,
    use_exchange: bool,
) -> None:
    """In-process stand-in for a crash: the hook raises KeyboardInterrupt-like BaseException."""

    class Crash(BaseException):
        pass

    target = tmp_path / "b"
    export_bundle(evaluator, target, (X,))
    monkeypatch.setattr(publish_mod, "USE_EXCHANGE", use_exchange)

    def hook(step: str) -> None:
        if step in ("exchanged", "moved_old"):
            raise Crash

    monkeypatch.setattr(publish_mod, "STEP_HOOK", hook)
    # Simulate a hard crash: leave the directories as they are (no cleanup in finally).
    monkeypatch.setattr(publish_mod.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(Crash):
        export_bundle(evaluator, target, (X[:2],), overwrite=True)
    assert _leftovers(tmp_path)  # a crash leaves a sibling behind ...
    monkeypatch.undo()
    # ... which the next export removes (restoring the old bundle first if needed).
    export_bundle(evaluator, target, (X[:1],), overwrite=True)
    assert validate_bundle(target).smoke_inputs.shape == (1, 2)
    assert _leftovers(tmp_path) == []


_CHILD = textwrap.dedent(
    """
    import sys, time, torch
    import zpml_symbolic as zs
    from zpml_runtime.bundle import export_bundle, publish
    from zpml_runtime.inference import InferenceConfig

    target, step, exchange, rows = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    publish.USE_EXCHANGE = exchange
    def hook(name):
        if name == step:
            print("PAUSED", flush=True)
            time.sleep(120)
    publish.STEP_HOOK = hook
    ev = zs.strict_evaluator(zs.flatten(zs.parse("(x**2 + 1)/(x - y) + 1/(1 + 1/x)")),
                             config=InferenceConfig(tau_infer=0.0))
    x = torch.tensor([[2.0, 1.0], [0.5, -0.5], [1.0, 1.0]])[:rows]
    export_bundle(ev, target, (x,), overwrite=True)
    print("DONE", flush=True)
    """
)


def _kill_at(target: Path, step: str, exchange: bool) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(target), step, "1" if exchange else "0", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip() == "PAUSED", line
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def _sigkill_case(tmp_path: Path, evaluator: zs.StrictEvaluator, step: str, exchange: bool) -> None:
    target = tmp_path / "b"
    export_bundle(evaluator, target, (X,))  # the old bundle: 3 smoke rows
    _kill_at(target, step, exchange)
    if step == "moved_old":
        assert not target.exists()  # the fallback's window: recovered by the next export
    else:
        rows = validate_bundle(target).smoke_inputs.shape[0]
        assert rows == (2 if step == "exchanged" else 3)  # old or new, never a mix
    assert _leftovers(tmp_path)
    export_bundle(evaluator, target, (X[:1],), overwrite=True)
    assert validate_bundle(target).smoke_inputs.shape == (1, 2)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow  # a subprocess importing torch: ~15 s on a loaded machine
def test_sigkill_after_the_atomic_exchange(tmp_path: Path, evaluator: zs.StrictEvaluator) -> None:
    _sigkill_case(tmp_path, evaluator, "exchanged", True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "exchange"), [("written", True), ("validated", True), ("moved_old", False)]
)
def test_sigkill_at_every_step(
    tmp_path: Path, evaluator: zs.StrictEvaluator, step: str, exchange: bool
) -> None:
    _sigkill_case(tmp_path, evaluator, step, exchange)


def _race(target: Path, evaluator: zs.StrictEvaluator, overwrite: bool, n: int) -> list:
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def work(i: int) -> None:
        barrier.wait()
        try:
            export_bundle(evaluator, target, (X[: 1 + i % 3],), overwrite=overwrite)
            results[i] = "ok"
        except BaseException as e:  # noqa: BLE001 - the test inspects the type
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_racing_threads_with_overwrite_serialise(
    tmp_path: Path, evaluator: zs.StrictEvaluator
) -> None:
    target = tmp_path / "b"
    results = _race(target, evaluator, True, 4)
    assert results == ["ok"] * 4, results
    assert validate_bundle(target).smoke_inputs.shape[0] in (1, 2, 3)
    assert _leftovers(tmp_path) == []


def test_racing_threads_without_overwrite_one_wins(
    tmp_path: Path, evaluator: zs.StrictEvaluator
) -> None:
    target = tmp_path / "b"
    results = _race(target, evaluator, False, 3)
    assert results.count("ok") == 1, results
    errors = [r for r in results if r != "ok"]
    assert all(isinstance(e, BundleError) and "already exists" in str(e) for e in errors), errors
    validate_bundle(target)
    assert _leftovers(tmp_path) == []


def test_lock_timeout_is_a_typed_error(tmp_path: Path, evaluator: zs.StrictEvaluator) -> None:
    target = tmp_path / "b"
    with filelock.FileLock(str(tmp_path / ".b.lock")):
        with pytest.raises(BundleBusyError, match="another export is writing"):
            export_bundle(evaluator, target, (X,), lock_timeout=0.2)
    assert not target.exists() and _leftovers(tmp_path) == []


@pytest.mark.slow
def test_racing_processes(tmp_path: Path) -> None:
    target = tmp_path / "b"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(target), "never", "1", str(1 + i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert validate_bundle(target).smoke_inputs.shape[0] in (1, 2, 3)
    assert _leftovers(tmp_path) == []
    assert np.load(target / "smoke_inputs.npy").dtype == np.float32


@pytest.mark.parametrize("bad", ["", torch.zeros(2)], ids=["empty", "tensor"])
def test_export_bundle_refuses_an_empty_or_non_path_out_dir(tmp_path, monkeypatch, bad):
    # an empty out_dir would mean the current directory; a tensor means swapped arguments
    from zpml_runtime.bundle import BundlePathError
    from zpml_runtime.errors import UnsupportedInputError

    monkeypatch.chdir(tmp_path)
    module = zs.to_torch(zs.flatten(zs.parse("1/(x - 1)")))
    expected = UnsupportedInputError if isinstance(bad, torch.Tensor) else BundlePathError
    with pytest.raises(expected, match="out_dir"):
        export_bundle(module, bad, torch.zeros(3, 1))
    assert list(tmp_path.iterdir()) == []
