"""Prometheus metrics: /metrics parses, reflects the queue, times the callback, counts
delivery outcomes; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from govcast import keys, metrics
from govcast.settings import Settings
from publisher.db import Database
from publisher.outcomes import PermanentError, TransientError
from publisher.staff import StaffMember
from tests.publisher.helpers import approve_through, core, create_draft, fake, make_worker


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(body: str, name: str, **labels: str) -> float:
    return _samples(body).get((name, tuple(sorted(labels.items()))), 0.0)


def _app(db: Database, settings: Settings) -> web.Application:
    # The operations part of the application only: the metrics route and the timer,
    # over the real test database, plus a stand-in callback route to time.
    app = web.Application()
    app[keys.DB] = db
    app[keys.SETTINGS] = settings
    metrics.setup(app, keys.DB)

    async def callback(request: web.Request) -> web.Response:
        if request.match_info["account"] == "broken":
            raise web.HTTPBadRequest(text="bad signature")
        return web.Response(text="success")

    app.router.add_route("*", "/wechat/{account}", callback)
    return app


async def _scrape(client: TestClient[Any, Any]) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return await response.text()


async def test_metrics_parse_and_show_queue_depth_by_state_and_channel(
    db: Database,
    settings: Settings,
    staff_members: dict[str, StaffMember],
    aiohttp_client: Any,
) -> None:
    config = core()
    draft = await create_draft(db, config, staff_members["editor"])
    await approve_through(db, config, staff_members, draft.id)
    client = await aiohttp_client(_app(db, settings))
    body = await _scrape(client)
    assert _value(body, "govcast_database_up") == 1.0
    assert _value(body, "govcast_queue_depth", state="pending", channel="fake") == 2.0
    assert _value(body, "govcast_queue_depth", state="pending", channel="website") == 1.0
    # The cases tables exist in the migrated schema: nothing is at risk yet.
    assert ("govcast_cases_deadline_at_risk", ()) in _samples(body)
    assert _value(body, "govcast_cases_deadline_at_risk") == 0.0

    # Drain the queue through an instrumented worker: depth falls, outcomes are counted.
    channel = fake()
    worker = make_worker(db, config, [channel], tmp_path=Path(settings.data_dir))
    worker.channels = metrics.instrument_channels(worker.channels)
    before_done = metrics.DELIVERY_OUTCOMES.labels("fake", "done")._value.get()
    before_latency = _histogram_count("fake")
    assert await worker.run_until_idle() == 3
    assert metrics.DELIVERY_OUTCOMES.labels("fake", "done")._value.get() == before_done + 2
    assert _histogram_count("fake") == before_latency + 2
    client.server.app[metrics.CACHE].clear()  # skip the one-second scrape cache
    body = await _scrape(client)
    assert _value(body, "govcast_queue_depth", state="pending", channel="fake") == 0.0
    assert _value(body, "govcast_queue_oldest_pending_seconds") == 0.0


def _histogram_count(channel: str) -> float:
    for family in metrics.DELIVERY_LATENCY.collect():
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels.get("channel") == channel:
                return sample.value
    return 0.0


async def test_transient_and_permanent_failures_are_counted(
    db: Database, settings: Settings, staff_members: dict[str, StaffMember]
) -> None:
    config = core(targets=("website", "fake:main"))
    draft = await create_draft(
        db, config, staff_members["editor"], channels=["website", "fake:main"]
    )
    await approve_through(db, config, staff_members, draft.id)
    channel = fake()
    channel.script = [TransientError("busy", code=-1), PermanentError("rejected", code=45009)]
    worker = make_worker(db, config, [channel], tmp_path=Path(settings.data_dir))
    worker.channels = metrics.instrument_channels(worker.channels)
    retries = metrics.DELIVERY_OUTCOMES.labels("fake", "retry")._value.get()
    failed = metrics.DELIVERY_OUTCOMES.labels("fake", "failed")._value.get()
    import asyncio

    for _ in range(50):
        await worker.run_until_idle()
        if metrics.DELIVERY_OUTCOMES.labels("fake", "failed")._value.get() > failed:
            break
        await asyncio.sleep(0.02)
    assert metrics.DELIVERY_OUTCOMES.labels("fake", "retry")._value.get() == retries + 1
    assert metrics.DELIVERY_OUTCOMES.labels("fake", "failed")._value.get() == failed + 1


async def test_callback_requests_are_timed_without_path_labels(
    db: Database, settings: Settings, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(_app(db, settings))
    before = _value(await _scrape(client), "govcast_callback_seconds_count", status="2xx")
    before_4xx = _value(await _scrape(client), "govcast_callback_seconds_count", status="4xx")
    assert (await client.post("/wechat/main", data=b"<xml/>")).status == 200
    assert (await client.post("/wechat/broken", data=b"<xml/>")).status == 400
    # A hostile, oversized account name is timed like any other request and adds no series.
    assert (await client.get("/wechat/" + "x" * 5000)).status == 200
    body = await _scrape(client)
    assert _value(body, "govcast_callback_seconds_count", status="2xx") == before + 2
    assert _value(body, "govcast_callback_seconds_count", status="4xx") == before_4xx + 1
    assert "x" * 100 not in body
    # Other paths are not timed as callbacks.
    assert (await client.get("/nowhere")).status == 404
    assert _value(await _scrape(client), "govcast_callback_seconds_count", status="4xx") == (
        before_4xx + 1
    )


async def test_token_refresh_counter_is_exposed(
    db: Database, settings: Settings, aiohttp_client: Any
) -> None:
    metrics.TOKEN_REFRESHES.labels("wechat", "main").inc()
    client = await aiohttp_client(_app(db, settings))
    body = await _scrape(client)
    assert _value(body, "govcast_token_refreshes_total", platform="wechat", account="main") >= 1


async def test_an_unreachable_database_is_reported_not_raised(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'nothing.sqlite3'}")
    try:
        figures = await metrics.read_state(db)
    finally:
        await db.dispose()
    assert not figures.database_up
    body = metrics.render(figures).decode()
    assert _value(body, "govcast_database_up") == 0.0


def test_status_classes() -> None:
    for status, expected in [
        (200, "2xx"),
        (404, "4xx"),
        (599, "5xx"),
        (0, "other"),
        (999, "other"),
    ]:
        assert metrics._status_class(status) == expected
