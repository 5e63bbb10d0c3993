"""The packages of an earlier commit, extracted for a before/after benchmark run."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("zpml_core", "zpml_symbolic", "zpml_runtime")


def extract_baseline(rev: str, dest: Path) -> str | None:
    """Extract the three packages at ``rev`` into ``dest``; the full commit hash, or None without git."""
    try:
        full = subprocess.run(
            ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "archive", "--format=tar", full, *PACKAGES],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    tar_path = dest / "baseline.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    return full
