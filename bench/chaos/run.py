"""Chaos: publications through website + 2 WeChat + 2 Weibo accounts (the sandbox) while
workers are SIGKILLed and restarted, the sandbox injects errors, latency and timeouts,
and (full run) PostgreSQL restarts once. At the end every delivery is done or dead with a
reason, and the sandbox's own records show each publication exactly once per account.

Processes: one sandbox process (its own port: fault settings live in its memory), the
application `govcast web --workers 2` (two processes sharing a port), 3 `govcast worker`,
1 `govcast scheduler`; all on a dedicated PostgreSQL database created and dropped here.

Usage:  .venv/bin/python bench/chaos/run.py [--publications 1000] [--kill-every 3]
        [--restart-postgresql] [--time-cap 1800]
Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.queue.dbs import scratch_database  # noqa: E402
from bench.queue.run import approve, setup_staff  # noqa: E402
from govcast import runtime  # noqa: E402
from govcast.settings import load_settings  # noqa: E402
from publisher import audit, workflow  # noqa: E402
from publisher.db import Database  # noqa: E402
from publisher.inputs import publication_from_fields  # noqa: E402
from publisher.models import Delivery, Publication  # noqa: E402

UNSETTLED = ("pending", "sending", "confirming")
TARGETS = ["website", "wechat:main", "wechat:second", "weibo:main", "weibo:second"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, url: str, port: int, sandbox_port: int) -> Path:
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
        '[logging]\njson = true\nlevel = "WARNING"\n' + accounts,
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
        log = (self.folder / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "govcast.cli", "--config", str(config or self.config), *args],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=log,
        )

    def kill_random_worker(self, rng: random.Random) -> str:
        name = rng.choice([n for n in self.procs if n.startswith("worker")])
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()
        self.kills += 1
        self.start(name, "worker")
        return name

    def stop_all(self) -> dict[str, int]:
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


def wait_ready(port: int, timeout: float = 180) -> None:
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
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/sandbox/_faults",
        data=json.dumps(spec).encode() if spec else None,
        method="POST" if spec else "DELETE",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http only)
        response.read()


async def create_and_approve(url: str, config_path: Path, count: int) -> list[int]:
    settings = load_settings(str(config_path), env={})
    core = runtime.core_config(settings)
    db = Database(url)
    members = await setup_staff(db)
    ids = []
    for i in range(count):
        data = publication_from_fields(
            {
                "title": f"混沌测试通知第{i}号",
                "kind": "press_release",
                "category": "service",
                "issuing_body": "示例市人民政府办公室",
                "body": f"第{i}号通知：请市民关注。" * 5,
                "channels": TARGETS,
            },
            max_body_chars=200_000,
        )
        async with db.transaction() as session:
            office = await workflow.office_by_key(session, "main")
            pub = await workflow.create(
                session, core, office, data, members["editor"].actor(), member=members["editor"]
            )
            await workflow.submit(session, pub.id, audit.CLI)
        ids.append(pub.id)
    for pid in ids:
        await approve(db, core, members, pid)
    await db.dispose()
    return ids


async def unsettled(url: str) -> int:
    db = Database(url)
    try:
        async with db.sessions() as session:
            stmt = select(func.count()).where(Delivery.state.in_(UNSETTLED))
            return int((await session.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


async def verify(url: str, ids: list[int]) -> tuple[list[str], dict[str, Any]]:
    """Every delivery settled with a reason; each publication once per sandbox account."""
    from sandbox.models import SandboxPublish, SandboxWeiboStatus

    problems: list[str] = []
    db = Database(url)
    async with db.sessions() as session:
        deliveries = list((await session.execute(select(Delivery))).scalars())
        pubs = {
            p.id: p
            for p in (
                await session.execute(select(Publication).where(Publication.id.in_(ids)))
            ).scalars()
        }
        wechat = list((await session.execute(select(SandboxPublish))).scalars())
        weibo = list(
            (
                await session.execute(
                    select(SandboxWeiboStatus).where(SandboxWeiboStatus.deleted.is_(False))
                )
            ).scalars()
        )
    await db.dispose()
    states = Counter(d.state for d in deliveries)
    for d in deliveries:
        if d.state in UNSETTLED:
            problems.append(f"delivery {d.id} still {d.state}")
        if d.state == "dead" and not d.last_error:
            problems.append(f"delivery {d.id} dead without a reason")
    # What the sandbox holds, per publication (matched on the item's website address).
    seen: dict[tuple[int, str, str], int] = defaultdict(int)
    marker = {pid: f"/disclosure/{p.index_number}" for pid, p in pubs.items() if p.index_number}
    for row in wechat:
        if row.status != 0:
            continue
        text = json.dumps(row.articles, ensure_ascii=False)
        for pid, mark in marker.items():
            if mark in text:
                seen[(pid, "wechat", row.account)] += 1
    for row in weibo:
        for pid, mark in marker.items():
            if mark in row.text:
                seen[(pid, "weibo", row.account)] += 1
    duplicates = {k: v for k, v in seen.items() if v > 1}
    for key, count in duplicates.items():
        problems.append(f"publication {key[0]} posted {count} times on {key[1]}:{key[2]}")
    for pid in ids:
        for platform in ("wechat", "weibo"):
            done = [
                d
                for d in deliveries
                if d.publication_id == pid
                and d.channel == platform
                and d.action == "publish"
                and d.state == "done"
            ]
            accounts = {k[2] for k in seen if k[0] == pid and k[1] == platform}
            if len(accounts) < len(done):
                problems.append(
                    f"publication {pid}: {len(done)} {platform} deliveries done, "
                    f"found on {len(accounts)} sandbox accounts"
                )
    figures = {
        "deliveries": len(deliveries),
        "states": dict(states),
        "reconciled": sum(1 for d in deliveries if d.attempts > 1),
        "sandbox_wechat_articles": sum(1 for r in wechat if r.status == 0),
        "sandbox_weibo_statuses": len(weibo),
    }
    return problems, figures


def restart_postgresql() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    started = time.monotonic()
    with (
        scratch_database("postgresql", "chaos") as url,
        tempfile.TemporaryDirectory(prefix="govcast-chaos-") as tmp,
    ):
        folder = Path(tmp)
        port, sandbox_port = free_port(), free_port()
        config = write_config(folder, url, port, sandbox_port)
        sandbox_config = write_config(folder, url, sandbox_port, sandbox_port)
        fleet = Fleet(folder, config, sandbox_config)
        try:
            # Started one after another: a process takes several seconds of CPU to start
            # and this machine has two cores.
            fleet.start("sandbox", "web", config=sandbox_config)
            wait_ready(sandbox_port, timeout=180)
            fleet.start("web", "web", "--workers", "2")
            wait_ready(port, timeout=180)
            for n in range(3):
                fleet.start(f"worker{n}", "worker")
            fleet.start("scheduler", "scheduler")
            set_faults(
                sandbox_port,
                {
                    "platform": "all",
                    "error_rate": args.error_rate,
                    "latency_ms": args.latency_ms,
                    "timeout_rate": args.timeout_rate,
                    "seed": args.seed,
                },
            )
            print(f"fleet up after {time.monotonic() - started:.1f} s; approving", flush=True)
            ids = asyncio.run(create_and_approve(url, config, args.publications))
            print(f"{len(ids)} publications approved at {time.monotonic() - started:.1f} s")
            pg_restarted = not args.restart_postgresql
            chaos_until = time.monotonic() + args.chaos_seconds
            next_kill = time.monotonic() + args.kill_every
            remaining = -1
            # The cap bounds the settling, not the start-up: a slow start on a busy
            # machine is not a delivery failure.
            settle_started = time.monotonic()
            while time.monotonic() - settle_started < args.time_cap:
                try:
                    remaining = asyncio.run(unsettled(url))
                except Exception as exc:  # PostgreSQL restarting
                    print(f"  (database unavailable: {type(exc).__name__})", flush=True)
                    time.sleep(1)
                    continue
                now = time.monotonic()
                if now < chaos_until and now >= next_kill:
                    victim = fleet.kill_random_worker(rng)
                    print(f"  SIGKILL {victim}; {remaining} unsettled", flush=True)
                    next_kill = now + args.kill_every
                if not pg_restarted and remaining < 0.6 * args.publications * 5:
                    print("  restarting PostgreSQL", flush=True)
                    restart_postgresql()
                    pg_restarted = True
                if now >= chaos_until:
                    set_faults(sandbox_port, None)  # the storm passes; retries finish
                if remaining == 0 and pg_restarted:
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            if remaining != 0:
                print(f"  time cap of {args.time_cap:.0f} s reached", flush=True)
            problems, figures = asyncio.run(verify(url, ids))
        except BaseException:
            fleet.stop_all()
            for name in ("sandbox", "web", "worker0", "scheduler"):
                log = folder / f"{name}.log"
                if log.exists():
                    print(f"--- {name}.log (tail)\n" + log.read_text(errors="replace")[-2000:])
            raise
        codes = fleet.stop_all()
        clean = {n: c for n, c in codes.items() if c != 0}
        if clean:
            problems.append(f"processes did not stop cleanly: {clean}")
        print(
            f"chaos: {args.publications} publications x 5 targets, {fleet.kills} worker "
            f"SIGKILLs, PostgreSQL restarted: {args.restart_postgresql}; settled in "
            f"{elapsed:.1f} s; {json.dumps(figures, ensure_ascii=False)}",
            flush=True,
        )
        if problems:
            print("FAILED:\n  " + "\n  ".join(problems[:50]))
            for name in ("web", "worker0", "scheduler", "sandbox"):
                log = folder / f"{name}.log"
                if log.exists():
                    print(f"--- {name}.log (tail)\n" + log.read_text(errors="replace")[-3000:])
            return 1
        print("OK: every delivery done or dead-lettered with a reason; no duplicates")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publications", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=10.0)
    parser.add_argument("--chaos-seconds", type=float, default=120.0)
    parser.add_argument("--error-rate", type=float, default=0.15)
    parser.add_argument("--timeout-rate", type=float, default=0.02)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--restart-postgresql", action="store_true")
    parser.add_argument("--time-cap", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=7)
    # SIGTERM (a CI time-out, an operator) unwinds through run()'s clean-up, which stops
    # the fleet, instead of leaving its processes running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
