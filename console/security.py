"""Sessions, CSRF tokens, role checks, rate limits and security headers of the console."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from console.models import ConsoleSession, PasswordReset, RateBucket
from govcast import keys
from govcast.settings import Settings
from publisher.models import Role, User
from publisher.orm import utcnow
from publisher.staff import StaffMember, member_of

SESSION_COOKIE = "govcast_console"
LOGIN_CSRF_COOKIE = "govcast_login_csrf"
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# Sessions are touched at most this often, so reading pages does not write on every hit.
TOUCH_EVERY = timedelta(seconds=60)
LOGIN_LIMIT = 10  # attempts per address per window
LOGIN_WINDOW = timedelta(minutes=5)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)
# Channel previews are the channels' own HTML (inline styles allowed, never scripts), shown
# in a sandboxed frame of the console only.
PREVIEW_CSP = (
    "default-src 'none'; img-src 'self' data: http: https:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


class RateLimited(Exception):
    """Too many requests in the current window."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Current:
    """The signed-in staff member of one request."""

    session_id: str
    user: User
    member: StaffMember
    csrf_token: str
    lang: str
    # An admin reset the password: only the password form is open until it is changed.
    must_change_password: bool = False

    def any_role(self, *roles: Role) -> bool:
        """Whether the member holds one of ``roles`` (or admin) in any office."""
        return any(self.member.has(office, *roles) for office in self.member.offices)

    def offices_with(self, *roles: Role) -> list[int]:
        """Offices where the member holds one of ``roles`` (or admin)."""
        return sorted(o for o in self.member.offices if self.member.has(o, *roles))


CURRENT: web.RequestKey[Current | None] = web.RequestKey("console_current", object)  # type: ignore[arg-type]


def digest(token: str) -> str:
    """The stored form of a session or API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(nbytes: int = 32) -> str:
    """A random, URL-safe token."""
    return secrets.token_urlsafe(nbytes)


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens."""
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


async def open_session(
    session: AsyncSession, user: User, origin: str, lang: str, now: datetime | None = None
) -> str:
    """Create a server-side session; returns the cookie value (never stored as such)."""
    now = now or utcnow()
    token = new_token()
    session.add(
        ConsoleSession(
            id=digest(token),
            user_id=user.id,
            csrf_token=new_token(24),
            lang=lang if lang in ("zh", "en") else "zh",
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE_TIMEOUT,
            origin=origin[:100],
            flash=[],
        )
    )
    # Expired sessions of this user are cleared at each login.
    await session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.user_id == user.id, ConsoleSession.expires_at < now
        )
    )
    return token


async def load_current(
    session: AsyncSession, token: str, now: datetime | None = None
) -> Current | None:
    """The live session for a cookie value, or None (unknown, idle too long, expired)."""
    now = now or utcnow()
    if not token or len(token) > 200:
        return None
    row = await session.get(ConsoleSession, digest(token))
    if row is None:
        return None
    if row.expires_at <= now or row.last_seen_at + IDLE_TIMEOUT <= now:
        await session.delete(row)
        return None
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        await session.delete(row)
        return None
    if user.password_changed_at > row.created_at:
        # A password change elsewhere ends every older session.
        await session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    must_change = False
    reset = await session.get(PasswordReset, user.id)
    if reset is not None:
        if user.password_changed_at > reset.reset_at:
            await session.delete(reset)  # the holder has chosen their own password since
        else:
            must_change = True
    return Current(
        session_id=row.id,
        user=user,
        member=member_of(user),
        csrf_token=row.csrf_token,
        lang=row.lang,
        must_change_password=must_change,
    )


async def hit(
    session: AsyncSession, key: str, limit: int, window: timedelta, now: datetime | None = None
) -> None:
    """Count one request against ``key``; raise RateLimited past ``limit`` in the window."""
    now = now or utcnow()
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    builder = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        builder(RateBucket)
        .values(key=key[:200], window_start=now, count=0)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    stmt = select(RateBucket).where(RateBucket.key == key[:200])
    if dialect == "postgresql":
        stmt = stmt.with_for_update()
    bucket = (await session.execute(stmt)).scalar_one()
    if bucket.window_start + window <= now:
        bucket.window_start = now
        bucket.count = 0
    bucket.count += 1
    if bucket.count > limit:
        remaining = bucket.window_start + window - now
        raise RateLimited(max(1, int(remaining.total_seconds()) + 1))


