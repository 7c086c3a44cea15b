"""The reduced chaos run (bench/chaos) in CI: real processes on a dedicated PostgreSQL
database, workers SIGKILLed and restarted, sandbox faults; every delivery settles and
nothing is posted twice. Capped at about three minutes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_reduced_chaos_run_settles_every_delivery_exactly_once() -> None:
    # Its own session, so that a run cut short takes every process it started with it
    # rather than leaving a fleet behind to load the rest of the suite.
    proc = subprocess.Popen(
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
            "300",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail("the chaos run did not finish in 840 s:\n" + output[-6000:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-6000:]
    assert "OK: every delivery done or dead-lettered" in output
    assert "SIGKILL" in output
