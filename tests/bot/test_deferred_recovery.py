"""A push answered ``success`` past the budget survives its process: if that process dies
before the late reply is recorded, a tick elsewhere handles the push again and the
citizen gets exactly one customer-service reply (real PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from bot import wire
from bot.dedup import ORPHAN_AGE
from bot.models import DeferredPush, DeferredReply, InboundMessageRecord
from bot.router import Context, InboundMessage, Router, TextReply
from bot.service import BotService, build_dispatcher
from publisher.db import Database
from tests.conftest import make_settings


class SentAPI:
    """A WeChat API client that records customer-service texts."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send_custom_text(self, openid: str, text: str) -> dict[str, Any]:
        self.sent.append((openid, text))
        return {"errcode": 0}


def _router(calls: list[str], delay: float, answer: bool = True) -> Router:
    router = Router(name="test-slow")

    @router.message()
    async def handle(ctx: Context) -> TextReply | None:
        calls.append(ctx.message.content)
        await asyncio.sleep(delay)
        return TextReply(f"答复：{ctx.message.content}") if answer else None

    return router


def _service(
    tmp_path: Path,
    database_url: str,
    db: Database,
    router: Router,
    api: SentAPI,
    *,
    clock_offset: float = 0.0,
) -> BotService:
    settings = make_settings(tmp_path, database_url)
    service = BotService(
        settings, db, api_for=lambda account: api, clock=lambda: time.time() + clock_offset
    )
    service.dispatcher = build_dispatcher(settings, service.rules, [router])
    return service


def _message(msg_id: int, text: str = "慢慢来") -> InboundMessage:
    return wire.to_message(
        "main",
        {
            "ToUserName": "gh_test",
            "FromUserName": "o-citizen",
            "CreateTime": str(int(time.time())),
            "MsgType": "text",
            "Content": text,
            "MsgId": str(msg_id),
        },
    )


async def _inbound(db: Database, key: str) -> InboundMessageRecord:
    async with db.sessions() as session:
        row = await session.scalar(
            select(InboundMessageRecord).where(InboundMessageRecord.dedup_key == key)
        )
    assert row is not None
    return row


async def _kept(db: Database, key: str) -> DeferredPush | None:
    async with db.sessions() as session:
        return await session.scalar(select(DeferredPush).where(DeferredPush.dedup_key == key))


async def _deferred_rows(db: Database) -> list[DeferredReply]:
    async with db.sessions() as session:
        return list((await session.scalars(select(DeferredReply))).all())


async def _defer_then_die(service: BotService, msg: InboundMessage, db: Database) -> None:
    """Handle ``msg`` past the budget, then end as a SIGKILL would: no late reply."""
    deadline = asyncio.get_running_loop().time() + 0.1
    assert await service.handle(msg, deadline) == "success"
    row = await _inbound(db, msg.dedup_key)
    kept = await _kept(db, msg.dedup_key)
    assert row.state == "deferred" and row.owner == service.store.owner
    assert kept is not None and kept.owner == service.store.owner and "慢慢来" in kept.message
    for task in list(service.background):
        task.cancel()
    await asyncio.sleep(0)
    if service.store.liveness is not None:
        await service.store.liveness.close()  # the server drops a dead process's lock
    else:
        await _defer_owner_dead(db, msg.dedup_key)


