"""The run directory: preparing it, writing JSON artifacts, and loading a run back (verified)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from zpml_runtime.errors import InvalidConfigError, ZeroProofRuntimeError
from zpml_runtime.robotics.contract import (
    CONTRACT_FILE,
    ArtifactIntegrityError,
    verify_output_contract,
)

__all__ = ["load_reference_robotics_artifacts", "prepare_output_dir", "write_strict_json"]


def prepare_output_dir(path: Path, overwrite: bool) -> None:
    """Create ``path``; a non-empty one is replaced only with ``overwrite`` and only if it holds a previous run."""
    if path.exists() and not path.is_dir():
        raise InvalidConfigError(f"output_dir {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise InvalidConfigError(
                f"output_dir {path} is not empty; pass overwrite=True (--overwrite) to replace its contents"
            )
        if not (path / CONTRACT_FILE).is_file():
            raise InvalidConfigError(
                f"output_dir {path} is not empty and is not a previous reference run (no {CONTRACT_FILE}); "
                "refusing to delete it even with overwrite=True"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def write_strict_json(path: Path, obj: Any) -> Path:
    """Strict JSON (no NaN/Infinity tokens), sorted keys, trailing newline."""
    from zpml_runtime.logging import dumps_strict

    path.write_text(dumps_strict(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_reference_robotics_artifacts(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify every digest of ``output_contract.json``, re-validate the bundle, return the JSON artifacts.

    Raises:
        ArtifactIntegrityError: a missing or changed artifact (named), or a bundle that
            no longer validates.
    """
    from zpml_runtime.bundle import validate_bundle

    root = Path(output_dir)
    files = verify_output_contract(root)
    try:
        validate_bundle(root / "bundle")
    except ZeroProofRuntimeError as e:
        raise ArtifactIntegrityError(f"{root / 'bundle'}: the bundle does not validate: {e}") from e
    loaded: dict[str, Any] = {
        name: json.loads((root / name).read_text(encoding="utf-8"))
        for name in (
            "inference_summary.json",
            "strict_inference_audit.json",
            "VALIDATION_REPORT.summary.json",
        )
        if name in files
    }
    loaded["files"] = files
    return loaded
