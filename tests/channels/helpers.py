"""Helpers for the channel tests: snapshots, real image files, canned platform servers."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from publisher.snapshot import MediaRef, PublicationSnapshot

BASE = "http://127.0.0.1:8080"
INDEX = "11340000MB0000000X/202611-00001"


def image_bytes(
    size: tuple[int, int] = (64, 48), fmt: str = "PNG", noise: bool = False, seed: int = 1
) -> bytes:
    """A real image; ``noise`` makes it incompressible (large files)."""
    if noise:
        rng = random.Random(seed)
        image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (200, 30, 30))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def media(
    tmp_path: Path, content: bytes, name: str = "photo.png", ctype: str = "image/png"
) -> MediaRef:
    """A media-store file and its reference, addressed like the real store."""
    sha = hashlib.sha256(content).hexdigest()
    path = tmp_path / "media" / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return MediaRef(
        media_id=abs(hash(sha)) % 10_000,
        filename=name,
        content_type=ctype,
        path=path,
        url=f"{BASE}/media/{sha}/{name}",
        alt="",
        size=len(content),
    )


def snapshot(**fields: Any) -> PublicationSnapshot:
    """A publication snapshot with sensible defaults."""
    values: dict[str, Any] = {
        "id": 1,
        "office_id": 1,
        "office_key": "main",
        "office_name": "示例市人民政府办公室",
        "index_number": INDEX,
        "kind": "disclosure",
        "version": 1,
        "title": "关于2026年城乡居民医保集中缴费的通知",
        "body_html": "<p>城乡居民医保2026年度集中缴费期为10月至12月。</p><p>请按时缴费。</p>",
        "summary": "城乡居民医保2026年度集中缴费期为10月至12月，请按时缴费。",
        "category": "service",
        "issuing_body": "示例市医疗保障局",
        "url": f"{BASE}/disclosure/{INDEX}",
        "published_at": datetime(2026, 11, 20, 1, 0, tzinfo=UTC),
    }
    values.update(fields)
    return PublicationSnapshot(**values)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Canned:
    """A tiny platform stand-in answering scripted responses, counting calls per path."""

    routes: dict[str, Handler] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    bodies: list[tuple[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            path = request.match_info["tail"]
            self.calls[path] = self.calls.get(path, 0) + 1
            handler = self.routes.get(path)
            if handler is None:
                return web.json_response({"errcode": 404, "errmsg": "no route"}, status=404)
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", dispatch)
        return app


def json_answer(data: Any, status: int = 200) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response(data, status=status)

    return handler


async def make_publication(db: Any, settings: Any, **fields: Any) -> PublicationSnapshot:
    """A real draft publication in the database, as a snapshot."""
    from govcast import runtime
    from publisher import audit, workflow
    from publisher.views import snapshot_of
    from tests.publisher.helpers import sample

    config = runtime.core_config(settings)
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, settings.office.key)
        values = {"channels": ["website"], **fields}
        publication = await workflow.create(session, config, office, sample(**values), audit.CLI)
    async with db.sessions() as session:
        return await snapshot_of(session, config, runtime.media_store(settings), publication.id)
