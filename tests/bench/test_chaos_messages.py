"""The reduced citizen-message chaos run (bench/chaos/messages.py) in CI: real processes
on a dedicated PostgreSQL database, web children SIGKILLed while the sandbox pushes
messages with WeChat's retries; every message is answered or acknowledged and none is
handled twice. Capped at about three minutes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def figures(output: str) -> dict[str, Any]:
    """The run's figures line."""
    found = re.search(r"^chaos messages: (\{.*\})$", output, re.MULTILINE)
    assert found, output[-6000:]
    return dict(json.loads(found.group(1)))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_reduced_message_chaos_answers_every_message_once() -> None:
    # Its own session, so that a run cut short takes every process it started with it
    # rather than leaving a fleet behind to load the rest of the suite.
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "chaos" / "messages.py"),
            *("--messages", "240", "--citizens", "16", "--rate", "8"),
            *("--kill-every", "3", "--corpus", "1000", "--settle-seconds", "30"),
            *("--time-cap", "90"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=220)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail("the message chaos run did not finish in 220 s:\n" + output[-6000:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    found = figures(output)
    assert found["messages"] == 240 and found["driver_errors"] == 0, output[-6000:]
    assert found["kills"] >= 1 and "SIGKILL web child" in output, output[-6000:]
    assert found["duplicates"] == 0, output[-6000:]
    assert found["answered_in_reply"] + found["acknowledged_then_sent"] > 0
    assert found["lost"] == 0, output[-6000:]
    assert proc.returncode == 0, output[-6000:]
    assert "OK: every message answered or acknowledged" in output
