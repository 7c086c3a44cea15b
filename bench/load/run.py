"""Load benchmark: the WeChat callback at rising rates on 1 and N web processes, and the
delivery queue with 1, 2 and 4 worker processes.

Command (PostgreSQL; the lock is taken only while measuring, not while building corpora):
    .venv/bin/python bench/load/run.py --lock /tmp/govcast-bench.lock \\
        --corpus 10000,100000 --processes 1,2 --queue-workers 1,2,4

For each corpus size a scratch PostgreSQL database (unique name, dropped at the end) gets the
schema, a search index of that many items (bench/callback/corpus.py, the website's own
tokenizer) and the keyword rule of bench/callback. For each process count, the real
``govcast web --workers P`` serves it with a safe-mode (AES) WeChat account configured like
bench/callback's, and bench/load/generate.py -- a second process -- sends signed pushes,
each with its own MsgId, open-loop at fixed rates (20, 40, 60 ... 800 msg/s, 10 s per step;
70 % keyword replies, 30 % searches of one or two Zipf-weighted words) until p99 exceeds
1 s or a request fails (error, 5 s timeout, or a reply deferred past the budget). The knee
is the highest step with p99 <= 1 s and no failure. Per step it also reports the server's
CPU (web processes, and the PostgreSQL backends of the scratch database) per message.

Then bench/queue/run.py drains due deliveries with 1, 2, 4 worker processes on PostgreSQL.
Client and server share the machine's cores: the generator's lag and CPU are printed so
that a saturated client is visible.
"""

# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg

from bench.callback.run import AES, APPID, KEYWORD, KEYWORD_REPLY, TOKEN, Pushes, check, prepare
from bench.queue.dbs import PG_ADMIN_URL

HERE = Path(__file__).resolve().parent
PY = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextlib.contextmanager
def bench_lock(path: str) -> Iterator[None]:
    """Hold the shared benchmark lock (the one ``flock PATH`` takes) while measuring."""
    if not path:
        yield
        return
    with open(path, "a") as fh:
        started = time.monotonic()
        fcntl.flock(fh, fcntl.LOCK_EX)
        waited = time.monotonic() - started
        if waited > 1:
            print(f"(waited {waited:.0f} s for {path})", flush=True)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- CPU accounting from /proc -------------------------------------------------------------


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


async def backend_pids(admin: str, dbname: str) -> list[int]:
    """PostgreSQL backends connected to ``dbname`` (same machine: their /proc is readable)."""
    conn = await asyncpg.connect(admin)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", dbname)
        return [int(r["pid"]) for r in rows]
    finally:
        await conn.close()


