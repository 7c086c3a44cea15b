"""Fault injection: strict validation, seeded reproducibility, latency and hangs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandbox.faults import Faults, FaultSpecError, parse_spec
from tests.sandbox.conftest import Harness

LINK = "http://127.0.0.1:8080/d/1"


@pytest.mark.parametrize(
    "raw",
    [
        [],
        "x",
        None,
        {"platform": "qq"},
        {"error_rate": 1.5},
        {"error_rate": -0.1},
        {"error_rate": "0.5"},
        {"error_rate": True},
        {"error_rate": 0.7, "timeout_rate": 0.5},
        {"errcodes": "40001"},
        {"errcodes": [1.5]},
        {"errcodes": [True]},
        {"errcodes": [0]},
        {"errcodes": list(range(1, 100))},
        {"latency_ms": -1},
        {"latency_ms": 10**9},
        {"latency_ms": 1.5},
        {"seed": "abc"},
        {"seed": 2**70},
        {"surprise": 1},
        {"timeout_phase": "during"},
        {"publish_failure_rate": 2},
        {"publish_failure_statuses": [5]},
        {"publish_failure_statuses": [0]},
        {"publish_failure_statuses": []},
        {"publish_failure_statuses": 3},
        {"publish_failure_statuses": [True]},
        {"submit_error_rate": 1.5},
        {"submit_errcodes": [-1]},
        {"submit_errcodes": "53503"},
        {"submit_errcodes": []},
    ],
)
def test_parse_rejects(raw: Any) -> None:
    with pytest.raises(FaultSpecError):
        parse_spec(raw)


def test_parse_defaults_all_platforms() -> None:
    platforms, spec = parse_spec({"error_rate": 0.5, "errcodes": [-1, 45009], "seed": 7})
    assert platforms == ("wechat", "weibo")
    assert spec.errcodes == (-1, 45009) and spec.latency_ms == 0


def test_seeded_sequences_repeat() -> None:
    def run() -> list[Any]:
        faults = Faults()
        faults.set(
            *parse_spec(
                {
                    "platform": "wechat",
                    "error_rate": 0.5,
                    "errcodes": [-1, 45009],
                    "timeout_rate": 0.1,
                    "seed": 42,
                }
            )
        )
        return [faults.decide("wechat") for _ in range(200)]

    first, second = run(), run()
    assert first == second
    codes = {d.errcode for d in first}
    assert {-1, 45009, None} <= codes and any(d.hang for d in first)
    assert Faults().decide("weibo").errcode is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b"[]", 400),
        (b'{"platform":"qq"}', 400),
        (b"\xff", 400),
        (b'{"error_rate":' + b"1" * 70_000 + b"}", 413),
    ],
)
async def test_endpoint_rejects(h: Harness, body: bytes, status: int) -> None:
    resp = await h.client.post("/sandbox/_faults", data=body)
    assert resp.status == status
    assert (await h.client.get("/sandbox/_faults")).status == 200
    assert (await (await h.client.get("/sandbox/_faults")).json())["faults"] == {}


async def test_errors_follow_the_seed_and_clear(h: Harness) -> None:
    token = await h.token()
    spec = {"platform": "wechat", "error_rate": 0.5, "errcodes": [-1, 45009], "seed": 3}

    async def sequence() -> list[int]:
        resp = await h.client.post("/sandbox/_faults", json=spec)
        assert resp.status == 200
        out = []
        for _ in range(12):
            resp = await h.client.get(
                "/sandbox/wechat/cgi-bin/user/get", params={"access_token": token}
            )
            out.append((await resp.json()).get("errcode", 0))
        return out

    first = await sequence()
    assert first == await sequence()
    assert set(first) == {0, -1, 45009}
    # Weibo is untouched by a WeChat-only fault.
    status, _ = await h.wb("GET", "statuses/user_timeline.json")
    assert status == 200
    assert (await h.client.delete("/sandbox/_faults")).status == 200
    for _ in range(5):
        resp = await h.client.get(
            "/sandbox/wechat/cgi-bin/user/get", params={"access_token": token}
        )
        assert (await resp.json())["errcode"] == 0


async def test_weibo_errors_in_weibo_shape(h: Harness) -> None:
    await h.client.post(
        "/sandbox/_faults", json={"platform": "weibo", "error_rate": 1.0, "errcodes": [10022]}
    )
    status, data = await h.wb("GET", "statuses/user_timeline.json")
    assert status == 403 and data["error_code"] == 10022 and data["request"]


async def test_timeout_hangs_until_cleared(h: Harness) -> None:
    await h.client.post("/sandbox/_faults", json={"platform": "weibo", "timeout_rate": 1.0})
    call = asyncio.create_task(h.wb("POST", "statuses/share.json", status=f"挂起 {LINK}"))
    await asyncio.sleep(0.3)
    assert not call.done()
    await h.client.delete("/sandbox/_faults")
    status, _ = await asyncio.wait_for(call, 5)
    assert status == 400
    # "before": nothing was posted.
    _, timeline = await h.wb("GET", "statuses/user_timeline.json")
    assert timeline["total_number"] == 0


async def test_timeout_after_effect_posts_then_hangs(h: Harness) -> None:
    await h.client.post(
        "/sandbox/_faults",
        json={"platform": "weibo", "timeout_rate": 1.0, "timeout_phase": "after"},
    )
    call = asyncio.create_task(h.wb("POST", "statuses/share.json", status=f"已发 {LINK}"))
    await asyncio.sleep(0.3)
    assert not call.done()
    await h.client.delete("/sandbox/_faults")
    await asyncio.wait_for(call, 5)
    _, timeline = await h.wb("GET", "statuses/user_timeline.json")
    assert timeline["total_number"] == 1


async def test_latency_is_applied(h: Harness) -> None:
    await h.client.post("/sandbox/_faults", json={"platform": "wechat", "latency_ms": 400})
    token_call = asyncio.create_task(h.token())
    await asyncio.sleep(0.2)
    assert not token_call.done()
    assert await asyncio.wait_for(token_call, 5)


def test_parse_publish_knobs() -> None:
    _, spec = parse_spec(
        {
            "publish_failure_rate": 0.5,
            "publish_failure_statuses": [2, 6],
            "submit_error_rate": 0.25,
            "submit_errcodes": [53505],
        }
    )
    assert spec.publish_failure_statuses == (2, 6) and spec.submit_errcodes == (53505,)
    _, plain = parse_spec({})
    assert plain.publish_failure_statuses == (3,)
    assert plain.submit_errcodes == (53503, 53504, 53505) and plain.submit_error_rate == 0.0


def test_publish_outcomes_follow_the_seed() -> None:
    def run() -> list[int]:
        faults = Faults()
        faults.set(
            *parse_spec(
                {
                    "platform": "wechat",
                    "publish_failure_rate": 0.5,
                    "publish_failure_statuses": [2, 3, 4, 6],
                    "seed": 5,
                }
            )
        )
        return [faults.publish_outcome() for _ in range(100)]

    first = run()
    assert first == run() and set(first) == {0, 2, 3, 4, 6}
    assert Faults().publish_outcome() == 0 and Faults().submit_error() is None


async def test_resetting_faults_keeps_hanging_calls_releasable() -> None:
    faults = Faults()
    faults.set(*parse_spec({"timeout_rate": 1.0}))
    hanging = asyncio.create_task(faults.hang())
    await asyncio.sleep(0.05)
    # A second POST while a call hangs: the call must still be released by the DELETE.
    faults.set(*parse_spec({"timeout_rate": 1.0, "seed": 2}))
    later = asyncio.create_task(faults.hang())
    await asyncio.sleep(0.05)
    assert not hanging.done() and not later.done()
    faults.clear()
    await asyncio.wait_for(asyncio.gather(hanging, later), 1)
    # After a clear, new faults hang again (the spent event is not reused).
    faults.set(*parse_spec({"timeout_rate": 1.0}))
    again = asyncio.create_task(faults.hang())
    await asyncio.sleep(0.05)
    assert not again.done()
    faults.clear()
    await asyncio.wait_for(again, 1)


async def test_reposted_faults_do_not_orphan_hanging_calls(h: Harness) -> None:
    token = await h.token()
    await h.client.post("/sandbox/_faults", json={"platform": "wechat", "timeout_rate": 1.0})
    call = asyncio.create_task(h.wx("user/get", token=token, method="GET"))
    await asyncio.sleep(0.3)
    assert not call.done()
    resp = await h.client.post(
        "/sandbox/_faults", json={"platform": "wechat", "latency_ms": 10, "seed": 9}
    )
    assert resp.status == 200
    await asyncio.sleep(0.2)
    assert not call.done()
    await h.client.delete("/sandbox/_faults")
    data = await asyncio.wait_for(call, 5)
    assert data["errcode"] == -1
