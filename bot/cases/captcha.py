"""A text CAPTCHA without images (screen-reader friendly): a small arithmetic question in
Chinese with the digits, answered server-side against an HMAC-signed challenge."""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from datetime import datetime

DIGITS = "零一二三四五六七八九十"
TTL_SECONDS = 1800


def _mac(key: bytes, expires: int, nonce: str, answer: int) -> str:
    return hmac.new(key, f"{expires}.{nonce}.{answer}".encode(), hashlib.sha256).hexdigest()[:32]


def make_challenge(key: bytes, now: datetime, rng: random.Random | None = None) -> tuple[str, str]:
    """(question, token): the question to show and the signed token for a hidden field."""
    pick = rng or random.SystemRandom()
    a, b = pick.randint(1, 9), pick.randint(1, 9)
    if pick.random() < 0.5 and a != b:
        a, b = max(a, b), min(a, b)
        question, answer = f"{DIGITS[a]}减{DIGITS[b]}等于几？（{a} − {b} = ?）", a - b
    else:
        question, answer = f"{DIGITS[a]}加{DIGITS[b]}等于几？（{a} + {b} = ?）", a + b
    expires = int(now.timestamp()) + TTL_SECONDS
    nonce = secrets.token_hex(8)
    return question, f"{expires}.{nonce}.{_mac(key, expires, nonce, answer)}"


def verify(key: bytes, token: str, answer: str, now: datetime) -> bool:
    """Whether ``answer`` solves the challenge in ``token`` and it has not expired."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 100:
        return False
    try:
        expires, given = int(parts[0]), int(answer.strip()[:4])
    except ValueError:
        return False
    if expires < now.timestamp():
        return False
    return hmac.compare_digest(_mac(key, expires, parts[1], given), parts[2])


def nonce_of(token: str) -> str:
    """The challenge's nonce (its identity for single use); call after ``verify``."""
    return token.split(".")[1][:32]


def expiry_of(token: str) -> int:
    """The challenge's expiry as Unix seconds; call after ``verify``."""
    return int(token.split(".")[0])
