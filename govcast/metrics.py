"""Prometheus metrics: ``/metrics``, the callback timer, delivery and token counters.

Two kinds of figures:

* **Event metrics** (counters and histograms) are recorded by the process where the event
  happens: callback latency in a web process, delivery latency and retries in a worker,
  token refreshes wherever a channel refreshes a token. They are module-level
  ``prometheus_client`` objects, as the library requires.
* **State metrics** (queue depth by state and channel, cases whose deadline is at risk)
  are read from the database at scrape time with cheap, index-backed queries, so every
  web process answers the same and nothing is double counted.

Several processes on one machine (``govcast web --workers N`` sharing a port, separate
``govcast worker`` processes): set ``PROMETHEUS_MULTIPROC_DIR`` to one empty directory
for all of them (prometheus_client's multiprocess mode). ``/metrics`` in any web process
then aggregates the event metrics of every govcast process on the machine. Without it,
each process reports only its own events (fine for the single-process ``govcast serve``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from publisher.db import Database
from publisher.models import Delivery, DeliveryState
from publisher.orm import utcnow
from publisher.outcomes import DeliveryContext, PermanentError, Receipt, TransientError
from publisher.snapshot import PublicationSnapshot

log = logging.getLogger("govcast.metrics")

# Seconds; the WeChat callback must answer within 5 s, so the buckets are dense below it.
_CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 10.0)
# Approval -> live: seconds for an immediate item, hours for a rate-limited or retried one.
_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600)
_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CALLBACK_SECONDS = Histogram(
    "govcast_callback_seconds",
    "Time to answer a WeChat callback request (/wechat/...), by HTTP status class",
    ["status"],
    buckets=_CALLBACK_BUCKETS,
)
DELIVERY_LATENCY = Histogram(
    "govcast_delivery_latency_seconds",
    "From a publication's approval (or its scheduled time) to live on a channel",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
DELIVERY_CALL_SECONDS = Histogram(
    "govcast_delivery_call_seconds",
    "Duration of one channel call made by a delivery worker",
    ["channel", "action"],
    buckets=_CALL_BUCKETS,
)
DELIVERY_OUTCOMES = Counter(
    "govcast_delivery_attempts",
    "Delivery attempts by outcome: done, retry (transient error), failed (permanent error)",
    ["channel", "outcome"],
)
TOKEN_REFRESHES = Counter(
    "govcast_token_refreshes",
    "Access-token refreshes, by platform and account; "
    "call TOKEN_REFRESHES.labels(platform, account).inc() on each refresh",
    ["platform", "account"],
)

# Open case states and the look-ahead that makes a deadline "at risk".
_OPEN_CASE_STATES = ("received", "accepted", "assigned")
_AT_RISK = timedelta(hours=24)
# Unfinished delivery states: counted through the claim index (state is its first column).
# Done and cancelled rows grow without bound and are deliberately not counted per scrape.
_DEPTH_STATES = ("pending", "sending", "confirming", "dead")
_SCRAPE_CACHE_SECONDS = 1.0
_SCRAPE_TIMEOUT_SECONDS = 3.0


def observe_callback(seconds: float, status: int) -> None:
    """Record one callback request (the middleware does this for every /wechat/ request)."""
    _CALLBACK_SERIES[_status_class(status)].observe(max(0.0, seconds))


def _status_class(status: int) -> str:
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "other"


# The labelled series, looked up once: ``labels()`` per request cost about 1 % of the
# callback's CPU (a lock and a dict lookup with a tuple key).
_CALLBACK_SERIES = {
    label: CALLBACK_SECONDS.labels(label) for label in ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
}


@web.middleware
async def callback_timer(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Time every request under /wechat/ (the label is the status class only: the path
    is attacker-controlled and must not create new series)."""
    if not request.path.startswith("/wechat/"):
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        observe_callback(time.perf_counter() - started, status)


# --- delivery instrumentation ------------------------------------------------------------


