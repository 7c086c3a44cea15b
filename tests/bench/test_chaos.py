"""The reduced chaos run (bench/chaos) in CI: real processes on a dedicated PostgreSQL
database, workers SIGKILLed and restarted, sandbox faults; every delivery settles and
nothing is posted twice. Capped at about three minutes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_reduced_chaos_run_settles_every_delivery_exactly_once() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "chaos" / "run.py"),
            "--publications",
            "8",
            "--kill-every",
            "10",
            "--chaos-seconds",
            "45",
            "--time-cap",
            "170",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "OK: every delivery done or dead-lettered" in result.stdout
    assert "SIGKILL" in result.stdout
