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
    for start in ("fit (optax.sgd", "hand-written lax.scan", "Flax NNX loop", "sweep per run", "fit with SAM", "goals"):
        assert any(r.startswith(start) for r in rows), f"no row {start!r}:\n{proc.stdout}"
    assert any("new programs: 0" in r for r in rows), proc.stdout
