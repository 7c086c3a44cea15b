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
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.chaos.fleet import Fleet, free_port, set_faults, wait_ready, write_config  # noqa: E402
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
    for status in weibo:
        for pid, mark in marker.items():
            if mark in status.text:
                seen[(pid, "weibo", status.account)] += 1
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


def restart_postgresql(cluster: str = "main") -> None:
    """Restart the named cluster of the newest installed PostgreSQL (Debian's tools)."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"],
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
                    restart_postgresql(args.postgresql_cluster)
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
    parser.add_argument(
        "--postgresql-cluster",
        default="main",
        help="the Debian cluster that --restart-postgresql restarts; with GOVCAST_BENCH_PG "
        "pointing at a cluster of its own, the restart leaves other work on the machine alone",
    )
    parser.add_argument("--time-cap", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=7)
    # SIGTERM (a CI time-out, an operator) unwinds through run()'s clean-up, which stops
    # the fleet, instead of leaving its processes running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
