"""Channel adapters benchmark.

1. Render: the pure WeChat and Weibo renderers on a realistic 5,000-character item with
   images and a table (median and slowest of N).
2. Approval -> live through the real adapters and the sandbox, every platform call
   delayed by 200 ms (``POST /sandbox/_faults {"latency_ms": 200}``): one publication at a
   time to website + WeChat + Weibo; time from the final approval until every delivery is
   done (WeChat's asynchronous publish included: ``freepublish/submit`` -> sandbox publish
   delay -> ``PUBLISHJOBFINISH`` event or status poll).

Usage:  .venv/bin/python bench/channels/run.py [--items 20] [--renders 200] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import select  # noqa: E402

from channels.wechat_render import render_article  # noqa: E402
from channels.weibo_render import render_status  # noqa: E402
from govcast import migrate, runtime  # noqa: E402
from govcast.app import create_app  # noqa: E402
from govcast.settings import load_settings  # noqa: E402
from publisher import audit, workflow  # noqa: E402
from publisher.inputs import publication_from_fields  # noqa: E402
from publisher.models import Delivery, Membership, Role, User  # noqa: E402
from publisher.snapshot import MediaRef, PublicationSnapshot  # noqa: E402
from publisher.staff import hash_password, load_member  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_render(runs: int) -> None:
    from datetime import UTC, datetime

    refs = tuple(
        MediaRef(
            i,
            f"p{i}.png",
            "image/png",
            Path(f"/tmp/{i:064x}"),
            f"http://127.0.0.1:8080/media/{i:064x}/p{i}.png",
            size=50_000,
        )
        for i in range(3)
    )
    paragraphs = "".join(
        f"<p>第{i}条 城乡居民医保2026年度集中缴费期为10月至12月，请参保人通过<a href="
        f'"https://www.gov.cn/x{i}">政务服务网</a>按时缴费。</p>'
        for i in range(60)
    )
    table = (
        "<table>"
        + "".join(f"<tr><td>档次{i}</td><td>{i * 100}元</td></tr>" for i in range(20))
        + "</table>"
    )
    body = (
        f'<img src="{refs[0].url}">{paragraphs}<img src="{refs[1].url}">{table}'
        f'<ul>{"<li>事项</li>" * 20}</ul><img src="{refs[2].url}">'
    )
    pub = PublicationSnapshot(
        id=1,
        office_id=1,
        office_key="main",
        office_name="示例市人民政府办公室",
        index_number="11340000MB0000000X/202611-00001",
        kind="disclosure",
        version=1,
        title="关于进一步做好2026年度城乡居民基本医疗保险集中缴费工作的通知",
        body_html=body,
        summary="",
        category="service",
        issuing_body="示例市医疗保障局",
        url="http://127.0.0.1:8080/disclosure/11340000MB0000000X/202611-00001",
        published_at=datetime(2026, 11, 20, tzinfo=UTC),
        images=refs,
    )
    print(f"render input: {len(body):,} characters of HTML, 3 images, 60 links, a table")
    for name, fn in (
        ("wechat render_article", lambda: render_article(pub, "main")),
        ("weibo render_status", lambda: render_status(pub, "main", safe_domain="127.0.0.1")),
    ):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
        print(
            f"{name}: median {statistics.median(times):.2f} ms, slowest {max(times):.2f} ms "
            f"({runs} runs)"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bench_live(items: int, latency_ms: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="govcast-bench-channels-"))
    url = f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
    await asyncio.to_thread(migrate.upgrade, url)
    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = load_settings(
        env={},
        overrides={
            "database.url": url,
            "storage.data_dir": str(folder / "data"),
            "server.port": port,
            "website.base_url": origin,
            "wechat.accounts.main.api_base_url": f"{origin}/sandbox/wechat/cgi-bin",
            "weibo.accounts.main.api_base_url": f"{origin}/sandbox/weibo/2",
            "workflow.review_steps": 1,
            "weibo.accounts.main.posts_per_hour": 10_000,
            "logging.json": False,
        },
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    db = runtime.database(settings)
    config = runtime.core_config(settings)
    try:
        digest = hash_password("bench passphrase 123")
        async with db.transaction() as session:
            office = await workflow.office_by_key(session, "main")
            for name, role in (("editor", Role.EDITOR), ("approver", Role.APPROVER)):
                user = User(name=name, display_name=name, password_hash=digest)
                user.memberships = [Membership(office_id=office.id, role=role.value)]
                session.add(user)
        async with db.sessions() as session:
            approver = await load_member(session, "approver")
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{origin}/sandbox/_faults", json={"platform": "all", "latency_ms": latency_ms}
            ) as response:
                assert response.status == 200, await response.text()
        per_channel: dict[str, list[float]] = {}
        overall: list[float] = []
        for i in range(items):
            data = publication_from_fields(
                {
                    "title": f"关于第{i + 1}批惠民政策落实情况的公告",
                    "kind": "disclosure",
                    "category": "service",
                    "issuing_body": "示例市医疗保障局",
                    "body": "城乡居民医保2026年度集中缴费期为10月至12月。\n\n请按时缴费。",
                    "channels": ["website", "wechat:main", "weibo:main"],
                },
                max_body_chars=200_000,
            )
            async with db.transaction() as session:
                office = await workflow.office_by_key(session, "main")
                pub = await workflow.create(session, config, office, data, audit.CLI)
                await workflow.submit(session, pub.id, audit.CLI)
            start = time.perf_counter()
            async with db.transaction() as session:
                await workflow.review(session, config, pub.id, approver, approve=True, comment="ok")
            done: dict[str, float] = {}
            while len(done) < 3:
                async with db.sessions() as session:
                    rows = (
                        await session.execute(
                            select(Delivery.channel, Delivery.state).where(
                                Delivery.publication_id == pub.id
                            )
                        )
                    ).all()
                for channel, state in rows:
                    if state == "done" and channel not in done:
                        done[channel] = time.perf_counter() - start
                    if state == "dead":
                        raise SystemExit(f"delivery {channel} of publication {pub.id} died")
                if time.perf_counter() - start > 60:
                    raise SystemExit("a publication took over 60 s")
                await asyncio.sleep(0.02)
            for channel, seconds in done.items():
                per_channel.setdefault(channel, []).append(seconds)
            overall.append(max(done.values()))
        print(
            f"approval -> live, {items} publications one at a time, {latency_ms} ms per "
            "platform call (SQLite, one process, sandbox in the same app):"
        )
        for channel, values in sorted(per_channel.items()):
            print(
                f"  {channel:8s} p50 {statistics.median(values):.2f} s, "
                f"p95 {_percentile(values, 0.95):.2f} s"
            )
        print(
            f"  all three p50 {statistics.median(overall):.2f} s, "
            f"p95 {_percentile(overall, 0.95):.2f} s, max {max(overall):.2f} s"
        )
    finally:
        await db.dispose()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    bench_render(args.renders)
    asyncio.run(bench_live(args.items, args.latency_ms))


if __name__ == "__main__":
    main()