class InstrumentedChannel:
    """Wraps a channel adapter: times its calls, counts outcomes, observes latency."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name: str = inner.name

    def __getattr__(self, item: str) -> Any:
        return getattr(self._inner, item)

    def rate_limits_for(self, account: str) -> Any:
        """Delegate."""
        return self._inner.rate_limits_for(account)

    def render(self, publication: PublicationSnapshot, account: str) -> Any:
        """Delegate; remember when the publication became due, for the latency figure."""
        rendition = self._inner.render(publication, account)
        return _Rendered(rendition, publication.published_at.timestamp())

    async def publish(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Timed publish; on success the approval -> live latency is observed."""
        inner, due = _unwrap(rendition)
        receipt: Receipt = await self._timed("publish", self._inner.publish(inner, ctx))
        if due is not None and not receipt.pending:
            DELIVERY_LATENCY.labels(self.name).observe(max(0.0, time.time() - due))
        return receipt

    async def update(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Timed update."""
        inner, _due = _unwrap(rendition)
        result: Receipt = await self._timed("update", self._inner.update(inner, ctx))
        return result

    async def push(self, rendition: Any, ctx: DeliveryContext) -> Receipt:
        """Timed push."""
        inner, _due = _unwrap(rendition)
        result: Receipt = await self._timed("push", self._inner.push(inner, ctx))
        return result

    async def retract(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt:
        """Timed retract."""
        result: Receipt = await self._timed("retract", self._inner.retract(publication, ctx))
        return result

    async def find(self, publication: PublicationSnapshot, ctx: DeliveryContext) -> Receipt | None:
        """Timed reconciliation lookup."""
        result: Receipt | None = await self._timed("find", self._inner.find(publication, ctx))
        return result

    async def _timed(self, action: str, call: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        try:
            result = await call
        except TransientError:
            DELIVERY_OUTCOMES.labels(self.name, "retry").inc()
            raise
        except PermanentError:
            DELIVERY_OUTCOMES.labels(self.name, "failed").inc()
            raise
        finally:
            DELIVERY_CALL_SECONDS.labels(self.name, action).observe(time.perf_counter() - started)
        if action != "find":
            DELIVERY_OUTCOMES.labels(self.name, "done").inc()
        return result


@dataclass(frozen=True)
class _Rendered:
    rendition: Any
    due_at: float


def _unwrap(rendition: Any) -> tuple[Any, float | None]:
    if isinstance(rendition, _Rendered):
        return rendition.rendition, rendition.due_at
    return rendition, None


@dataclass
class InstrumentedChannels(Mapping[str, Any]):
    """A read-only view of a channel registry whose channels are instrumented."""

    inner: Mapping[str, Any]
    _wrapped: dict[str, InstrumentedChannel] = field(default_factory=dict)

    def __getitem__(self, name: str) -> InstrumentedChannel:
        if name not in self._wrapped:
            self._wrapped[name] = InstrumentedChannel(self.inner[name])
        return self._wrapped[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def instrument_channels(channels: Mapping[str, Any]) -> InstrumentedChannels:
    """Wrap a worker's channels so that calls, outcomes and latency are recorded."""
    return InstrumentedChannels(channels)


# --- scrape-time state from the database ---------------------------------------------------


@dataclass(frozen=True)
class StateFigures:
    """What the database says now."""

    depth: dict[tuple[str, str], int]
    oldest_due_seconds: float
    cases_at_risk: int | None
    cases_overdue: int | None
    database_up: bool


async def read_state(db: Database) -> StateFigures:
    """Queue depth, oldest due delivery and cases at risk, in a few indexed queries."""
    now = utcnow()
    try:
        async with db.sessions() as session:
            rows = await session.execute(
                select(Delivery.state, Delivery.channel, func.count())
                .where(Delivery.state.in_(_DEPTH_STATES))
                .group_by(Delivery.state, Delivery.channel)
            )
            depth = {(str(r[0]), str(r[1])): int(r[2]) for r in rows.all()}
            first = (
                await session.execute(
                    select(func.min(Delivery.not_before)).where(
                        Delivery.state == DeliveryState.PENDING.value,
                        Delivery.not_before <= now,
                    )
                )
            ).scalar()
    except Exception:  # the database is away: report it, never fail the scrape
        log.warning("metrics: database unavailable", exc_info=True)
        return StateFigures({}, 0.0, None, None, database_up=False)
    oldest = max(0.0, (now - _aware(first)).total_seconds()) if first is not None else 0.0
    at_risk, overdue = await _cases(db, now)
    return StateFigures(depth, oldest, at_risk, overdue, database_up=True)


async def _cases(db: Database, now: datetime) -> tuple[int | None, int | None]:
    # The cases tables belong to the bot package; a deployment without them reports none.
    try:
        from bot.cases.models import Case
    except ImportError:
        return None, None
    soon = now + _AT_RISK
    try:
        async with db.sessions() as session:
            row = (
                await session.execute(
                    select(
                        func.count().filter(Case.deadline_at >= now),
                        func.count().filter(Case.deadline_at < now),
                    ).where(Case.state.in_(_OPEN_CASE_STATES), Case.deadline_at < soon)
                )
            ).one()
    except Exception:
        log.warning("metrics: cases unavailable", exc_info=True)
        return None, None
    return int(row[0] or 0), int(row[1] or 0)


def _aware(value: datetime) -> datetime:
    # Min() over a column may come back naive on SQLite; stored values are UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _StateCollector(Collector):
    def __init__(self, figures: StateFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        f = self.figures
        up = GaugeMetricFamily("govcast_database_up", "1 if the database answered the scrape")
        up.add_metric([], 1.0 if f.database_up else 0.0)
        yield up
        depth = GaugeMetricFamily(
            "govcast_queue_depth",
            "Unfinished and dead-lettered deliveries, by state and channel",
            labels=["state", "channel"],
        )
        for (state, channel), count in sorted(f.depth.items()):
            depth.add_metric([state, channel], float(count))
        yield depth
        oldest = GaugeMetricFamily(
            "govcast_queue_oldest_pending_seconds",
            "How long the oldest due pending delivery has been waiting (0 if none is due)",
        )
        oldest.add_metric([], f.oldest_due_seconds)
        yield oldest
        if f.cases_at_risk is not None and f.cases_overdue is not None:
            risk = GaugeMetricFamily(
                "govcast_cases_deadline_at_risk",
                "Open citizen cases whose reply deadline falls within the next 24 hours",
            )
            risk.add_metric([], float(f.cases_at_risk))
            yield risk
            late = GaugeMetricFamily(
                "govcast_cases_overdue", "Open citizen cases past their reply deadline"
            )
            late.add_metric([], float(f.cases_overdue))
            yield late


def event_registry() -> CollectorRegistry:
    """The registry with the event metrics: every process's (multiprocess mode) or ours."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def render(figures: StateFigures) -> bytes:
    """The whole exposition: event metrics followed by the database's state."""
    state = CollectorRegistry(auto_describe=False)
    state.register(_StateCollector(figures))
    return generate_latest(event_registry()) + generate_latest(state)


CACHE = web.AppKey("metrics_cache", dict)


def setup(app: web.Application, db_key: web.AppKey[Database]) -> None:
    """Add ``GET /metrics`` and the /wechat/ timer to the application."""
    app[CACHE] = {}
    app.middlewares.append(callback_timer)

    async def metrics(request: web.Request) -> web.Response:
        cache: dict[str, Any] = request.app[CACHE]
        now = time.monotonic()
        # A scrape storm (several Prometheus servers, a curl loop) costs one query a second.
        if cache.get("at", -1e9) + _SCRAPE_CACHE_SECONDS < now:
            try:
                figures = await asyncio.wait_for(
                    read_state(request.app[db_key]), timeout=_SCRAPE_TIMEOUT_SECONDS
                )
            except TimeoutError:
                figures = StateFigures({}, 0.0, None, None, database_up=False)
            cache["figures"], cache["at"] = figures, now
        body = render(cache["figures"])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
