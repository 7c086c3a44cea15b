"""Long operations started from the console (bulk catalog import), run as tasks of the
web process; their progress is read from the database, so any web node can show it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from console.pages import _current, _origin, flash, render
from console.security import requires
from govcast import keys
from publisher import audit
from publisher.errors import GovcastError, ValidationError
from publisher.models import Role

log = logging.getLogger("govcast.console")
routes = web.RouteTableDef()
JOBS = web.AppKey("console_jobs", dict)
MAX_IMPORT_BYTES = 64 * 1024 * 1024


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the running tasks; cancel them at shutdown (an import resumes on rerun)."""
    app[JOBS] = {}
    yield
    for task in list(app[JOBS].values()):
        task.cancel()
    for task in list(app[JOBS].values()):
        with contextlib.suppress(asyncio.CancelledError, Exception):  # logged by the task
            await task


def _folder(request: web.Request) -> Path:
    return Path(request.config_dict[keys.SETTINGS].data_dir) / "imports"


async def _checkpoints(request: web.Request) -> list[Any]:
    from website.models import ImportCheckpoint

    async with request.config_dict[keys.DB].sessions() as session:
        return list(
            (
                await session.execute(
                    select(ImportCheckpoint).order_by(ImportCheckpoint.id.desc()).limit(20)
                )
            ).scalars()
        )


def _total_lines(path: Path, folder: Path) -> int:
    if path.parent != folder or not path.is_file():
        return 0
    count = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def _store(path: Path, content: bytes, key_of: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(key_of(path))


@routes.get("/admin/import")
@requires(Role.ADMIN)
async def import_page(request: web.Request) -> web.StreamResponse:
    """Upload a JSON Lines catalog; see the progress of running and earlier imports."""
    folder = _folder(request)
    rows = []
    running = request.app[JOBS] if JOBS in request.app else {}
    for checkpoint in await _checkpoints(request):
        total = await asyncio.to_thread(_total_lines, Path(checkpoint.path), folder)
        task = running.get(checkpoint.file_key)
        rows.append((checkpoint, total, task is not None and not task.done()))
    busy = any(active for _, _, active in rows)
    return await render(request, "import.html", rows=rows, busy=busy)


@routes.post("/admin/import")
@requires(Role.ADMIN)
async def start_import(request: web.Request) -> web.StreamResponse:
    """Store the uploaded file and import it in the background (resumable)."""
    from website.imports import file_key, import_file

    current = _current(request)
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        raise ValidationError("file", "choose a .jsonl file")
    content = upload.file.read(MAX_IMPORT_BYTES + 1)
    if not content or len(content) > MAX_IMPORT_BYTES:
        raise ValidationError("file", f"must be 1 byte to {MAX_IMPORT_BYTES // 1048576} MB")
    folder = _folder(request)
    path = folder / f"{hashlib.sha256(content).hexdigest()}.jsonl"
    key = await asyncio.to_thread(_store, path, content, file_key)
    jobs: dict[str, asyncio.Task[Any]] = request.app[JOBS]
    existing = jobs.get(key)
    if existing is None or existing.done():
        db = request.config_dict[keys.DB]
        config = request.config_dict[keys.CORE]
        office_key = request.config_dict[keys.SETTINGS].office.key

        async def run() -> None:
            try:
                report = await import_file(db, config, office_key, path)
                log.info(
                    "console import finished",
                    extra={"imported": report.imported, "rejected": len(report.rejected)},
                )
            except GovcastError:
                log.warning("console import refused", exc_info=True)

        jobs[key] = asyncio.create_task(run(), name=f"import-{key[:8]}")
        async with db.transaction() as session:
            audit.record(
                session,
                current.member.actor(_origin(request)),
                "catalog.import.start",
                "import",
                key[:64],
                filename=upload.filename[:200],
                bytes=len(content),
            )
    await flash(request, "success", "导入已开始。", "Import started.")
    raise web.HTTPSeeOther("/console/admin/import")
