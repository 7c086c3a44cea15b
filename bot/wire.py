"""WeChat's callback wire format: signatures, safe-mode AES, XML in and out. Pure functions.

Own implementation on ``cryptography`` (the same primitives wechatpy's ``WeChatCrypto``
uses; the tests check both directions against it) because the hot path cannot afford
wechatpy's xmltodict round trips. XML comes in through lxml with DTDs, entities and the
network switched off, and any document carrying a DOCTYPE/ENTITY declaration is refused
before parsing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from bot.router import ImageReply, InboundMessage, NewsReply, Reply, TextReply


class WireError(Exception):
    """A request WeChat would never send: refused with 4xx, nothing stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- signatures -----------------------------------------------------------------------------


def signature(token: str, timestamp: str, nonce: str, encrypt: str | None = None) -> str:
    """sha1 of the sorted concatenation of token, timestamp, nonce (and Encrypt)."""
    parts = [token, timestamp, nonce] if encrypt is None else [token, timestamp, nonce, encrypt]
    parts.sort()
    return hashlib.sha1("".join(parts).encode(), usedforsecurity=False).hexdigest()


def check_signature(
    token: str, given: str, timestamp: str, nonce: str, encrypt: str | None = None
) -> None:
    """Raise WireError(401) unless ``given`` is the right signature."""
    expected = signature(token, timestamp, nonce, encrypt)
    if not given or not hmac.compare_digest(expected, given.lower()):
        raise WireError(401, "bad signature")


def check_timestamp(timestamp: str, now: float, window: float) -> None:
    """Raise WireError unless the timestamp is a number within ``window`` seconds of now."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WireError(400, "bad timestamp")
    if abs(now - int(timestamp)) > window:
        raise WireError(403, "stale timestamp")


# --- AES (safe mode) --------------------------------------------------------------------------


class AESKey:
    """An account's EncodingAESKey, decoded once."""

    __slots__ = ("app_id", "iv", "key")

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        self.key = base64.b64decode(encoding_aes_key + "=")
        self.iv = self.key[:16]
        self.app_id = app_id.encode()

    def decrypt(self, encrypted: str) -> bytes:
        """The XML inside ``Encrypt``; WireError if it is not ours."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise WireError(400, "Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise WireError(400, "Encrypt has a bad length")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
            raise WireError(400, "Encrypt has bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise WireError(400, "Encrypt is too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise WireError(400, "Encrypt has a bad length")
        xml, app_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(app_id, self.app_id):
            raise WireError(403, "wrong AppID in the encrypted message")
        return xml

    def encrypt(self, xml: bytes) -> str:
        """``Encrypt`` for a reply: random(16) + length + xml + appid, PKCS#7 to 32."""
        body = os.urandom(16) + struct.pack(">I", len(xml)) + xml + self.app_id
        pad = 32 - len(body) % 32
        body += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).encryptor()
        return base64.b64encode(encryptor.update(body) + encryptor.finalize()).decode()


# --- XML in -----------------------------------------------------------------------------------

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)
MAX_DEPTH = 4
MAX_ELEMENTS = 200


def parse_xml(body: bytes) -> dict[str, Any]:
    """The root's children as a dict (nested elements as dicts, repeats as lists)."""
    upper = body.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise WireError(400, "DTDs and entities are not accepted")
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        raise WireError(400, "malformed XML") from None
    if root is None or root.getroottree().docinfo.doctype:
        raise WireError(400, "DTDs and entities are not accepted")
    if not len(root):
        raise WireError(400, "XML has no fields")
    return _element(root, 0, [0])


def _element(el: Any, depth: int, count: list[int]) -> dict[str, Any]:
    # Hot path: every push is parsed here. The parser drops comments and processing
    # instructions and resolves no entities, so every child is an element.
    out: dict[str, Any] = {}
    for child in el:
        tag = child.tag
        if not isinstance(tag, str):  # pragma: no cover - the parser removes these
            continue
        count[0] += 1
        if count[0] > MAX_ELEMENTS:
            raise WireError(400, "XML has too many elements")
        if len(child):
            if depth + 1 >= MAX_DEPTH:
                raise WireError(400, "XML nested too deep")
            value: dict[str, Any] | str = _element(child, depth + 1, count)
        else:
            value = child.text or ""
        existing = out.get(tag)
        if existing is None:
            out[tag] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            out[tag] = [existing, value]
    return out


def _str(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key, "")
    return value if isinstance(value, str) else ""


