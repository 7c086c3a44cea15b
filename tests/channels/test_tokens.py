"""The shared token holder on real SQLite and PostgreSQL: one fetch per token lifetime,
single-flight refresh across database handles, bounded retries and a daily budget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels.base import ConfigurationError, TransientError
from channels.tokens import TokenHolder, TokenPolicy
from channels.wechat_api import WeChatAPI, fetch_stable_token
from govcast.settings import Secret
from publisher.db import Database
from tests.channels.helpers import Canned, json_answer

SECRET = "super-secret-app-secret-value"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Fetcher:
    """Counts fetches; every fetch hands out a new token."""

    def __init__(self, expires_in: float = 7200.0, delay: float = 0.05) -> None:
        self.count = 0
        self.forced: list[bool] = []
        self.expires_in = expires_in
        self.delay = delay

    async def __call__(self, force: bool) -> tuple[str, float]:
        self.count += 1
        self.forced.append(force)
        await asyncio.sleep(self.delay)
        return f"token-{self.count}", self.expires_in


def holders(
    url: str, fetch: Fetcher, n: int, clock: Callable[[], datetime] | None = None, **policy: Any
) -> tuple[list[Database], list[TokenHolder]]:
    dbs = [Database(url) for _ in range(n)]
    made = [
        TokenHolder(
            db,
            platform="wechat",
            app_id="wxtest",
            fetch=fetch,
            policy=TokenPolicy(**policy),
            **({"clock": clock} if clock else {}),
        )
        for db in dbs
    ]
    return dbs, made


async def _close(dbs: list[Database]) -> None:
    for db in dbs:
        await db.dispose()


async def test_many_processes_fetch_once_per_lifetime(database_url: str, db: Database) -> None:
    fetch = Fetcher(delay=0.2)
    dbs, hs = holders(database_url, fetch, 6)
    try:
        tokens = await asyncio.gather(*(h.token() for h in hs))
        assert set(tokens) == {"token-1"}
        assert fetch.count == 1
        # Fresh holders (new processes) read the shared row: still one fetch.
        dbs2, hs2 = holders(database_url, fetch, 3)
        assert set(await asyncio.gather(*(h.token() for h in hs2))) == {"token-1"}
        assert fetch.count == 1
        await _close(dbs2)
    finally:
        await _close(dbs)


async def test_token_error_refreshes_once_for_everyone(database_url: str, db: Database) -> None:
    fetch = Fetcher(delay=0.1)
    dbs, hs = holders(database_url, fetch, 5)
    try:
        first = await hs[0].token()
        # Every process sees the platform reject the same token at once.
        fresh = await asyncio.gather(*(h.refresh(first) for h in hs))
        assert set(fresh) == {"token-2"}
        assert fetch.count == 2
        assert fetch.forced == [False, True]  # the rejected token is forced out, once
    finally:
        await _close(dbs)


async def test_refresh_ahead_of_expiry_and_not_before(database_url: str, db: Database) -> None:
    clock = Clock()
    fetch = Fetcher(delay=0)
    dbs, hs = holders(database_url, fetch, 2, clock)
    try:
        assert await hs[0].token() == "token-1"
        clock.now += timedelta(seconds=7200 - 1000)
        assert await hs[1].token() == "token-1" and fetch.count == 1
        clock.now += timedelta(seconds=800)  # 200 s left: inside the refresh margin
        assert await hs[1].token() == "token-2" and fetch.count == 2
        assert await hs[0].token() == "token-2" and fetch.count == 2
    finally:
        await _close(dbs)


async def test_daily_budget_stops_a_refresh_loop(database_url: str, db: Database) -> None:
    clock = Clock()
    fetch = Fetcher(delay=0)
    dbs, hs = holders(database_url, fetch, 1, clock, daily_budget=3)
    holder = hs[0]
    try:
        token = await holder.token()
        for _ in range(2):
            token = await holder.refresh(token)
        assert fetch.count == 3
        for _ in range(5):  # a platform that keeps rejecting every token
            with pytest.raises(TransientError) as info:
                await holder.refresh(token)
            assert info.value.code == "token_budget"
            assert (info.value.retry_after or 0) > 0
        assert fetch.count == 3
        clock.now += timedelta(days=1)
        assert await holder.refresh(token) == "token-4"
    finally:
        await _close(dbs)


async def test_forced_refresh_respects_spacing(database_url: str, db: Database) -> None:
    clock = Clock()
    fetch = Fetcher(delay=0)
    dbs, hs = holders(database_url, fetch, 1, clock)
    try:
        token = await hs[0].token()
        token = await hs[0].refresh(token)
        token = await hs[0].refresh(token)
        assert fetch.forced == [False, True, False]  # second force within 30 s: not forced
        clock.now += timedelta(seconds=31)
        await hs[0].refresh(token)
        assert fetch.forced[-1] is True
    finally:
        await _close(dbs)


async def test_failed_fetch_releases_the_lease(database_url: str, db: Database) -> None:
    calls = 0

    async def failing(force: bool) -> tuple[str, float]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransientError("boom", code=-1)
        return "token-ok", 7200.0

    holder = TokenHolder(db, platform="wechat", app_id="wxfail", fetch=failing)
    with pytest.raises(TransientError):
        await holder.token()
    other = TokenHolder(db, platform="wechat", app_id="wxfail", fetch=failing)
    assert await asyncio.wait_for(other.token(), 5) == "token-ok"


# --- over HTTP (canned platform answers) --------------------------------------------------


async def _server(aiohttp_server: Any, canned: Canned) -> str:
    server = await aiohttp_server(canned.app())
    return str(server.make_url("/cgi-bin"))


def _stable_token(counter: list[int]) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        assert body["grant_type"] == "client_credential" and body["secret"] == SECRET
        counter.append(1)
        return web.json_response({"access_token": f"AT-{len(counter)}", "expires_in": 7200})

    return handler


async def test_api_token_error_means_one_refresh_and_one_retry(
    aiohttp_server: Any, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fetched: list[int] = []
    canned = Canned(
        routes={
            "cgi-bin/stable_token": _stable_token(fetched),
            "cgi-bin/draft/add": json_answer({"errcode": 40001, "errmsg": "invalid credential"}),
            "cgi-bin/menu/get": json_answer({"menu": {"button": []}}),
        }
    )
    base = await _server(aiohttp_server, canned)
    async with aiohttp.ClientSession() as http:

        async def fetch(force: bool) -> tuple[str, float]:
            return await fetch_stable_token(http, base, "wxapp", Secret(SECRET), force)

        holder = TokenHolder(db, platform="wechat", app_id="wxapp", fetch=fetch)
        api = WeChatAPI(http, base, holder, account="main")
        with pytest.raises(TransientError) as info:
            await api.draft_add([{"title": "x"}])
        assert canned.calls["cgi-bin/draft/add"] == 2
        assert len(fetched) == 2
        assert await api.get_menu() == {"menu": {"button": []}}
        assert len(fetched) == 2
    ours = [r for r in caplog.records if r.name.startswith("govcast")]
    assert ours  # the refresh was logged
    text = info.value.message + "".join(r.getMessage() + str(r.__dict__) for r in ours)
    assert SECRET not in text and "AT-1" not in text and "AT-2" not in text


@pytest.mark.parametrize(
    ("answer", "status", "kind"),
    [
        ({"errcode": 40125, "errmsg": "invalid appsecret"}, 200, ConfigurationError),
        ({"errcode": 40013, "errmsg": "invalid appid"}, 200, ConfigurationError),
        ({"errcode": -1, "errmsg": "system busy"}, 200, TransientError),
        ({"errcode": 45009, "errmsg": "reach max api daily quota limit"}, 200, TransientError),
        ("<html>bad gateway</html>", 502, TransientError),
        ("not json", 200, TransientError),
        ({"access_token": 12, "expires_in": 7200}, 200, TransientError),
        ({"access_token": "x", "expires_in": "soon"}, 200, TransientError),
        (["a", "list"], 200, TransientError),
        ({"errcode": "NaN"}, 200, TransientError),
    ],
)
async def test_stable_token_answers(
    aiohttp_server: Any, answer: Any, status: int, kind: type
) -> None:
    async def handler(_request: web.Request) -> web.StreamResponse:
        if isinstance(answer, str):
            return web.Response(text=answer, status=status)
        return web.json_response(answer, status=status)

    base = await _server(aiohttp_server, Canned(routes={"cgi-bin/stable_token": handler}))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(kind) as info:
            await fetch_stable_token(http, base, "wxapp", Secret(SECRET), False)
    assert SECRET not in info.value.message and SECRET not in repr(info.value)


async def test_stable_token_timeout_is_transient(aiohttp_server: Any) -> None:
    async def slow(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response({})

    base = await _server(aiohttp_server, Canned(routes={"cgi-bin/stable_token": slow}))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(TransientError):
            await fetch_stable_token(http, base, "wxapp", Secret(SECRET), False, wait_seconds=0.3)