async def test_a_deferred_push_of_a_dead_process_is_handled_again_and_answered_once(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    dying_calls: list[str] = []
    dying = _service(tmp_path, database_url, db, _router(dying_calls, 30.0), SentAPI())
    api = SentAPI()
    calls: list[str] = []
    later = _service(
        tmp_path, database_url, db, _router(calls, 0.0), api, clock_offset=ORPHAN_AGE + 1
    )
    other = _service(
        tmp_path, database_url, db, _router(calls, 0.0), api, clock_offset=ORPHAN_AGE + 1
    )
    try:
        msg = _message(7001)
        await _defer_then_die(dying, msg, db)
        assert dying_calls == ["慢慢来"]

        assert await later.recover() == 1
        assert calls == ["慢慢来"]
        assert api.sent == [("o-citizen", "答复：慢慢来")]
        row = await _inbound(db, msg.dedup_key)
        assert row.state == "late_done" and row.reply == "success"
        assert await _kept(db, msg.dedup_key) is None
        [late] = await _deferred_rows(db)
        assert late.state == "sent" and late.dedup_key == msg.dedup_key
        # Settled: no other process, and no later tick, handles it again.
        assert await other.recover() == 0 and await later.recover() == 0
        assert calls == ["慢慢来"] and len(api.sent) == 1
    finally:
        for service in (dying, later, other):
            await service.close()


async def test_a_living_owner_keeps_its_deferred_push_and_a_young_one_is_left_alone(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    api = SentAPI()
    owner_calls: list[str] = []
    owner = _service(tmp_path, database_url, db, _router(owner_calls, 1.0), api)
    calls: list[str] = []
    aged = _service(
        tmp_path, database_url, db, _router(calls, 0.0), api, clock_offset=ORPHAN_AGE + 1
    )
    young = _service(tmp_path, database_url, db, _router(calls, 0.0), api)
    if owner.store.liveness is None:
        # SQLite: every service of this test shares the test's pid; pid 1 always runs.
        owner.store.owner = f"{socket.gethostname()[:40]}:1"
    try:
        msg = _message(7002)
        deadline = asyncio.get_running_loop().time() + 0.1
        assert await owner.handle(msg, deadline) == "success"
        # The owner is alive (its lock held, its pid running): nobody takes the push.
        assert await aged.recover() == 0
        for _ in range(200):  # the owner's late reply: recorded and sent by the owner
            if api.sent:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        assert owner_calls == ["慢慢来"] and api.sent == [("o-citizen", "答复：慢慢来")]
        row = await _inbound(db, msg.dedup_key)
        assert row.state == "late_done" and await _kept(db, msg.dedup_key) is None
        assert await aged.recover() == 0 and calls == []

        # A dead owner's push is still left alone until it is ORPHAN_AGE seconds old.
        dying = _service(tmp_path, database_url, db, _router([], 30.0), SentAPI())
        try:
            await _defer_then_die(dying, _message(7003), db)
        finally:
            await dying.close()
        assert await young.recover() == 0 and calls == []
        assert await aged.recover() == 1 and calls == ["慢慢来"]
    finally:
        for service in (owner, aged, young):
            await service.close()


async def test_a_late_handler_with_nothing_to_say_settles_its_push(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    api = SentAPI()
    calls: list[str] = []
    owner = _service(tmp_path, database_url, db, _router(calls, 0.3, answer=False), api)
    aged = _service(tmp_path, database_url, db, _router([], 0.0), api, clock_offset=99)
    try:
        msg = _message(7004)
        assert await owner.handle(msg, asyncio.get_running_loop().time() + 0.05) == "success"
        for _ in range(200):
            if (await _inbound(db, msg.dedup_key)).state == "late_done":
                break
            await asyncio.sleep(0.05)
        assert (await _inbound(db, msg.dedup_key)).state == "late_done"
        assert await _kept(db, msg.dedup_key) is None
        assert await _deferred_rows(db) == [] and api.sent == []
        await owner.close()
        if owner.store.liveness is not None:
            assert not owner.store.liveness.held
        assert await aged.recover() == 0
    finally:
        await owner.close()
        await aged.close()


async def test_a_damaged_stored_message_is_settled_without_a_reply(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    dying = _service(tmp_path, database_url, db, _router([], 30.0), SentAPI())
    api = SentAPI()
    calls: list[str] = []
    aged = _service(tmp_path, database_url, db, _router(calls, 0.0), api, clock_offset=99)
    try:
        msg = _message(7005)
        await _defer_then_die(dying, msg, db)
        for damaged in ('{"MsgType": "text"', '{"MsgType": "text"}', "[]"):
            # Kept by a process that died, damaged since (a bad restore, a hand edit).
            async with db.transaction() as session:
                await session.execute(
                    delete(DeferredPush).where(DeferredPush.dedup_key == msg.dedup_key)
                )
                session.add(
                    DeferredPush(
                        account="main",
                        dedup_key=msg.dedup_key,
                        owner=dying.store.owner,
                        message=damaged,
                        received_ts=int(time.time()),
                    )
                )
            if dying.store.liveness is None:
                await _defer_owner_dead(db, msg.dedup_key)
            assert await aged.recover() == 1
            row = await _inbound(db, msg.dedup_key)
            assert row.state == "late_done" and await _kept(db, msg.dedup_key) is None
        assert calls == [] and api.sent == [] and await _deferred_rows(db) == []
    finally:
        await dying.close()
        await aged.close()


async def _defer_owner_dead(db: Database, key: str) -> None:
    """SQLite tells life by host:pid: make the push's owner a process that has ended."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    async with db.transaction() as session:
        await session.execute(
            update(DeferredPush)
            .where(DeferredPush.dedup_key == key)
            .values(owner=f"{socket.gethostname()[:40]}:{ended.pid}")
        )


async def test_a_late_reply_ready_while_the_push_is_being_marked_deferred_settles_it(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    # The handler finishes while the "deferred" mark is still on its way to the database:
    # the late reply must settle the push after the mark, or the push would stay deferred
    # and be handled a second time once this process ends.
    api = SentAPI()
    calls: list[str] = []
    owner = _service(tmp_path, database_url, db, _router(calls, 0.1), api)
    marking = owner.store.defer

    async def slow_mark(account: str, dedup_key: str, message: str, received_ts: int) -> None:
        await asyncio.sleep(0.3)
        await marking(account, dedup_key, message, received_ts)

    owner.store.defer = slow_mark  # type: ignore[method-assign]
    try:
        msg = _message(7006)
        assert await owner.handle(msg, asyncio.get_running_loop().time() + 0.02) == "success"
        for _ in range(200):
            if api.sent and (await _inbound(db, msg.dedup_key)).state == "late_done":
                break
            await asyncio.sleep(0.05)
        row = await _inbound(db, msg.dedup_key)
        assert row.state == "late_done" and await _kept(db, msg.dedup_key) is None
        assert api.sent == [("o-citizen", "答复：慢慢来")] and calls == ["慢慢来"]
    finally:
        await owner.close()


async def test_a_late_reply_is_recorded_even_if_the_database_refuses_it_at_first(
    tmp_path: Path, database_url: str, db: Database, monkeypatch: Any
) -> None:
    from bot import deferred

    api = SentAPI()
    owner = _service(tmp_path, database_url, db, _router([], 0.1), api)
    recording = deferred.record
    refusals = [ConnectionError("pool exhausted"), ConnectionError("pool exhausted")]

    async def busy_then_fine(*args: Any, **kwargs: Any) -> int | None:
        if refusals:
            raise refusals.pop()
        return await recording(*args, **kwargs)

    monkeypatch.setattr(deferred, "record", busy_then_fine)
    try:
        msg = _message(7007)
        assert await owner.handle(msg, asyncio.get_running_loop().time() + 0.02) == "success"
        for _ in range(300):
            if api.sent:
                break
            await asyncio.sleep(0.05)
        assert refusals == [] and api.sent == [("o-citizen", "答复：慢慢来")]
        assert (await _inbound(db, msg.dedup_key)).state == "late_done"
    finally:
        await owner.close()


async def test_pushes_deferred_together_are_kept_in_one_batch(
    tmp_path: Path, database_url: str, db: Database
) -> None:
    # Under overload most pushes overrun the budget at once: their "deferred" marks must
    # not each take a pooled connection (that starved the handlers in the chaos bench).
    api = SentAPI()
    owner = _service(tmp_path, database_url, db, _router([], 0.5), api)
    try:
        deadline = asyncio.get_running_loop().time() + 0.05
        messages = [_message(7100 + i, f"慢慢来{i}") for i in range(30)]
        replies = await asyncio.gather(*(owner.handle(m, deadline) for m in messages))
        assert replies == ["success"] * 30
        async with db.sessions() as session:
            kept = (await session.scalars(select(DeferredPush.dedup_key))).all()
        assert sorted(kept) == sorted(m.dedup_key for m in messages)
        lane = owner.store._defer_lane
        if db.is_postgresql:
            # Thirty marks: one or two statements on the kept connection, not thirty.
            assert lane is not None and 1 <= lane.statements <= 3
        for _ in range(300):
            if len(api.sent) == 30:
                break
            await asyncio.sleep(0.05)
        assert len(api.sent) == 30
    finally:
        await owner.close()