def to_message(account: str, fields: Mapping[str, Any]) -> InboundMessage:
    """An InboundMessage from parsed fields; WireError if required fields are missing."""
    openid = _str(fields, "FromUserName")
    to_user = _str(fields, "ToUserName")
    msg_type = _str(fields, "MsgType").strip().lower()
    create = _str(fields, "CreateTime").strip()
    if not openid or not to_user or not msg_type or len(openid) > 128 or len(to_user) > 128:
        raise WireError(400, "message lacks FromUserName, ToUserName or MsgType")
    if not create.isdigit() or len(create) > 12:
        raise WireError(400, "message lacks a valid CreateTime")
    msg_id = _str(fields, "MsgId").strip() or _str(fields, "MsgID").strip()
    if msg_id and (not msg_id.isdigit() or len(msg_id) > 32):
        if msg_type != "event":
            raise WireError(400, "bad MsgId")
        msg_id = ""
    if msg_type == "event":
        # Event pushes identify by sender + time; their MsgID (mass/publish jobs) is data.
        msg_id = ""
    elif not msg_id:
        raise WireError(400, "message lacks MsgId")
    return InboundMessage(
        account=account,
        to_user=to_user,
        openid=openid,
        create_time=int(create),
        msg_type=msg_type,
        msg_id=msg_id,
        event=_str(fields, "Event").strip(),
        event_key=_str(fields, "EventKey").strip(),
        content=_str(fields, "Content"),
        recognition=_str(fields, "Recognition"),
        fields=fields,
    )


# --- XML out ----------------------------------------------------------------------------------


def cdata(value: str) -> str:
    """A CDATA section holding ``value`` exactly (``]]>`` split across sections)."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_reply(reply: Reply, msg: InboundMessage, now: int) -> str:
    """The passive reply XML for ``reply`` to ``msg``."""
    head = (
        f"<xml><ToUserName>{cdata(msg.openid)}</ToUserName>"
        f"<FromUserName>{cdata(msg.to_user)}</FromUserName>"
        f"<CreateTime>{now}</CreateTime>"
    )
    if isinstance(reply, TextReply):
        return (
            head
            + f"<MsgType><![CDATA[text]]></MsgType><Content>{cdata(reply.content)}</Content></xml>"
        )
    if isinstance(reply, NewsReply):
        items = "".join(
            f"<item><Title>{cdata(a.title)}</Title><Description>{cdata(a.description)}"
            f"</Description><PicUrl>{cdata(a.picurl)}</PicUrl><Url>{cdata(a.url)}</Url></item>"
            for a in reply.articles
        )
        return (
            head
            + f"<MsgType><![CDATA[news]]></MsgType><ArticleCount>{len(reply.articles)}"
            + f"</ArticleCount><Articles>{items}</Articles></xml>"
        )
    if isinstance(reply, ImageReply):
        return head + (
            f"<MsgType><![CDATA[image]]></MsgType><Image><MediaId>{cdata(reply.media_id)}"
            "</MediaId></Image></xml>"
        )
    raise TypeError(f"not a reply: {reply!r}")  # pragma: no cover


def encrypted_envelope(key: AESKey, token: str, xml: str, timestamp: str, nonce: str) -> str:
    """The safe-mode reply: Encrypt, MsgSignature, TimeStamp, Nonce."""
    encrypt = key.encrypt(xml.encode())
    sig = signature(token, timestamp, nonce, encrypt)
    return (
        f"<xml><Encrypt>{cdata(encrypt)}</Encrypt><MsgSignature>{cdata(sig)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
    )


# --- stored replies -----------------------------------------------------------------------------


def reply_to_json(reply: Reply | None) -> dict[str, Any] | None:
    """A JSON-able form of a reply, stored with the dedup record."""
    if reply is None:
        return None
    if isinstance(reply, TextReply):
        return {"type": "text", "content": reply.content}
    if isinstance(reply, NewsReply):
        return {
            "type": "news",
            "articles": [
                {"title": a.title, "url": a.url, "description": a.description, "picurl": a.picurl}
                for a in reply.articles
            ],
        }
    return {"type": "image", "media_id": reply.media_id}


def reply_from_json(data: Mapping[str, Any] | None) -> Reply | None:
    """The reply stored by :func:`reply_to_json`."""
    from bot.router import Article

    if not data:
        return None
    kind = data.get("type")
    if kind == "text":
        return TextReply(str(data.get("content", "")))
    if kind == "news":
        return NewsReply(
            tuple(
                Article(
                    title=str(a.get("title", "")),
                    url=str(a.get("url", "")),
                    description=str(a.get("description", "")),
                    picurl=str(a.get("picurl", "")),
                )
                for a in data.get("articles", [])
            )
        )
    if kind == "image":
        return ImageReply(str(data.get("media_id", "")))
    return None