class CpuMeter:
    """CPU of the web process tree and of the scratch database's backends.

    A thread samples /proc every ``interval`` seconds and keeps the last figure seen per
    process, so that pool connections opened and closed during a step still count (a
    backend living less than one interval is missed: the database figure is a lower bound).
    """

    def __init__(self, server_pid: int, admin: str, dbname: str, interval: float = 0.5):
        self.server_pid, self.admin, self.dbname, self.interval = (
            server_pid,
            admin,
            dbname,
            interval,
        )
        self.web: dict[int, float] = {}
        self.db: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        """Record every watched process's CPU now."""
        web = {p: c for p in descendants(self.server_pid) if (c := proc_cpu(p)) is not None}
        pids = asyncio.run(backend_pids(self.admin, self.dbname))
        db = {p: c for p in pids if (c := proc_cpu(p)) is not None}
        with self.lock:
            self.web.update(web)
            self.db.update(db)

    def snapshot(self) -> tuple[dict[int, float], dict[int, float]]:
        """Sample, then return copies of the per-process figures."""
        self.sample()
        with self.lock:
            return dict(self.web), dict(self.db)

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            with contextlib.suppress(Exception):
                self.sample()

    def __enter__(self) -> CpuMeter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots (processes born in between count whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- the web server under test -------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def web_env(url: str, port: int, data_dir: str) -> dict[str, str]:
    """govcast's settings for the bench: PostgreSQL, no sandbox, a safe and a plain account.

    The accounts are bench/callback's (same token, AES key and AppID, so its ``Pushes``
    signs for them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCAST_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "GOVCAST_SERVER__PORT": str(port),
        "GOVCAST_SERVER__SHUTDOWN_GRACE_SECONDS": "3",
        "GOVCAST_DATABASE__URL": url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "GOVCAST_SANDBOX__ENABLED": "false",
        "GOVCAST_SCHEDULER__ENABLED": "false",
        "GOVCAST_LOGGING__LEVEL": "WARNING",
        "GOVCAST_STORAGE__DATA_DIR": data_dir,
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__APP_ID": APPID,
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__TOKEN": TOKEN,
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__ENCODING_AES_KEY": AES,
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__MODE": "safe",
        "GOVCAST_WECHAT__ACCOUNTS__PLAIN__APP_ID": APPID,
        "GOVCAST_WECHAT__ACCOUNTS__PLAIN__TOKEN": TOKEN,
        "GOVCAST_WECHAT__ACCOUNTS__PLAIN__MODE": "plain",
    }


def listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (one per web process)."""
    local = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1] == local and parts[3] == "0A":  # 0A: LISTEN
            count += 1
    return count


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Wait for /readyz (every process of a multi-process web binds the same port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"govcast web exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"govcast web on port {port} never became ready")


@contextlib.contextmanager
def web_server(url: str, processes: int, folder: Path) -> Iterator[tuple[int, int]]:
    """``govcast web --workers processes``; yields (port, pid); SIGTERM and wait at the end."""
    port = free_port()
    log = (folder / f"web-{processes}.log").open("ab")
    proc = subprocess.Popen(
        [PY, "-m", "govcast.cli", "web", "--workers", str(processes)],
        cwd=ROOT,
        env=web_env(url, port, str(folder / "data")),
        stdout=log,
        stderr=log,
    )
    try:
        wait_ready(port, proc)
        # /readyz answered from one child; every child binds its own socket (SO_REUSEPORT).
        deadline = time.monotonic() + 120
        while listeners(port) < processes and time.monotonic() < deadline:
            time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def scratch_name(size: int) -> str:
    """A database name no other run uses."""
    return f"govcast_bench_load_{size}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


async def admin_sql(admin: str, sql: str) -> None:
    """One statement on the admin database."""
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# --- one load run --------------------------------------------------------------------------


def drive(
    args: argparse.Namespace, port: int, server_pid: int, dbname: str
) -> list[dict[str, Any]]:
    """Run the generator process against ``port``; returns the figures of each step."""
    command = [
        PY,
        str(HERE / "generate.py"),
        "--port",
        str(port),
        "--mode",
        args.mode,
        "--rates",
        args.rates,
        "--step-seconds",
        str(args.step_seconds),
        "--warmup-seconds",
        str(args.warmup_seconds),
        "--keyword-share",
        str(args.keyword_share),
        "--timeout",
        str(args.timeout),
        "--p99-limit",
        str(args.p99_limit),
    ]
    steps: list[dict[str, Any]] = []
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    with CpuMeter(server_pid, args.pg, dbname) as meter:
        before: tuple[dict[int, float], dict[int, float]] = ({}, {})
        load = ""
        for line in proc.stdout:
            if line.startswith("BEGIN "):
                before = meter.snapshot()
                load = loadavg()
            elif line.startswith("STEP "):
                web, db = meter.snapshot()
                step = json.loads(line[5:])
                answered = max(1, step["sent"] - step["errors"] - step["timeouts"])
                step["web_cpu_ms"] = 1000 * spent(before[0], web) / answered
                step["db_cpu_ms"] = 1000 * spent(before[1], db) / answered
                step["loadavg"] = load
                steps.append(step)
                print(step_line(step), flush=True)
            else:
                print(line, end="", flush=True)
    if proc.wait() != 0:
        raise SystemExit(f"the load generator exited with {proc.returncode}")
    return steps


def failed(step: dict[str, Any], limit: float) -> bool:
    """Whether a step is past the knee: p99 over the limit, or any request not answered."""
    return bool(step["p99"] > limit or step["errors"] or step["timeouts"] or step["deferred"])


def step_line(s: dict[str, Any]) -> str:
    """One step, human-readable."""
    errors = f"{s['errors']} errors, {s['timeouts']} timeouts, {s['deferred']} deferred"
    if s["error_kinds"]:
        errors += f" {s['error_kinds']}"
    return (
        f"  {s['offered']:>6.0f} msg/s offered, {s['achieved']:7.1f} answered/s: p50 "
        f"{1000 * s['p50']:.0f} ms, p95 {1000 * s['p95']:.0f} ms, p99 {1000 * s['p99']:.0f} ms"
        f" (keyword p99 {1000 * s['keyword_p99']:.0f}, search p99 {1000 * s['search_p99']:.0f});"
        f" {errors}; server CPU/msg web {s['web_cpu_ms']:.1f} ms + db {s['db_cpu_ms']:.1f} ms;"
        f" client lag p99 {1000 * s['lag_p99']:.1f} ms, client CPU {100 * s['client_cpu']:.0f} %;"
        f" load {s['loadavg']}"
    )


def knee(steps: list[dict[str, Any]], limit: float) -> dict[str, Any] | None:
    """The highest step that held (steps rise, and the run stops at the first failure)."""
    good = [s for s in steps if not failed(s, limit)]
    return good[-1] if good else None


# --- the queue -----------------------------------------------------------------------------


QUEUE_LINE = re.compile(
    r"\[postgresql\] throughput, (\d+) worker\(s\), channel (\d+) ms: (\d+) deliveries in "
    r"([\d.]+) s = (\d+)/s, worker CPU ([\d.]+) ms/delivery"
)


def queue_run(args: argparse.Namespace) -> list[tuple[int, int, float, float]]:
    """bench/queue/run.py with 1, 2, 4 workers; (workers, channel ms, per s, CPU ms)."""
    command = [
        PY,
        str(ROOT / "bench" / "queue" / "run.py"),
        "--db",
        "postgresql",
        "--workers",
        args.queue_workers,
        "--deliveries",
        str(args.queue_deliveries),
        "--skip-latency",
        "--skip-procrastinate",
    ]
    print(f"\n$ {' '.join(command[1:])}   (load {loadavg()})", flush=True)
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    print(out.stdout, end="", flush=True)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"bench/queue/run.py exited with {out.returncode}")
    rows = []
    for m in QUEUE_LINE.finditer(out.stdout):
        rows.append((int(m[1]), int(m[2]), float(m[5]), float(m[6])))
    return rows


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", default=PG_ADMIN_URL, help="admin URL of the PostgreSQL server")
    parser.add_argument("--corpus", default="10000,100000", help="search index sizes")
    parser.add_argument(
        "--corpus-template",
        default="",
        help="copy this existing database (e.g. bench/callback's govcast_bench_callback) "
        "instead of building the index, when it holds the largest corpus size",
    )
    parser.add_argument(
        "--processes", default=f"1,{os.cpu_count() or 1}", help="web process counts"
    )
    parser.add_argument(
        "--rates", default="20,40,60,80,100,130,160,200,300,400,600,800", help="msg/s steps"
    )
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--keyword-share", type=float, default=0.7, help="rest: searches")
    parser.add_argument("--mode", choices=("safe", "plain"), default="safe")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--p99-limit", type=float, default=1.0, help="seconds")
    parser.add_argument("--queue-workers", default="1,2,4")
    parser.add_argument("--queue-deliveries", type=int, default=2000)
    parser.add_argument("--skip-callback", action="store_true")
    parser.add_argument("--skip-queue", action="store_true")
    parser.add_argument(
        "--lock", default="", help="hold this flock file while measuring (not while building)"
    )
    return parser.parse_args(argv)


