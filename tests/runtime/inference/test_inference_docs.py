"""The examples of docs/inference.md run as written (in a subprocess, in a temp dir)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "inference.md"


def test_inference_doc_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    script = tmp_path / "inference_doc_examples.py"
    script.write_text("\n".join(blocks))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "results" / "tau_calibration" / "tau_infer_sweep.svg").exists()
    assert (tmp_path / "strict_inference_events.jsonl").exists()
