"""The processes under test in the chaos benches (bench/chaos/run.py for publications,
bench/chaos/messages.py for citizens' messages): their settings file, start, SIGKILL and
restart, readiness, and the sandbox's fault switch."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    folder: Path,
    url: str,
    port: int,
    sandbox_port: int,
    *,
    sandbox_extra: str = "",
    extra: str = "",
) -> Path:
    """A settings file for one process: the two sandbox accounts per platform on
    ``sandbox_port``; ``sandbox_extra`` lines go into ``[sandbox]``, ``extra`` at the end."""
    api = f"http://127.0.0.1:{sandbox_port}/sandbox"
    accounts = ""
    for n, key in enumerate(("main", "second"), start=1):
        accounts += (
            f'[wechat.accounts.{key}]\nname = "示例{key}"\napp_id = "wxsandbox0000000{n}"\n'
            f'app_secret = "sandbox-app-secret-{key}"\ntoken = "sandboxtoken{n}"\n'
            'encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"\n'
            f'mode = "safe"\napi_base_url = "{api}/wechat/cgi-bin"\nper_minute = 100000\n'
            f'[weibo.accounts.{key}]\nname = "示例{key}"\napp_key = "300000000{n}"\n'
            f'access_token = "sandbox-weibo-token-{key}"\nsafe_domain = "127.0.0.1"\n'
            f'api_base_url = "{api}/weibo/2"\nposts_per_hour = 100000\n'
        )
    path = folder / f"settings-{port}.toml"
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nshutdown_grace_seconds = 3\n'
        f'[database]\nurl = "{url}"\npool_size = 5\n'
        f'[storage]\ndata_dir = "{folder / "data"}"\n'
        f'[website]\nbase_url = "http://127.0.0.1:{port}"\n'
        "[workflow]\nreview_steps = 1\n"
        "[queue]\nlease_seconds = 4\nbackoff_base_seconds = 0.3\nbackoff_max_seconds = 3\n"
        "max_attempts = 15\npoll_interval_seconds = 0.1\n"
        "[scheduler]\ntick_seconds = 1\n"
        "[sandbox]\nenabled = true\npublish_delay_seconds = 0.3\n"
        + sandbox_extra
        + '[logging]\njson = true\nlevel = "WARNING"\n'
        + accounts
        + extra,
        encoding="utf-8",
    )
    return path


class Fleet:
    """The processes under test; logs go to files in the run folder."""

    def __init__(self, folder: Path, config: Path, sandbox_config: Path) -> None:
        self.folder = folder
        self.config = config
        self.sandbox_config = sandbox_config
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCAST_")}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills = 0

    def start(self, name: str, *args: str, config: Path | None = None) -> None:
        """Start ``govcast <args>`` as process ``name``."""
        log = (self.folder / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "govcast.cli", "--config", str(config or self.config), *args],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=log,
        )

    def kill_random_worker(self, rng: random.Random) -> str:
        """SIGKILL one ``govcast worker`` at random and start it again."""
        name = rng.choice([n for n in self.procs if n.startswith("worker")])
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()
        self.kills += 1
        self.start(name, "worker")
        return name

    def serving_children(self, name: str, port: int) -> list[int]:
        """The children of ``govcast web --workers N`` (process ``name``) that hold a
        listening socket on ``port``, i.e. are taking connections now."""
        listening = listening_inodes(port)
        serving = []
        for pid in children(self.procs[name].pid):
            if listening & socket_inodes(pid):
                serving.append(pid)
        return serving

    def kill_web_child(self, name: str, port: int, rng: random.Random) -> int | None:
        """SIGKILL one serving child of ``govcast web --workers N`` at random, but only
        while another one serves (the supervisor restarts it); its pid, or None."""
        serving = self.serving_children(name, port)
        if len(serving) < 2:
            return None
        victim = rng.choice(serving)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.kills += 1
        return victim

    def stop_all(self) -> dict[str, int]:
        """SIGTERM everything, wait, and return each process's exit status."""
        codes: dict[str, int] = {}
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = -9
        return codes

    def tails(self, names: tuple[str, ...], chars: int = 3000) -> str:
        """The ends of the named processes' logs, for a failure report."""
        out = []
        for name in names:
            log = self.folder / f"{name}.log"
            if log.exists():
                out.append(f"--- {name}.log (tail)\n" + log.read_text(errors="replace")[-chars:])
        return "\n".join(out)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    try:
        raw = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in raw.split()]


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (any address, IPv4 or IPv6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def socket_inodes(pid: int) -> set[str]:
    """The socket inodes among ``pid``'s open files."""
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def wait_ready(port: int, timeout: float = 180) -> None:
    """Wait until ``/readyz`` on ``port`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"port {port} never became ready")


def set_faults(port: int, spec: dict[str, Any] | None) -> None:
    """Put the sandbox's faults in force (``None``: healthy again)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/sandbox/_faults",
        data=json.dumps(spec).encode() if spec else None,
        method="POST" if spec else "DELETE",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http only)
        response.read()
