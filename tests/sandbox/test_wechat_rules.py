"""The WeChat stand-in's rules the audit found loose: the customer-service windows, the
draft box after publishing, per-minute and daily quotas, submit refusals, failure statuses,
template and upload limits."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from sandbox.core import UNAVAILABLE
from tests.sandbox.conftest import Harness, MakeHarness, multipart, png_bytes
from tests.sandbox.test_wechat_api import _article, _mass, _thumb

FOLLOWER = 4
HOUR = 3600

# Steps: ("in", "text" or an event name), ("wait", seconds), ("send", expected errcode).
Step = tuple[str, Any]
WINDOW_CASES: dict[str, list[Step]] = {
    "no message: no window": [("send", 45015)],
    "a message opens 48 h for 5": [("in", "text")] + [("send", 0)] * 5 + [("send", 45047)],
    # The sandbox clock also runs in real time: "just inside" leaves a few seconds' margin.
    "just inside 48 h the window is open": [("in", "text"), ("wait", 48 * HOUR - 5), ("send", 0)],
    "48 h and a second later it is shut": [
        ("in", "text"),
        ("wait", 48 * HOUR + 1),
        ("send", 45015),
    ],
    "a click after a message keeps the 48 h window": [
        ("in", "text"),
        ("wait", HOUR),
        ("in", "CLICK"),
        ("wait", 61),
        ("send", 0),
    ],
    "a click adds 3 sends to a used-up message window": [
        ("in", "text"),
        *[("send", 0)] * 5,
        ("send", 45047),
        ("in", "CLICK"),
        *[("send", 0)] * 3,
        ("send", 45047),
    ],
    "a click opens 1 min for 3": [("in", "CLICK")] + [("send", 0)] * 3 + [("send", 45047)],
    "an expired click window is out of time, not out of count": [
        ("in", "CLICK"),
        ("wait", 61),
        ("send", 45015),
    ],
    "a follow opens the short window": [("in", "subscribe"), ("send", 0)],
    "a scan opens the short window": [("in", "SCAN"), ("wait", 55), ("send", 0)],
    "a menu link (VIEW) opens none": [("in", "VIEW"), ("send", 45015)],
    "an unfollow opens none": [("in", "unsubscribe"), ("send", 45015)],
    "an unfollow shuts an open window": [("in", "text"), ("in", "unsubscribe"), ("send", 45015)],
    "a follow again opens only the short window": [
        ("in", "text"),
        ("in", "unsubscribe"),
        ("in", "subscribe"),
        *[("send", 0)] * 3,
        ("send", 45047),
    ],
    "a new message starts a new count": [
        ("in", "text"),
        *[("send", 0)] * 5,
        ("send", 45047),
        ("wait", HOUR),
        ("in", "text"),
        ("send", 0),
    ],
}


@pytest.mark.parametrize("steps", list(WINDOW_CASES.values()), ids=list(WINDOW_CASES))
async def test_custom_send_windows(h: Harness, steps: list[Step]) -> None:
    openid = h.sandbox.followers("main")[FOLLOWER]
    message = {"touser": openid, "msgtype": "text", "text": {"content": "答复"}}
    for number, (action, value) in enumerate(steps):
        if action == "wait":
            h.sandbox.clock.advance(value)
        elif action == "in":
            body: dict[str, Any] = {"follower": FOLLOWER}
            if value == "text":
                body["content"] = f"第{number}条留言"
            else:
                body.update(msgtype="event", event=value, event_key="k" if value == "CLICK" else "")
            resp = await h.client.post("/sandbox/wechat/_citizen/send", json=body)
            assert resp.status == 200, await resp.text()
        else:
            # A fresh token each time: waits can outlast a token's two hours.
            data = await h.wx("message/custom/send", message)
            assert data["errcode"] == value, (number, data)


async def _wait_publish(h: Harness, token: str, publish_id: str) -> dict[str, Any]:
    for _ in range(100):
        got = await h.wx("freepublish/get", {"publish_id": publish_id}, token=token)
        if got["publish_status"] != 1:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("the publish job never settled")


async def test_published_draft_leaves_the_draft_box(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"sandbox.publish_delay_seconds": 60.0})
    token = await h.token()
    thumb = await _thumb(h, token)
    kept = (await h.wx("draft/add", {"articles": [_article(thumb, title="留")]}, token=token))[
        "media_id"
    ]
    media = (await h.wx("draft/add", {"articles": [_article(thumb, title="发")]}, token=token))[
        "media_id"
    ]
    sub = await h.wx("freepublish/submit", {"media_id": media}, token=token)
    assert sub["errcode"] == 0
    # While the job runs, the draft is still in the box.
    assert (await h.wx("draft/get", {"media_id": media}, token=token))["errcode"] == 0
    h.sandbox.clock.advance(60)
    done = await h.wx("freepublish/get", {"publish_id": sub["publish_id"]}, token=token)
    assert done["publish_status"] == 0
    assert (await h.wx("draft/get", {"media_id": media}, token=token))["errcode"] == 40007
    listed = await h.wx("draft/batchget", {"offset": 0, "count": 20}, token=token)
    assert [item["media_id"] for item in listed["item"]] == [kept]
    assert listed["total_count"] == 1
    assert (await h.wx("draft/count", token=token, method="GET"))["total_count"] == 1
    again = await h.wx("freepublish/submit", {"media_id": media}, token=token)
    assert again["errcode"] == 40007
    # The published article itself is untouched.
    art = await h.wx("freepublish/getarticle", {"article_id": done["article_id"]}, token=token)
    assert art["news_item"][0]["title"] == "发"


async def test_failed_publish_keeps_its_draft(h: Harness) -> None:
    await h.client.post("/sandbox/_faults", json={"platform": "wechat", "publish_failure_rate": 1})
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    sub = await h.wx("freepublish/submit", {"media_id": media}, token=token)
    assert (await _wait_publish(h, token, sub["publish_id"]))["publish_status"] == 3
    assert (await h.wx("draft/get", {"media_id": media}, token=token))["errcode"] == 0


async def test_mass_send_per_minute_quota(h: Harness) -> None:
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    codes = [
        (await h.wx("message/mass/sendall", _mass(media), token=token))["errcode"]
        for _ in range(60)
    ]
    # Refused calls count too: 4 sends a month for a service account, then 45028.
    assert codes == [0] * 4 + [45028] * 56
    assert (await h.wx("message/mass/sendall", _mass(media), token=token))["errcode"] == 45011
    h.sandbox.clock.advance(60)
    assert (await h.wx("message/mass/sendall", _mass(media), token=token))["errcode"] == 45028


@pytest.mark.parametrize("errcode", [53503, 53504, 53505])
async def test_submit_refusals_injected(h: Harness, errcode: int) -> None:
    spec = {"platform": "wechat", "submit_error_rate": 1.0, "submit_errcodes": [errcode]}
    assert (await h.client.post("/sandbox/_faults", json=spec)).status == 200
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    refused = await h.wx("freepublish/submit", {"media_id": media}, token=token)
    assert refused["errcode"] == errcode and "publish_id" not in refused
    # A missing draft is still 40007: the refusal is about a draft that exists.
    assert (await h.wx("freepublish/submit", {"media_id": "nosuch"}, token=token))[
        "errcode"
    ] == 40007
    await h.client.delete("/sandbox/_faults")
    sub = await h.wx("freepublish/submit", {"media_id": media}, token=token)
    assert sub["errcode"] == 0
    assert (await _wait_publish(h, token, sub["publish_id"]))["publish_status"] == 0


async def test_submit_refusals_follow_the_seed(make_harness: MakeHarness) -> None:
    # Jobs never settle here, so the draft stays in the box for every submit.
    h = await make_harness(**{"sandbox.publish_delay_seconds": 3600.0})
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    spec = {"platform": "wechat", "submit_error_rate": 0.5, "seed": 11}

    async def run() -> list[int]:
        await h.client.post("/sandbox/_faults", json=spec)
        out = []
        for _ in range(16):
            data = await h.wx("freepublish/submit", {"media_id": media}, token=token)
            out.append(data["errcode"])
        return out

    first = await run()
    assert first == await run()
    assert set(first) == {0, 53503, 53504, 53505}


@pytest.mark.parametrize("status", [2, 4, 6])
async def test_publish_failure_statuses_and_event(make_harness: MakeHarness, status: int) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    spec = {"platform": "wechat", "publish_failure_rate": 1.0, "publish_failure_statuses": [status]}
    assert (await h.client.post("/sandbox/_faults", json=spec)).status == 200
    token = await h.token()
    thumb = await _thumb(h, token)
    articles = [_article(thumb, title="一"), _article(thumb, title="二")]
    media = (await h.wx("draft/add", {"articles": articles}, token=token))["media_id"]
    sub = await h.wx("freepublish/submit", {"media_id": media}, token=token)
    got = await _wait_publish(h, token, sub["publish_id"])
    assert got["publish_status"] == status and got["fail_idx"] == [1, 2]
    assert "article_id" not in got
    for _ in range(100):
        if any("PUBLISHJOBFINISH" in r["body"] for r in h.bot.requests):
            break
        await asyncio.sleep(0.05)
    body = next(r["body"] for r in h.bot.requests if "PUBLISHJOBFINISH" in r["body"])
    assert f"<publish_id>{sub['publish_id']}</publish_id>" in body
    assert f"<publish_status>{status}</publish_status>" in body
    assert "<fail_idx><item>1</item><item>2</item></fail_idx>" in body
    assert "article_url" not in body
    listed = await h.wx("freepublish/batchget", {"offset": 0, "count": 20}, token=token)
    assert listed["total_count"] == 0


async def test_publish_event_to_a_slow_bot_tries_three_times(make_harness: MakeHarness) -> None:
    h = await make_harness(**{"wechat.accounts.main.mode": "plain"})
    h.sandbox.callback_timeout = 0.2
    h.bot.script = [1.0, 1.0, 1.0]
    token = await h.token()
    thumb = await _thumb(h, token)
    media = (await h.wx("draft/add", {"articles": [_article(thumb)]}, token=token))["media_id"]
    sub = await h.wx("freepublish/submit", {"media_id": media}, token=token)
    for _ in range(100):
        if len(h.bot.requests) >= 3:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # no fourth try, and no second push of the same event
    assert len(h.bot.requests) == 3
    assert all(f"<publish_id>{sub['publish_id']}</publish_id>" in r["body"] for r in h.bot.requests)
    # The same event each time: same body, same CreateTime.
    assert len({r["body"] for r in h.bot.requests}) == 1
    assert re.search(r"<CreateTime>\d+</CreateTime>", h.bot.requests[0]["body"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"wechat.accounts.main.account_type": "subscription"},
        {"sandbox.unverified_accounts": ["main"]},
    ],
    ids=["subscription", "unverified"],
)
async def test_template_needs_a_verified_service_account(
    make_harness: MakeHarness, overrides: dict[str, Any]
) -> None:
    h = await make_harness(**overrides)
    openid = h.sandbox.followers("main")[2]
    data = await h.wx(
        "message/template/send",
        {"touser": openid, "template_id": "TPL1", "data": {"first": {"value": "答复"}}},
    )
    assert data["errcode"] == 48001
    page = await (await h.client.get("/sandbox/wechat/main/phone?follower=2")).text()
    assert "TPL1" not in page


async def test_uploadimg_size_boundary(h: Harness) -> None:
    limit = 1024 * 1024
    overhead = len(png_bytes(1)) - 1
    under = png_bytes(limit - 1 - overhead)
    exact = png_bytes(limit - overhead)
    assert (len(under), len(exact)) == (limit - 1, limit)
    token = await h.token()
    ok = await h.wx(
        "media/uploadimg", token=token, data=multipart("media", under, "u.png", "image/png")
    )
    assert ok["errcode"] == 0 and ok["url"].startswith(h.base + "/sandbox/wechat/mmbiz/")
    served = await h.client.get(ok["url"].removeprefix(h.base))
    assert served.status == 200 and await served.read() == under
    too_big = await h.wx(
        "media/uploadimg", token=token, data=multipart("media", exact, "e.png", "image/png")
    )
    assert too_big["errcode"] == 40006


async def test_preview_daily_quota(h: Harness) -> None:
    token = await h.token()
    openid = h.sandbox.followers("main")[3]
    body = {"touser": openid, "msgtype": "text", "text": {"content": "预览"}}
    codes = [(await h.wx("message/mass/preview", body, token=token))["errcode"] for _ in range(100)]
    assert codes == [0] * 100
    assert (await h.wx("message/mass/preview", body, token=token))["errcode"] == 45009
    h.sandbox.clock.advance(86400)
    assert (await h.wx("message/mass/preview", body))["errcode"] == 0


async def test_citizen_never_sees_unavailable_for_custom_sends(h: Harness) -> None:
    # A refused customer-service message leaves no line in the conversation.
    openid = h.sandbox.followers("main")[FOLLOWER]
    message = {"touser": openid, "msgtype": "text", "text": {"content": "不该出现"}}
    assert (await h.wx("message/custom/send", message))["errcode"] == 45015
    page = await (await h.client.get(f"/sandbox/wechat/main/phone?follower={FOLLOWER}")).text()
    assert "不该出现" not in page and UNAVAILABLE not in page
