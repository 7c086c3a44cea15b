"""bench/load at a tiny size, so that the bench cannot rot: a 300-item corpus on a scratch
PostgreSQL database, the real ``govcast web --workers 2`` (the supervisor and its children), two 2-second steps from
the separate generator process. Asserts the figures and the knee are printed, never times."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_tiny_load_run_prints_steps_and_the_knee() -> None:
    # Its own session, so that a run cut short takes the web processes it started with it.
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "load" / "run.py"),
            "--corpus",
            "300",
            "--processes",
            "2",
            "--rates",
            "4,8",
            "--step-seconds",
            "2",
            "--warmup-seconds",
            "0",
            "--skip-queue",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=170)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail("the tiny load run did not finish in 170 s:\n" + output[-6000:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-6000:]
    for processes in (2,):
        # A knee line per process count: a rate, or the admission that none held.
        assert re.search(
            rf"^KNEE corpus=300 processes={processes}: (\d+ msg/s \(p99 \d+ ms\)|below the lowest step)$",
            output,
            re.M,
        ), output[-6000:]
        # The per-step table has a row for the first step, with every request sent.
        row = re.search(rf"^\| 300 \| {processes} \| 4 \| (\d+) \|", output, re.M)
        assert row is not None, output[-6000:]
    # The first step of each run: every push verified and answered (a wrong signature or
    # account would show up as http 4xx errors here).
    firsts = re.findall(r"^\s+4 msg/s offered, .*$", output, re.M)
    assert len(firsts) == 1, output[-6000:]
    assert all("; 0 errors," in line for line in firsts), firsts
