"""Real processes: `govcast web --workers 2` shares a port, `govcast worker` and
`govcast scheduler` run apart; SIGTERM stops each cleanly with status 0. On SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, database_url: str, port: int) -> Path:
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nshutdown_grace_seconds = 3\n'
        f'[database]\nurl = "{database_url}"\n[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        "[queue]\npoll_interval_seconds = 0.05\n[logging]\njson = true\n"
        # Accounts make the settings hold read-only mappings, which the spawned web
        # children must still receive intact.
        '[weibo.accounts.main]\napp_key = "3000000001"\naccess_token = "t"\n'
        'safe_domain = "127.0.0.1"\napi_base_url = "http://127.0.0.1:9/sandbox/weibo/2"\n',
        encoding="utf-8",
    )
    return config


def _start(config: Path, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVCAST_", "PROMETHEUS_"))}
    # stderr goes to a file so that the test can watch the logs while the process runs.
    log = (tmp_path / "stderr.log").open("w", encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "govcast.cli", "--config", str(config), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )


def _log(tmp_path: Path) -> str:
    return (tmp_path / "stderr.log").read_text(encoding="utf-8")


def _wait_log(process: subprocess.Popen[str], tmp_path: Path, needle: str, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _log(tmp_path).count(needle) >= count:
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"never logged {needle!r} x{count}: {_log(tmp_path)[-3000:]}")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_ready(process: subprocess.Popen[str], port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("exited early")
        try:
            if _get(port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("never became ready")


def _stop(process: subprocess.Popen[str], tmp_path: Path, timeout: float = 30) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"did not stop on SIGTERM: {_log(tmp_path)[-3000:]}") from None
    return process.returncode, _log(tmp_path)


def test_web_with_two_processes_shares_the_port_and_stops_cleanly(
    tmp_path: Path, database_url: str
) -> None:
    port = _free_port()
    config = _config(tmp_path, database_url, port)
    web = _start(config, tmp_path, "web", "--workers", "2")
    try:
        _wait_ready(web, port)
        _wait_log(web, tmp_path, '"govcast listening"', count=2)
        status, body = _get(port, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        for _ in range(10):  # requests land on either process; each one answers
            status, body = _get(port, "/metrics")
            assert status == 200
            families = {f.name for f in text_string_to_metric_families(body)}
            assert {"govcast_queue_depth", "govcast_database_up"} <= families
        status, _ = _get(port, "/wechat/" + "%00" * 2000)
        assert status < 500
    finally:
        code, err = _stop(web, tmp_path)
    assert code == 0, err[-3000:]
    listening = [json.loads(line) for line in err.splitlines() if '"govcast listening"' in line]
    assert len({entry["pid"] for entry in listening}) == 2


def test_a_killed_web_process_is_restarted_by_the_supervisor(
    tmp_path: Path, database_url: str
) -> None:
    port = _free_port()
    config = _config(tmp_path, database_url, port)
    web = _start(config, tmp_path, "web", "--workers", "2")
    try:
        _wait_ready(web, port)
        _wait_log(web, tmp_path, '"govcast listening"', count=2)
        children = subprocess.run(
            ["pgrep", "-P", str(web.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        servers = [int(pid) for pid in children]
        assert servers
        victim = servers[-1]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = subprocess.run(
                ["pgrep", "-P", str(web.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            if victim not in map(int, now) and len(now) >= len(servers):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the killed process was not replaced")
        _wait_ready(web, port)
    finally:
        code, err = _stop(web, tmp_path)
    assert code == 0, err[-3000:]
    assert "restarting" in err


@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_headless_processes_stop_cleanly_on_sigterm(
    tmp_path: Path, database_url: str, role: str
) -> None:
    config = _config(tmp_path, database_url, _free_port())
    process = _start(config, tmp_path, role)
    _wait_log(process, tmp_path, '"govcast running"')
    code, err = _stop(process, tmp_path)
    assert code == 0, err[-3000:]
    assert "govcast stopped" in err


def _catches_sigterm(pid: int) -> bool:
    # /proc/<pid>/status lists the signals a process has a handler for, as a bit mask.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_a_process_stopped_while_still_starting_exits_cleanly(
    tmp_path: Path, database_url: str, role: str
) -> None:
    # A rolling restart may stop a process before it has loaded its code: that is a clean
    # stop (nothing was claimed yet), not a death by signal.
    config = _config(tmp_path, database_url, _free_port())
    process = _start(config, tmp_path, role)
    deadline = time.monotonic() + 60
    while not _catches_sigterm(process.pid):
        assert process.poll() is None and time.monotonic() < deadline, _log(tmp_path)[-3000:]
        time.sleep(0.005)
    assert '"govcast running"' not in _log(tmp_path)  # still starting
    code, err = _stop(process, tmp_path)
    assert code == 0, err[-3000:]
