"""``output_contract.json``: the sha256 of every artifact, and a loader that verifies them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zpml_runtime.errors import ArtifactIntegrityError

__all__ = [
    "CONTRACT_FILE",
    "ArtifactIntegrityError",
    "verify_output_contract",
    "write_output_contract",
]

CONTRACT_FILE = "output_contract.json"
CONTRACT_SCHEMA = "zpml.reference_robotics.output_contract/1"
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_output_contract(out_dir: str | os.PathLike[str], files: Iterable[Path]) -> Path:
    """Record size and sha256 of ``files`` (paths inside ``out_dir``) in ``output_contract.json``."""
    root = Path(out_dir).resolve()
    entries: dict[str, dict[str, Any]] = {}
    for f in sorted({Path(p).resolve() for p in files}):
        rel = f.relative_to(root).as_posix()
        if rel == CONTRACT_FILE:
            continue
        entries[rel] = {"sha256": _sha256(f), "bytes": f.stat().st_size}
    contract = {"schema": CONTRACT_SCHEMA, "files": entries}
    path = root / CONTRACT_FILE
    path.write_text(json.dumps(contract, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def verify_output_contract(out_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Check every recorded artifact against its digest; return the contract's file table.

    Raises:
        ArtifactIntegrityError: the contract is missing or malformed, a path escapes the
            directory, or a file is missing, resized or changed (named in the message).
    """
    root = Path(out_dir).resolve()
    path = root / CONTRACT_FILE
    try:
        contract = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactIntegrityError(
            f"{path}: no output contract (is this a reference run directory?)"
        ) from None
    except (OSError, ValueError) as e:
        raise ArtifactIntegrityError(f"{path}: unreadable output contract: {e}") from e
    files = contract.get("files") if isinstance(contract, dict) else None
    if (
        not isinstance(contract, dict)
        or contract.get("schema") != CONTRACT_SCHEMA
        or not isinstance(files, dict)
    ):
        raise ArtifactIntegrityError(f"{path}: not a {CONTRACT_SCHEMA} contract")
    problems: list[str] = []
    for rel, entry in sorted(files.items()):
        target = (root / rel).resolve()
        if root not in target.parents:
            problems.append(f"{rel}: path escapes {root}")
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            problems.append(f"{rel}: malformed contract entry")
            continue
        if not target.is_file():
            problems.append(f"{rel}: missing")
            continue
        if target.stat().st_size != entry.get("bytes"):
            problems.append(f"{rel}: size {target.stat().st_size} != recorded {entry.get('bytes')}")
            continue
        if _sha256(target) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the recorded digest")
    if problems:
        raise ArtifactIntegrityError(
            f"{root}: artifacts do not match {CONTRACT_FILE}: " + "; ".join(problems)
        )
    return files