def callback_runs(args: argparse.Namespace) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """Every (corpus size, web processes) run; their steps."""
    results = []
    sizes = [int(x) for x in args.corpus.split(",") if x.strip()]
    counts = [int(x) for x in args.processes.split(",") if x.strip()]
    folder = Path(tempfile.mkdtemp(prefix="govcast-bench-load-"))
    for size in sizes:
        results.extend(callback_size(args, size, max(sizes), counts, folder))
    # The web logs stay behind only when a run failed (they are where to look).
    shutil.rmtree(folder, ignore_errors=True)
    return results


def callback_size(
    args: argparse.Namespace, size: int, largest: int, counts: list[int], folder: Path
) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """One corpus size on a scratch database: every process count; their steps."""
    results = []
    dbname = scratch_name(size)
    try:
        if args.corpus_template and size == largest:
            asyncio.run(
                admin_sql(args.pg, f'CREATE DATABASE "{dbname}" TEMPLATE "{args.corpus_template}"')
            )
        t0 = time.perf_counter()
        url = asyncio.run(prepare(args.pg, dbname, size))
        print(
            f"\ncorpus {size:,} items ready in {time.perf_counter() - t0:.0f} s "
            f"(database {dbname})",
            flush=True,
        )
        for processes in counts:
            with web_server(url, processes, folder) as (port, pid):
                # The configuration answers as expected before anything is measured.
                pushes = Pushes()
                check(port, "/wechat/main", pushes, KEYWORD, True, KEYWORD_REPLY)
                check(port, "/wechat/main", pushes, "医保", True, "<ArticleCount>")
                with bench_lock(args.lock):
                    print(
                        f"\n[corpus {size:,}, {processes} web process(es)] "
                        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {loadavg()}",
                        flush=True,
                    )
                    steps = drive(args, port, pid, dbname)
            found = knee(steps, args.p99_limit)
            print(
                f"KNEE corpus={size} processes={processes}: "
                + (
                    f"{found['offered']:.0f} msg/s (p99 {1000 * found['p99']:.0f} ms)"
                    if found
                    else "below the lowest step"
                ),
                flush=True,
            )
            results.append((size, processes, steps))
    finally:
        asyncio.run(admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
    return results


def report(
    args: argparse.Namespace,
    runs: list[tuple[int, int, list[dict[str, Any]]]],
    queue: list[tuple[int, int, float, float]],
) -> None:
    """The Markdown tables for BENCHMARKS.md."""
    if runs:
        print(
            "\n| corpus | web processes | offered msg/s | answered/s | p50 ms | p95 ms | p99 ms "
            "| failed | web CPU ms/msg | db CPU ms/msg | client lag p99 ms | load |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for size, processes, steps in runs:
            for s in steps:
                bad = s["errors"] + s["timeouts"] + s["deferred"]
                print(
                    f"| {size:,} | {processes} | {s['offered']:.0f} | {s['achieved']:.0f} "
                    f"| {1000 * s['p50']:.0f} | {1000 * s['p95']:.0f} | {1000 * s['p99']:.0f} "
                    f"| {bad} | {s['web_cpu_ms']:.1f} | {s['db_cpu_ms']:.1f} "
                    f"| {1000 * s['lag_p99']:.1f} | {s['loadavg']} |"
                )
        print("\n| corpus | web processes | knee (p99 <= 1 s, no failure) |\n|---:|---:|---|")
        for size, processes, steps in runs:
            found = knee(steps, args.p99_limit)
            text = (
                f"{found['offered']:.0f} msg/s (p99 {1000 * found['p99']:.0f} ms)"
                if found
                else "below the lowest step"
            )
            print(f"| {size:,} | {processes} | {text} |")
    if queue:
        print("\n| queue workers | channel ms | deliveries/s | worker CPU ms/delivery |")
        print("|---:|---:|---:|---:|")
        for workers, latency, rate, cpu in queue:
            print(f"| {workers} | {latency} | {rate:.0f} | {cpu:.2f} |")


def main(argv: list[str] | None = None) -> int:
    """Run the callback load and the queue runs; print the figures."""
    args = parse_args(argv)
    runs = [] if args.skip_callback else callback_runs(args)
    queue: list[tuple[int, int, float, float]] = []
    if not args.skip_queue:
        with bench_lock(args.lock):
            queue = queue_run(args)
    report(args, runs, queue)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
