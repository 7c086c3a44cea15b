"""WeChat's side of the callback: sign (and encrypt) a message, push it to the bot with
WeChat's 5-second timeout and 3 tries, and record what the citizen finally sees."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape

import aiohttp
from defusedxml import ElementTree as ET
from wechatpy.crypto import WeChatCrypto

from sandbox.core import UNAVAILABLE, Sandbox, new_id
from sandbox.models import SandboxMessage

log = logging.getLogger("govcast.sandbox")
TRIES = 3
MAX_REPLY_BYTES = 256 * 1024


@dataclass(frozen=True)
class PushResult:
    """How a push ended: tries made, what the citizen sees (None: nothing).

    ``seconds`` is how long the last try took (the answered one when ``ok``); ``failures``
    says why each earlier try failed (``timeout``, ``connection``, ``status 502``);
    ``create_time`` is the CreateTime on the wire (an event's identity with the sender).
    """

    tries: int
    shown: str | None
    ok: bool
    msg_id: str | None = None
    seconds: float = 0.0
    failures: tuple[str, ...] = ()
    create_time: int = 0


def wire_time() -> int:
    """Timestamps on the wire are real time: the bot checks them against its own clock
    (replay window), whatever the sandbox's injectable clock says."""
    return int(time.time())


def cdata(value: str) -> str:
    """A CDATA section that survives ``]]>`` inside the value."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_xml(fields: dict[str, str | int]) -> str:
    """A flat WeChat message XML; strings in CDATA, numbers bare."""
    parts = ["<xml>"]
    for key, value in fields.items():
        body = str(value) if isinstance(value, int) else cdata(value)
        parts.append(f"<{key}>{body}</{key}>")
    parts.append("</xml>")
    return "".join(parts)


def signature(*parts: str) -> str:
    """WeChat's sha1 of the sorted concatenation."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 (protocol)


def build_request(
    sandbox: Sandbox, account: str, xml: str, openid: str, timestamp: int
) -> tuple[dict[str, str], str]:
    """The query string and body WeChat sends for ``xml`` in the account's mode."""
    settings = sandbox.settings.wechat.accounts[account]
    token = settings.token.reveal()
    nonce = str(secrets.randbelow(10**9))
    query = {
        "signature": signature(token, str(timestamp), nonce),
        "timestamp": str(timestamp),
        "nonce": nonce,
        "openid": openid,
    }
    if settings.mode == "plain":
        return query, xml
    crypto = WeChatCrypto(token, settings.encoding_aes_key.reveal(), settings.app_id)
    wrapped = ET.fromstring(crypto.encrypt_message(xml, nonce, str(timestamp)))
    encrypt = wrapped.findtext("Encrypt") or ""
    query["encrypt_type"] = "aes"
    query["msg_signature"] = signature(token, str(timestamp), nonce, encrypt)
    to_user = sandbox.original_id(account)
    if settings.mode == "safe":
        body = (
            f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
            f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        )
    else:
        # Compatible mode carries the plain fields and the encrypted copy side by side.
        body = xml[: -len("</xml>")] + f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
    return query, body


def read_reply(sandbox: Sandbox, account: str, body: str) -> str | None:
    """What the citizen sees for a reply body; None for nothing; raise ValueError if bad."""
    text = body.strip()
    if text in ("", "success"):
        return None
    settings = sandbox.settings.wechat.accounts[account]
    root = ET.fromstring(text)  # malformed XML raises ParseError, a ValueError
    if root.tag != "xml":
        raise ValueError("reply is not <xml>")
    if root.find("Encrypt") is not None:
        if settings.mode == "plain":
            raise ValueError("encrypted reply in plain mode")
        crypto = WeChatCrypto(
            settings.token.reveal(), settings.encoding_aes_key.reveal(), settings.app_id
        )
        plain = crypto.decrypt_message(
            text,
            root.findtext("MsgSignature") or "",
            root.findtext("TimeStamp") or "",
            root.findtext("Nonce") or "",
        )
        root = ET.fromstring(plain)
    elif settings.mode == "safe":
        raise ValueError("plain reply in safe mode")
    kind = root.findtext("MsgType") or ""
    if kind == "text":
        return root.findtext("Content") or ""
    if kind == "news":
        titles = [
            f"{item.findtext('Title') or ''} {item.findtext('Url') or ''}".strip()
            for item in root.iter("item")
        ]
        if not titles:
            raise ValueError("news reply without articles")
        return "[图文] " + "\n".join(titles)
    if kind in ("image", "voice", "video", "music", "transfer_customer_service"):
        return f"[{kind}]"
    raise ValueError(f"unknown reply type {kind!r}")


async def push(
    sandbox: Sandbox,
    account: str,
    xml: str,
    openid: str,
    *,
    wait_seconds: float | None = None,
) -> PushResult:
    """Push one message or event as WeChat does: same body on each of up to 3 tries."""
    assert sandbox.http is not None
    wait = sandbox.callback_timeout if wait_seconds is None else wait_seconds
    url = sandbox.callback_url(account)
    query, body = build_request(sandbox, account, xml, openid, wire_time())
    failures: list[str] = []
    started = 0.0
    for attempt in range(1, TRIES + 1):
        started = time.monotonic()
        try:
            async with sandbox.http.post(
                url,
                params=query,
                data=body.encode(),
                headers={"Content-Type": "text/xml; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=wait),
            ) as response:
                raw = await response.content.read(MAX_REPLY_BYTES + 1)
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("callback try failed", extra={"account": account, "try": attempt})
            failures.append("timeout" if isinstance(exc, TimeoutError) else "connection")
            continue
        if status != 200 or len(raw) > MAX_REPLY_BYTES:
            failures.append(f"status {status}" if status != 200 else "too large")
            continue
        seconds = time.monotonic() - started
        try:
            shown = read_reply(sandbox, account, raw.decode("utf-8"))
        except Exception:  # any bad reply: WeChat gives up
            return PushResult(attempt, UNAVAILABLE, False, seconds=seconds, failures=(*failures,))
        return PushResult(attempt, shown, True, seconds=seconds, failures=(*failures,))
    seconds = time.monotonic() - started
    return PushResult(TRIES, UNAVAILABLE, False, seconds=seconds, failures=(*failures,))


def citizen_xml(
    sandbox: Sandbox,
    account: str,
    openid: str,
    kind: str,
    content: str,
    event_key: str = "",
    msg_id: str | None = None,
    create_time: int | None = None,
) -> tuple[str, str | None]:
    """The XML WeChat sends for a citizen's text or event, and its MsgId (texts only)."""
    fields: dict[str, str | int] = {
        "ToUserName": sandbox.original_id(account),
        "FromUserName": openid,
        "CreateTime": wire_time() if create_time is None else create_time,
    }
    if kind == "text":
        msg_id = msg_id or new_id(19)
        fields.update({"MsgType": "text", "Content": content, "MsgId": int(msg_id)})
        return render_xml(fields), msg_id
    fields.update({"MsgType": "event", "Event": content})
    if event_key or content in ("CLICK", "VIEW"):
        fields["EventKey"] = event_key
    return render_xml(fields), None


async def citizen_send(
    sandbox: Sandbox,
    account: str,
    openid: str,
    kind: str,
    content: str,
    event_key: str = "",
    *,
    wait_seconds: float | None = None,
) -> PushResult:
    """A citizen writes (or clicks): record it, push it, record what they see."""
    create_time = wire_time()
    xml, msg_id = citizen_xml(
        sandbox, account, openid, kind, content, event_key, create_time=create_time
    )
    shown_in = content if kind == "text" else f"[{content}] {event_key}".strip()
    async with sandbox.db.transaction() as session:
        session.add(
            SandboxMessage(
                account=account,
                openid=openid,
                direction="in",
                kind="text" if kind == "text" else "event",
                content=shown_in,
                msg_id=msg_id,
                created_at=sandbox.clock.now(),
            )
        )
    result = await push(sandbox, account, xml, openid, wait_seconds=wait_seconds)
    if result.shown is not None:
        async with sandbox.db.transaction() as session:
            session.add(
                SandboxMessage(
                    account=account,
                    openid=openid,
                    direction="out",
                    kind="reply" if result.ok else "failure",
                    content=result.shown,
                    msg_id=msg_id,
                    created_at=sandbox.clock.now(),
                )
            )
    return dataclasses.replace(result, msg_id=msg_id, create_time=create_time)


def event_xml(sandbox: Sandbox, account: str, event: str, inner: str) -> str:
    """A platform event (PUBLISHJOBFINISH, MASSSENDJOBFINISH) with raw inner XML."""
    head = render_xml(
        {
            "ToUserName": sandbox.original_id(account),
            "FromUserName": admin_openid(sandbox, account),
            "CreateTime": wire_time(),
            "MsgType": "event",
            "Event": event,
        }
    )
    return head[: -len("</xml>")] + inner + "</xml>"


def admin_openid(sandbox: Sandbox, account: str) -> str:
    """The OpenID of the account's operator (the sender of platform events)."""
    return "o" + hashlib.sha256(f"admin:{account}".encode()).hexdigest()[:27]


def xml_text(value: str) -> str:
    """Escape text for a bare XML element."""
    return escape(value)


async def push_quietly(sandbox: Sandbox, account: str, xml: str) -> None:
    """Push a platform event; failures are only logged (WeChat does not retry more)."""
    try:
        result = await push(sandbox, account, xml, admin_openid(sandbox, account))
    except Exception:  # a background push must never crash the sandbox
        log.exception("event push failed", extra={"account": account})
        return
    if not result.ok:
        log.info("event push not accepted", extra={"account": account, "tries": result.tries})