def requires(*roles: Role) -> Callable[[H], H]:
    """Refuse the request (403) unless the member holds one of ``roles`` somewhere.

    An empty ``roles`` means any signed-in staff member. Admins pass every check. The
    office of the object acted on is checked again in the handler or the core.
    """

    def wrap(handler: H) -> H:
        @functools.wraps(handler)
        async def inner(request: web.Request) -> web.StreamResponse:
            current = request.get(CURRENT)
            if current is None:
                raise web.HTTPUnauthorized()
            if roles and not current.any_role(*roles):
                raise web.HTTPForbidden()
            return await handler(request)

        inner.required_roles = frozenset(roles)  # type: ignore[attr-defined]
        return inner  # type: ignore[return-value]

    return wrap


def public(handler: H) -> H:
    """Mark a handler as reachable without a session (login page, static files)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


def is_public(handler: Any) -> bool:
    """Whether the handler was marked public."""
    return bool(getattr(handler, "public", False))


def is_https(base_url: str) -> bool:
    """Whether cookies must carry the Secure flag."""
    return base_url.lower().startswith("https://")


@functools.lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    # Validated when the settings load; parsed once per distinct list.
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies)


def _settings(request: web.Request) -> Settings | None:
    return request.config_dict.get(keys.SETTINGS)


def _address(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted(address: IPAddress | None, networks: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def peer_is_trusted(request: web.Request) -> bool:
    """Whether the TCP peer is one of ``server.trusted_proxies``."""
    settings = _settings(request)
    if settings is None or not settings.server.trusted_proxies:
        return False
    networks = _networks(settings.server.trusted_proxies)
    return _is_trusted(_address(request.remote or ""), networks)


def client_address(request: web.Request) -> str:
    """The client's address: the TCP peer, or behind a trusted proxy the right-most
    X-Forwarded-For entry that is not itself a trusted proxy.

    Entries left of that one were written by the client and prove nothing, so a spoofed
    header from an untrusted peer (or extra entries in front) never changes the answer.
    """
    peer = request.remote or ""
    if not peer_is_trusted(request):
        return peer
    settings = _settings(request)
    assert settings is not None
    networks = _networks(settings.server.trusted_proxies)
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            # A trusted proxy writes addresses only; garbage means a misconfigured chain.
            return peer
        if not _is_trusted(address, networks):
            return str(address)
    # Every hop is a proxy (or there is no header): the left-most is the nearest we know.
    first = _address(hops[0]) if hops else None
    return str(first) if first is not None else peer


def _origin_of(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def expected_origins(request: web.Request) -> set[str]:
    """The origins the console's own pages are served from.

    The configured public address (``website.base_url``) always counts, so forms work
    behind a TLS-terminating proxy that talks plain HTTP to us; so does the address of
    this request as seen by the client (X-Forwarded-Proto/-Host believed only from a
    trusted proxy).
    """
    scheme, host = request.scheme, request.host
    if peer_is_trusted(request):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        if forwarded_host:
            host = forwarded_host
    origins = {f"{scheme}://{host}".lower()}
    settings = _settings(request)
    if settings is not None:
        configured = _origin_of(settings.website.base_url)
        if configured:
            origins.add(configured)
    return origins


def origin_ok(request: web.Request) -> bool:
    """A cross-site POST carries a foreign Origin: refuse it even before the token check."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.rstrip("/").lower() in expected_origins(request)


def digits(value: str, width: int = 18) -> bool:
    """Whether ``value`` is 1-``width`` ASCII digits (``str.isdigit`` accepts "²")."""
    return bool(re.fullmatch(rf"[0-9]{{1,{width}}}", value))


def query(request: web.Request, name: str, limit: int = 100, default: str = "") -> str:
    """A query parameter, cut to ``limit``; a NUL character is refused (PostgreSQL)."""
    value = request.query.get(name, default)[:limit]
    if "\x00" in value:
        raise web.HTTPBadRequest(text=f"{name}: contains a NUL character")
    return value
