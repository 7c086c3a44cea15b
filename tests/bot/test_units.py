"""Pure pieces of the bot, tested with tables: wire format, keyword rules, router, menu."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature

from bot import wire
from bot.handlers import parse_mass_send_event, parse_publish_event
from bot.keywords import RuleError, compile_rule_pattern, normalize, validate_rule
from bot.menu import click_keys, menu_payload
from bot.router import (
    Article,
    Contains,
    Context,
    Dispatcher,
    InboundMessage,
    MenuKey,
    MsgType,
    NewsReply,
    Regex,
    Router,
    SkipHandler,
    Text,
    TextReply,
)
from govcast.settings import SettingsError, load_settings
from tests.bot.helpers import AES_KEY, APPID, TOKEN

# --- wire ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ts", "nonce"), [("1409304348", "xxxxxx"), ("1", "a"), ("99", "zz")])
def test_signature_agrees_with_wechatpy(ts: str, nonce: str) -> None:
    sig = wire.signature(TOKEN, ts, nonce)
    check_signature(TOKEN, sig, ts, nonce)  # raises if wrong
    wire.check_signature(TOKEN, sig, ts, nonce)
    with pytest.raises(wire.WireError):
        wire.check_signature(TOKEN, sig, ts, nonce + "x")


def test_aes_interoperates_with_wechatpy_both_ways() -> None:
    key = wire.AESKey(AES_KEY, APPID)
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    xml = "<xml><Content><![CDATA[你好 world]]></Content></xml>"
    envelope = crypto.encrypt_message(xml, "nonce1", "1409304348")
    encrypt = envelope.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
    assert key.decrypt(encrypt).decode() == xml
    ours = wire.encrypted_envelope(key, TOKEN, xml, "1409304348", "nonce2")
    sig = ours.split("<MsgSignature><![CDATA[", 1)[1].split("]]>", 1)[0]
    assert crypto.decrypt_message(ours, sig, "1409304348", "nonce2") == xml


def test_aes_refuses_other_appid() -> None:
    other = wire.AESKey(AES_KEY, "wxother")
    encrypt = other.encrypt(b"<xml/>")
    with pytest.raises(wire.WireError) as err:
        wire.AESKey(AES_KEY, APPID).decrypt(encrypt)
    assert err.value.status == 403


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<xml><A>1</A><B><![CDATA[x]]></B></xml>", {"A": "1", "B": "x"}),
        (b"<xml><A><B>1</B><B>2</B></A></xml>", {"A": {"B": ["1", "2"]}}),
        (b"<xml><A>  spaced  </A></xml>", {"A": "  spaced  "}),
    ],
)
def test_parse_xml(body: bytes, expected: dict[str, Any]) -> None:
    assert wire.parse_xml(body) == expected


@pytest.mark.parametrize(
    "body",
    [b"<xml>", b"", b"<!DOCTYPE x><xml><A>1</A></xml>", b"<xml>text only</xml>", b"<xml/>"],
)
def test_parse_xml_refuses(body: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_xml(body)


def test_cdata_escapes_terminator() -> None:
    value = "a]]>b"
    xml = f"<xml><C>{wire.cdata(value)}</C></xml>".encode()
    assert wire.parse_xml(xml) == {"C": value}


def _msg(**kw: Any) -> InboundMessage:
    base: dict[str, Any] = {
        "account": "main",
        "to_user": "gh",
        "openid": "o1",
        "create_time": 100,
        "msg_type": "text",
        "msg_id": "42",
    }
    base.update(kw)
    return InboundMessage(**base)


def test_dedup_keys() -> None:
    assert _msg().dedup_key == "m:42"
    assert _msg(msg_type="event", msg_id="", event="CLICK").dedup_key == "e:o1:100:CLICK"


def test_render_news_reply_round_trips() -> None:
    reply = NewsReply((Article("标题", "http://x/1", "摘要"), Article("二", "http://x/2")))
    xml = wire.render_reply(reply, _msg(), 7)
    parsed = wire.parse_xml(xml.encode())
    assert parsed["ArticleCount"] == "2"
    assert parsed["Articles"]["item"][0]["Title"] == "标题"
    assert wire.reply_from_json(wire.reply_to_json(reply)) == reply


def test_news_reply_limits() -> None:
    with pytest.raises(ValueError):
        NewsReply(())
    with pytest.raises(ValueError):
        NewsReply(tuple(Article(str(i), "http://x") for i in range(9)))


# --- keyword rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern", [r"(a+)+$", r"(a|aa)*", r"(\d+)*x", r"(.*a){12}", r"(a)\1", r"(?=a)b", "", "x" * 101]
)
def test_dangerous_regexes_refused(pattern: str) -> None:
    with pytest.raises(RuleError):
        compile_rule_pattern(pattern)


@pytest.mark.parametrize(
    "pattern", [r"^医保", r"社保|医保", r"(?:公积金)\d{4}", r"[0-9]+号", r"a+b*"]
)
def test_simple_regexes_accepted(pattern: str) -> None:
    assert isinstance(compile_rule_pattern(pattern), re.Pattern)


def test_rule_validation() -> None:
    with pytest.raises(RuleError):
        validate_rule("fuzzy", "x", "y", None)
    with pytest.raises(RuleError):
        validate_rule("exact", "x", "y", [{"title": "t", "url": "http://x"}])
    with pytest.raises(RuleError):
        validate_rule("exact", "x", None, [{"title": "t", "url": "javascript:alert(1)"}])
    now = datetime.now(UTC)
    with pytest.raises(RuleError):
        validate_rule("exact", "x", "y", None, now, now - timedelta(days=1))
    assert normalize(" ＡＢＣ１ ") == "abc1"


# --- router -----------------------------------------------------------------------------------------


def _ctx(msg: InboundMessage) -> Context:
    return Context(msg, db=None, settings=load_settings(env={}))  # type: ignore[arg-type]


async def test_router_order_filters_skip_and_middleware() -> None:
    dispatcher = Dispatcher()
    seen: list[str] = []

    async def mw(handler: Any, ctx: Context) -> Any:
        seen.append("before")
        result = await handler(ctx)
        seen.append("after")
        return result

    first = Router("first")
    second = Router("second")
    second.middleware(mw)

    @first.message(Text("跳过"))
    async def skipper(ctx: Context) -> TextReply:
        raise SkipHandler

    @second.message(Regex(r"(\d+)号"))
    async def number(ctx: Context) -> TextReply:
        return TextReply(ctx.data["match"].group(1))

    @second.message(Contains("跳"))
    async def contains(ctx: Context) -> TextReply:
        return TextReply("contains")

    @second.event(MenuKey("k"))
    async def menu(ctx: Context) -> TextReply:
        return TextReply("menu")

    dispatcher.include_router(first)
    dispatcher.include_router(second)
    assert await dispatcher.feed(_ctx(_msg(content="12号"))) == TextReply("12")
    assert await dispatcher.feed(_ctx(_msg(content="跳过"))) == TextReply("contains")
    click = _msg(msg_type="event", msg_id="", event="CLICK", event_key="k")
    assert await dispatcher.feed(_ctx(click)) == TextReply("menu")
    assert await dispatcher.feed(_ctx(_msg(content="nothing"))) is None
    assert seen == ["before", "after"] * 3
    with pytest.raises(ValueError):
        dispatcher.include_router(first)
    other = Dispatcher()
    other.include_router(first)  # a module-level router may serve several apps


async def test_msgtype_and_async_filters() -> None:
    router = Dispatcher()

    async def is_voice_with_text(ctx: Context) -> bool:
        return bool(ctx.message.recognition)

    @router.message(MsgType("voice"), is_voice_with_text)
    async def voice(ctx: Context) -> TextReply:
        return TextReply(ctx.message.text)

    msg = _msg(msg_type="voice", recognition="查询医保")
    assert await router.feed(_ctx(msg)) == TextReply("查询医保")
    assert await router.feed(_ctx(_msg(msg_type="voice"))) is None


# --- events ---------------------------------------------------------------------------------------------


def test_parse_publish_event() -> None:
    xml = (
        b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>"
        b"<MsgType>event</MsgType><Event>PUBLISHJOBFINISH</Event><PublishEventInfo>"
        b"<publish_id>2247503051</publish_id><publish_status>0</publish_status>"
        b"<article_id>b5O88ur6</article_id><article_detail><count>2</count>"
        b"<item><idx>1</idx><article_url>https://mp.weixin.qq.com/s/a</article_url></item>"
        b"<item><idx>2</idx><article_url>https://mp.weixin.qq.com/s/b</article_url></item>"
        b"</article_detail></PublishEventInfo></xml>"
    )
    info = parse_publish_event(wire.parse_xml(xml))
    assert info == {
        "publish_id": "2247503051",
        "publish_status": 0,
        "article_id": "b5O88ur6",
        "article_urls": ["https://mp.weixin.qq.com/s/a", "https://mp.weixin.qq.com/s/b"],
    }
    assert parse_publish_event({})["publish_id"] == ""


def test_parse_mass_send_event() -> None:
    fields = {
        "MsgID": "1000001625",
        "Status": "send success",
        "TotalCount": "100",
        "FilterCount": "80",
        "SentCount": "75",
        "ErrorCount": "5",
    }
    assert parse_mass_send_event(fields) == {
        "msg_id": "1000001625",
        "status": "send success",
        "total": 100,
        "sent": 75,
        "errors": 5,
    }
    assert parse_mass_send_event({"TotalCount": "lots"})["total"] == 0


# --- menu -----------------------------------------------------------------------------------------------


def test_default_menu_payload() -> None:
    settings = load_settings(env={})
    payload = menu_payload(settings)
    assert 1 <= len(payload["button"]) <= 3
    assert set(click_keys(settings)) >= {
        "latest_releases",
        "press_conferences",
        "mayor_column",
        "leave_message",
        "my_cases",
    }


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            {"bot.menu.a.name": "一二三四五六", "bot.menu.a.type": "click", "bot.menu.a.key": "k"},
            "name",
        ),
        ({"bot.menu.a.name": "a", "bot.menu.a.type": "click", "bot.menu.a.key": "k" * 129}, "key"),
        ({"bot.menu.a.name": "a", "bot.menu.a.type": "view", "bot.menu.a.url": "ftp://x"}, "url"),
        ({"bot.menu.a.name": "a"}, "type"),
        (
            {f"bot.menu.{c}.name": c for c in "abcd"}
            | {f"bot.menu.{c}.type": "view" for c in "abcd"}
            | {f"bot.menu.{c}.url": "http://x" for c in "abcd"},
            "menu",
        ),
        ({"bot.reply_budget_seconds": 6}, "reply_budget_seconds"),
    ],
)
def test_menu_validation(overrides: dict[str, Any], key: str, tmp_path: Path) -> None:
    # A configuration file without the repository's menu, plus the menu under test.
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(SettingsError) as err:
        load_settings(empty, env={}, overrides=overrides)
    assert key in err.value.key


def test_too_many_sub_buttons() -> None:
    subs = {}
    for i in range(6):
        subs[f"bot.menu.news.sub.s{i}.name"] = f"s{i}"
        subs[f"bot.menu.news.sub.s{i}.type"] = "click"
        subs[f"bot.menu.news.sub.s{i}.key"] = f"k{i}"
    with pytest.raises(SettingsError) as err:
        load_settings(env={}, overrides=subs)
    assert err.value.key == "bot.menu.news.sub"


async def test_search_cache_single_flight_and_stale_while_revalidate() -> None:
    import asyncio

    from bot.handlers import SearchCache

    calls: list[int] = []

    async def compute() -> TextReply:
        calls.append(1)
        await asyncio.sleep(0.01)
        return TextReply(f"v{len(calls)}")

    cache = SearchCache(ttl=0.05, max_stale=10)
    replies = await asyncio.gather(*[cache.get("q", compute) for _ in range(20)])
    assert calls == [1] and all(r == TextReply("v1") for r in replies)
    await asyncio.sleep(0.06)
    assert await cache.get("q", compute) == TextReply("v1")  # stale served, refresh started
    await asyncio.sleep(0.03)
    assert await cache.get("q", compute) == TextReply("v2")
    assert len(calls) == 2

    async def broken() -> TextReply:
        raise RuntimeError("index down")

    with pytest.raises(RuntimeError):
        await cache.get("other", broken)
