"""Delivery queue benchmark.

1. Approval -> live: a publication approved (final review step) with website + 4 social
   accounts (a bench channel taking 200 ms per call, like a platform API) and a worker
   *process* polling as in production; time until every delivery is done. One item at a
   time (p50/p95), then 100 items approved together (time until the last is live).
2. Throughput: N deliveries already due, a no-latency channel and a 50 ms channel, one
   worker process (or several): deliveries per second and worker CPU per delivery.
3. Optionally procrastinate on the same PostgreSQL server draining N no-op jobs with one
   worker, for an honest ratio (pip install '.[bench]').

Usage:  .venv/bin/python bench/queue/run.py [--db sqlite,postgresql] [--deliveries 5000]
        [--workers 1] [--latency-runs 20] [--skip-latency] [--skip-procrastinate]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402

from bench.queue.dbs import scratch_database  # noqa: E402
from publisher import audit, workflow  # noqa: E402
from publisher.config import CoreConfig  # noqa: E402
from publisher.db import Database  # noqa: E402
from publisher.inputs import publication_from_fields  # noqa: E402
from publisher.models import Delivery, Membership, Role, User  # noqa: E402
from publisher.staff import StaffMember, hash_password, load_member  # noqa: E402

SOCIAL = ("wechat-main", "wechat-second", "weibo-main", "weibo-second")


def core(targets: tuple[str, ...]) -> CoreConfig:
    """One office, one review step (the approval under test is the final one)."""
    return CoreConfig(
        website_base_url="http://gov.bench",
        timezone=ZoneInfo("Asia/Shanghai"),
        review_steps=1,
        targets_by_office={"main": targets},
    )


async def setup_staff(db: Database) -> dict[str, StaffMember]:
    """An editor and an approver in the main office."""
    from govcast import runtime
    from govcast.settings import load_settings

    await runtime.sync_offices(db, load_settings(env={}))
    digest = hash_password("bench passphrase 123")
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, "main")
        for name, role in (("editor", Role.EDITOR), ("approver", Role.APPROVER)):
            user = User(name=name, display_name=name, password_hash=digest)
            user.memberships = [Membership(office_id=office.id, role=role.value)]
            session.add(user)
    async with db.sessions() as session:
        return {n: await load_member(session, n) for n in ("editor", "approver")}


async def drafts(
    db: Database,
    config: CoreConfig,
    members: dict[str, StaffMember],
    count: int,
    channels: list[str],
) -> list[int]:
    """``count`` submitted publications waiting for their final approval."""
    ids = []
    for i in range(count):
        data = publication_from_fields(
            {
                "title": f"基准测试通知第{i}号",
                "kind": "disclosure",
                "category": "service",
                "issuing_body": "示例市政务服务数据管理局",
                "body": f"第{i}号通知正文。" * 20,
                "channels": channels,
            },
            max_body_chars=200_000,
        )
        async with db.transaction() as session:
            office = await workflow.office_by_key(session, "main")
            pub = await workflow.create(
                session, config, office, data, members["editor"].actor(), member=members["editor"]
            )
            await workflow.submit(session, pub.id, audit.CLI)
            ids.append(pub.id)
    return ids


async def approve(
    db: Database, config: CoreConfig, members: dict[str, StaffMember], publication_id: int
) -> None:
    """The final approval: enqueues one delivery per channel account in its transaction."""
    async with db.transaction() as session:
        await workflow.review(
            session, config, publication_id, members["approver"], approve=True, comment="ok"
        )


# --- worker processes ----------------------------------------------------------------------


def worker_main(
    url: str,
    targets: tuple[str, ...],
    latency: float,
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
    poll: float,
) -> None:
    """A delivery worker process with the bench channel (and the real website channel)."""
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_worker(url, targets, latency, ready, go, stop, results, poll))


async def _worker(
    url: str,
    targets: tuple[str, ...],
    latency: float,
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
    poll: float,
) -> None:
    import tempfile

    from bench.queue.channel import BenchChannel
    from channels.website import WebsiteChannel
    from publisher.media import MediaStore
    from publisher.views import snapshot_loader
    from publisher.worker import Worker, WorkerOptions

    db = Database(url, pool_size=10)
    accounts = [t.split(":", 1)[1] for t in targets if t.startswith("bench:")]
    channels: dict[str, Any] = {"bench": BenchChannel(accounts, latency)}
    if "website" in targets:
        channels["website"] = WebsiteChannel(db)
    store = MediaStore(Path(tempfile.mkdtemp()) / "media", 10_000_000)
    worker = Worker(
        db,
        channels,
        snapshot_loader(db, core(targets), store),
        # Production defaults (`[queue] concurrency`, `batch_size`) apart from the lease and poll.
        options=WorkerOptions(lease_seconds=60, poll_interval=poll),
    )
    # Warm the pool and the imports before the clock starts.
    async with db.sessions() as session:
        await session.execute(select(func.count()).select_from(Delivery))
    ready.set()
    await asyncio.to_thread(go.wait)
    cpu = time.process_time()
    halt = asyncio.Event()
    task = asyncio.create_task(worker.run(halt))
    await asyncio.to_thread(stop.wait)
    halt.set()
    await task
    results.put((worker.processed, time.process_time() - cpu))
    await db.dispose()


class Workers:
    """N worker processes started, warmed, released together, stopped together."""

    def __init__(self, url: str, targets: tuple[str, ...], latency: float, n: int, poll: float):
        ctx = multiprocessing.get_context("spawn")
        self.go, self.stop, self.results = ctx.Event(), ctx.Event(), ctx.Queue()
        self.readies = [ctx.Event() for _ in range(n)]
        self.procs = [
            ctx.Process(
                target=worker_main,
                args=(url, targets, latency, r, self.go, self.stop, self.results, poll),
            )
            for r in self.readies
        ]

    def start(self) -> None:
        for p in self.procs:
            p.start()
        for r in self.readies:
            if not r.wait(120):
                raise RuntimeError("a worker did not start")

    def release(self) -> None:
        self.go.set()

    def finish(self) -> tuple[int, float]:
        self.stop.set()
        processed, cpu = 0, 0.0
        for _ in self.procs:
            n, c = self.results.get(timeout=120)
            processed += n
            cpu += c
        for p in self.procs:
            p.join(30)
        return processed, cpu


async def unsettled(db: Database, ids: list[int] | None = None) -> int:
    """Deliveries not yet done (or dead)."""
    async with db.sessions() as session:
        stmt = select(func.count()).where(Delivery.state.not_in(["done", "dead", "cancelled"]))
        if ids is not None:
            stmt = stmt.where(Delivery.publication_id.in_(ids))
        return int((await session.execute(stmt)).scalar_one())


async def live_at(db: Database, ids: list[int]) -> float:
    """When the last delivery of these publications was done (epoch seconds)."""
    async with db.sessions() as session:
        last = (
            await session.execute(
                select(func.max(Delivery.done_at)).where(Delivery.publication_id.in_(ids))
            )
        ).scalar_one()
    return float(last.timestamp())


# --- scenarios -----------------------------------------------------------------------------


def latency_scenario(kind: str, runs: int, batch: int) -> dict[str, float]:
    """Approval -> live on every channel with 200 ms platform calls."""
    targets = ("website", *(f"bench:{a}" for a in SOCIAL))
    config = core(targets)
    with scratch_database(kind, "queue") as url:

        async def prepare() -> tuple[dict[str, StaffMember], list[int]]:
            db = Database(url)
            members = await setup_staff(db)
            ids = await drafts(db, config, members, runs + batch, list(targets))
            await db.dispose()
            return members, ids

        members, ids = asyncio.run(prepare())
        workers = Workers(url, targets, 0.2, 1, poll=0.2)  # the production poll interval
        workers.start()
        workers.release()

        async def measure() -> dict[str, float]:
            db = Database(url)
            singles = []
            for pid in ids[:runs]:
                await asyncio.sleep(0.137)  # approvals arrive at an arbitrary poll phase
                started = time.time()
                await approve(db, config, members, pid)
                while await unsettled(db, [pid]):
                    await asyncio.sleep(0.01)
                singles.append(await live_at(db, [pid]) - started)
            group = ids[runs:]
            started = time.time()
            for pid in group:
                await approve(db, config, members, pid)
            approved = time.time() - started
            while await unsettled(db, group):
                await asyncio.sleep(0.02)
            whole = await live_at(db, group) - started
            await db.dispose()
            singles.sort()
            return {
                "single_p50": statistics.median(singles),
                "single_p95": singles[max(0, round(0.95 * len(singles)) - 1)],
                "single_max": singles[-1],
                "batch_approve_s": approved,
                "batch_all_live_s": whole,
            }

        try:
            return asyncio.run(measure())
        finally:
            workers.finish()


def throughput_scenario(
    kind: str, deliveries: int, latency: float, n_workers: int
) -> dict[str, float]:
    """Drain ``deliveries`` due deliveries (bench channel only) with N worker processes."""
    per_pub = len(SOCIAL)
    targets = ("website", *(f"bench:{a}" for a in SOCIAL))
    config = core(targets)
    with scratch_database(kind, "queue") as url:

        async def prepare() -> None:
            db = Database(url)
            members = await setup_staff(db)
            ids = await drafts(db, config, members, deliveries // per_pub, list(targets))
            for pid in ids:
                await approve(db, config, members, pid)
            # The website is required on every publication; its deliveries are set aside
            # here so that only the queue and the no-op/fixed-latency channel are measured.
            async with db.transaction() as session:
                await session.execute(
                    update(Delivery).where(Delivery.channel == "website").values(state="cancelled")
                )
            await db.dispose()

        asyncio.run(prepare())
        workers = Workers(url, targets, latency, n_workers, poll=0.05)
        workers.start()

        async def wait_drained() -> float:
            db = Database(url)
            workers.release()
            started = time.perf_counter()
            while await unsettled(db):
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
            await db.dispose()
            return elapsed

        elapsed = asyncio.run(wait_drained())
        processed, cpu = workers.finish()
    total = (deliveries // per_pub) * per_pub
    return {
        "deliveries": total,
        "processed": processed,
        "seconds": elapsed,
        "per_second": total / elapsed,
        "cpu_ms_per_delivery": 1000 * cpu / max(1, processed),
    }


def procrastinate_scenario(jobs: int) -> dict[str, float] | None:
    """procrastinate draining ``jobs`` no-op jobs with one worker, on a scratch database."""
    try:
        import procrastinate
    except ImportError:
        return None
    with scratch_database("postgresql", "procr", migrated=False) as url:
        conninfo = url.replace("postgresql+asyncpg://", "postgresql://", 1)

        async def run() -> dict[str, float]:
            app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

            @app.task(name="noop")
            async def noop() -> None:
                return None

            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                for start in range(0, jobs, 500):
                    await noop.batch_defer_async(*({} for _ in range(min(500, jobs - start))))
                cpu = time.process_time()
                started = time.perf_counter()
                await app.run_worker_async(concurrency=1, wait=False, install_signal_handlers=False)
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu
            return {
                "jobs": jobs,
                "seconds": elapsed,
                "per_second": jobs / elapsed,
                "cpu_ms_per_job": 1000 * cpu / jobs,
            }

        return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--deliveries", type=int, default=4000)
    parser.add_argument("--workers", default="1", help="comma-separated worker counts")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-procrastinate", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    kinds = [k.strip() for k in args.db.split(",") if k.strip()]
    ours_pg: float | None = None
    for kind in kinds:
        if not args.skip_latency:
            r = latency_scenario(kind, args.latency_runs, args.batch)
            print(
                f"[{kind}] approval->live, 1 item, website + 4 accounts at 200 ms/call, "
                f"{args.latency_runs} runs: p50 {r['single_p50']:.2f} s, p95 "
                f"{r['single_p95']:.2f} s, max {r['single_max']:.2f} s",
                flush=True,
            )
            print(
                f"[{kind}] {args.batch} items approved together ({args.batch * 5} deliveries; "
                f"approvals took {r['batch_approve_s']:.2f} s): all live after "
                f"{r['batch_all_live_s']:.2f} s",
                flush=True,
            )
        if args.skip_throughput:
            continue
        for n in [int(x) for x in args.workers.split(",")]:
            for latency in (0.0, 0.05):
                r = throughput_scenario(kind, args.deliveries, latency, n)
                print(
                    f"[{kind}] throughput, {n} worker(s), channel {int(latency * 1000)} ms: "
                    f"{r['deliveries']} deliveries in {r['seconds']:.2f} s = "
                    f"{r['per_second']:.0f}/s, worker CPU "
                    f"{r['cpu_ms_per_delivery']:.2f} ms/delivery",
                    flush=True,
                )
                if kind == "postgresql" and n == 1 and latency == 0.0:
                    ours_pg = r["per_second"]
    if "postgresql" in kinds and not args.skip_procrastinate:
        r = procrastinate_scenario(args.deliveries)
        if r is None:
            print("procrastinate not installed (pip install '.[bench]'): ratio not measured")
        else:
            print(
                "[postgresql] procrastinate, "
                f"one worker, no-op jobs: {r['jobs']} in {r['seconds']:.2f} s = "
                f"{r['per_second']:.0f}/s, CPU {r['cpu_ms_per_job']:.2f} ms/job",
                flush=True,
            )
            if ours_pg:
                print(f"[postgresql] govcast / procrastinate = {ours_pg / r['per_second']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
