"""access_token and stable_token: credentials, lifetimes, refresh grace, quotas."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from sandbox.core import BEIJING
from sandbox.models import SandboxCounter
from tests.sandbox.conftest import APPID, SECRET, Harness


async def _get_token(h: Harness, **params: str) -> dict[str, Any]:
    query = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, **params}
    resp = await h.client.get("/sandbox/wechat/cgi-bin/token", params=query)
    assert resp.status == 200
    return dict(await resp.json())


async def _stable(h: Harness, body: Any) -> dict[str, Any]:
    resp = await h.client.post("/sandbox/wechat/cgi-bin/stable_token", json=body)
    assert resp.status == 200
    return dict(await resp.json())


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"appid": "wxnobody"}, 40013),
        ({"appid": ""}, 41002),
        ({"secret": "wrong"}, 40125),
        ({"secret": ""}, 41004),
        ({"grant_type": "password"}, 40002),
        ({"appid": "x" * 5_000}, 40013),
    ],
)
async def test_token_credentials_errors(h: Harness, params: dict[str, str], errcode: int) -> None:
    data = await _get_token(h, **params)
    assert data["errcode"] == errcode
    assert "access_token" not in data


async def test_token_lifetime_and_expiry(h: Harness) -> None:
    data = await _get_token(h)
    assert data["expires_in"] == 7200
    token = data["access_token"]
    assert (await h.wx("menu/get", token=token, method="GET"))["errcode"] == 46003
    h.sandbox.clock.advance(7199)
    assert (await h.wx("user/get", token=token, method="GET"))["errcode"] == 0
    h.sandbox.clock.advance(1)
    assert (await h.wx("user/get", token=token, method="GET"))["errcode"] == 42001


async def test_refresh_keeps_old_token_five_minutes(h: Harness) -> None:
    old = (await _get_token(h))["access_token"]
    h.sandbox.clock.advance(100)
    new = (await _get_token(h))["access_token"]
    assert new != old
    h.sandbox.clock.advance(299)
    assert (await h.wx("user/get", token=old, method="GET"))["errcode"] == 0
    h.sandbox.clock.advance(1)
    assert (await h.wx("user/get", token=old, method="GET"))["errcode"] == 40001
    assert (await h.wx("user/get", token=new, method="GET"))["errcode"] == 0


@pytest.mark.parametrize(
    ("token", "errcode"),
    [("", 41001), ("not a token!", 40014), ("A" * 500, 40014), ("unknownTOKEN123", 40001)],
)
async def test_bad_tokens(h: Harness, token: str, errcode: int) -> None:
    resp = await h.client.get(
        "/sandbox/wechat/cgi-bin/user/get", params={"access_token": token} if token else {}
    )
    assert resp.status == 200
    assert (await resp.json())["errcode"] == errcode


async def test_token_daily_quota_and_reset(h: Harness) -> None:
    await _get_token(h)
    async with h.sandbox.db.transaction() as session:
        await session.execute(
            update(SandboxCounter).where(SandboxCounter.name == "token").values(count=2000)
        )
    assert (await _get_token(h))["errcode"] == 45009
    h.sandbox.clock.advance(86400)
    assert "access_token" in await _get_token(h)


async def test_stable_token_semantics(h: Harness) -> None:
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    first = await _stable(h, body)
    assert first["expires_in"] == 7200
    h.sandbox.clock.advance(1000)
    again = await _stable(h, body)
    assert again["access_token"] == first["access_token"]
    assert 6190 <= again["expires_in"] <= 6200
    # Isolated from /token: a new ordinary token does not touch the stable one.
    await _get_token(h)
    assert (await _stable(h, body))["access_token"] == first["access_token"]
    # Within five minutes of expiry a new one is issued; the old one lives 5 more minutes.
    h.sandbox.clock.advance(5950)
    renewed = await _stable(h, body)
    assert renewed["access_token"] != first["access_token"]
    assert (await h.wx("user/get", token=first["access_token"], method="GET"))["errcode"] == 0


async def test_stable_force_refresh_limits(h: Harness) -> None:
    body = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    first = await _stable(h, body)
    forced = await _stable(h, {**body, "force_refresh": True})
    assert forced["access_token"] != first["access_token"]
    assert (await _stable(h, {**body, "force_refresh": True}))["errcode"] == 45011
    h.sandbox.clock.advance(30)
    assert "access_token" in await _stable(h, {**body, "force_refresh": True})


async def test_stable_force_refresh_daily_quota_is_45009(h: Harness) -> None:
    body = {
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": SECRET,
        "force_refresh": True,
    }
    # Start just after midnight Beijing time so 21 refreshes 30 s apart share one quota day.
    now = h.sandbox.clock.now().astimezone(BEIJING)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    h.sandbox.clock.advance((midnight - now).total_seconds())
    tokens = set()
    for _ in range(20):
        data = await _stable(h, body)
        assert "access_token" in data, data
        tokens.add(data["access_token"])
        h.sandbox.clock.advance(30)
    assert len(tokens) == 20
    assert (await _stable(h, body))["errcode"] == 45009
    # An ordinary stable_token call still answers; the next day the quota is back.
    assert "access_token" in await _stable(h, {**body, "force_refresh": False})
    h.sandbox.clock.advance(86400)
    assert "access_token" in await _stable(h, body)


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [
        (b"", 44002),
        (b"{", 47001),
        (b"[1,2]", 47001),
        (b'{"grant_type":"client_credential","appid":1,"secret":2}', 47001),
        (b'{"grant_type":"client_credential","appid":"%s","secret":"x"}' % APPID.encode(), 40125),
        (
            b'{"grant_type":"client_credential","appid":"%s","secret":"%s","force_refresh":"yes"}'
            % (APPID.encode(), SECRET.encode()),
            47001,
        ),
        (b"\xff\xfe", 47001),
        (b"[" * 100_000, 47001),
        (b"x" * (3 * 1024 * 1024), 47001),
    ],
)
async def test_stable_token_hostile_bodies(h: Harness, raw: bytes, errcode: int) -> None:
    resp = await h.client.post("/sandbox/wechat/cgi-bin/stable_token", data=raw)
    assert resp.status == 200
    assert (await resp.json())["errcode"] == errcode
