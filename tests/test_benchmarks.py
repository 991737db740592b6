"""The training-throughput benchmark runs end to end (smoke size; no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "code" / "benchmarks" / "train_throughput.py"


def test_train_throughput_quick_runs():
    env = {**os.environ, "SGDLAB_NO_PROGRESS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    rows = proc.stdout.splitlines()
    assert any(r.startswith("fit (1 evaluation)") for r in rows), proc.stdout
    assert any(r.startswith("Flax NNX loop") for r in rows), proc.stdout
    assert any(r.startswith("goals") for r in rows), proc.stdout
