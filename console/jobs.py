"""Long operations started from the console, run as tasks of the web process: the bulk
catalog import (its progress is read from the database, so any web node can show it) and
the website's static export (its progress lives in the process that runs it)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import delete, or_, select

from console.pages import _current, _origin, flash, render
from console.security import requires
from govcast import keys
from publisher import audit
from publisher.errors import GovcastError, ValidationError
from publisher.models import Role
from publisher.orm import utcnow

log = logging.getLogger("govcast.console")
routes = web.RouteTableDef()
JOBS = web.AppKey("console_jobs", dict)
EXPORTS = web.AppKey("console_exports", list)
MAX_IMPORT_BYTES = 64 * 1024 * 1024


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the running tasks; cancel them at shutdown (an import resumes on rerun)."""
    app[JOBS] = {}
    app[EXPORTS] = []
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


# --- static export of the website ---------------------------------------------------------


@dataclass
class ExportJob:
    """One full static export started from the console; its progress is the exporter's."""

    folder: Path
    started_by: str
    started_at: datetime
    exporter: Any
    state: str = "running"  # running | done | failed
    finished_at: datetime | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def written(self) -> int:
        """Pages written so far."""
        return int(self.exporter.stats.pages)

    @property
    def planned(self) -> int:
        """Pages expected (never below what was written; exact once done)."""
        if self.state == "done":
            return self.written
        return max(int(self.exporter.planned), self.written)

    @property
    def percent(self) -> int:
        """Progress in whole percent (100 only when done)."""
        if self.state == "done":
            return 100
        if not self.planned:
            return 0
        return min(99, self.written * 100 // self.planned)

    def view(self) -> ExportView:
        """The job as it stands now (the task moves on while a page renders)."""
        return ExportView(
            started_by=self.started_by,
            started_at=self.started_at,
            state=self.state,
            finished_at=self.finished_at,
            error=self.error,
            seconds=self.seconds,
            written=self.written,
            planned=self.planned,
            percent=self.percent,
        )


@dataclass(frozen=True)
class ExportView:
    """A still picture of an export job for one page."""

    started_by: str
    started_at: datetime
    state: str
    finished_at: datetime | None
    error: str
    seconds: float
    written: int
    planned: int
    percent: int


def export_folder(settings: Any) -> Path:
    """Where the console's export writes: ``[website] export_dir``, else data_dir/export."""
    folder = Path(settings.website.export_dir or "export")
    if not folder.is_absolute():
        folder = Path(settings.data_dir) / folder
    return folder


def _exports(request: web.Request) -> list[ExportJob]:
    if EXPORTS not in request.app:
        raise web.HTTPServiceUnavailable(text="background jobs are not running")
    exports: list[ExportJob] = request.app[EXPORTS]
    return exports


@routes.get("/admin/export")
@requires(Role.ADMIN, Role.EDITOR)
async def export_page(request: web.Request) -> web.StreamResponse:
    """The static export of the website: start one, watch its progress (refreshes itself)."""
    jobs = [job.view() for job in reversed(_exports(request))]
    busy = any(job.state == "running" for job in jobs)
    response = await render(
        request,
        "export.html",
        jobs=jobs,
        busy=busy,
        folder=str(export_folder(request.config_dict[keys.SETTINGS])),
    )
    if busy:
        # The page reloads itself while the export runs (no script needed).
        response.headers["Refresh"] = "2"
    return response


@routes.post("/admin/export")
@requires(Role.ADMIN, Role.EDITOR)
async def start_export(request: web.Request) -> web.StreamResponse:
    """Start a full static export in the background (one at a time)."""
    from website.export import Exporter

    current = _current(request)
    exports = _exports(request)
    if any(job.state == "running" for job in exports):
        await flash(request, "warning", "导出正在进行中。", "An export is already running.")
        raise web.HTTPSeeOther("/console/admin/export")
    settings = request.config_dict[keys.SETTINGS]
    db = request.config_dict[keys.DB]
    folder = export_folder(settings)
    job = ExportJob(
        folder=folder,
        started_by=current.user.name,
        started_at=utcnow(),
        exporter=Exporter(settings, db, folder),
    )

    async def run() -> None:
        try:
            stats = await job.exporter.full()
        except asyncio.CancelledError:
            job.state, job.error = "failed", "cancelled"
            raise
        except Exception as exc:  # shown as failed on the page; the details are logged
            log.exception("console export failed")
            job.state, job.error = "failed", type(exc).__name__
        else:
            job.state, job.seconds = "done", stats.seconds
            log.info("console export finished", extra={"pages": stats.pages})
        finally:
            job.finished_at = utcnow()

    exports.append(job)
    del exports[:-5]  # the last few runs are enough to see what happened
    request.app[JOBS]["export"] = asyncio.create_task(run(), name="website-export")
    async with db.transaction() as session:
        audit.record(
            session,
            current.member.actor(_origin(request)),
            "website.export.start",
            "export",
            folder.name[:64],
        )
    await flash(request, "success", "网站导出已开始。", "Website export started.")
    raise web.HTTPSeeOther("/console/admin/export")


# --- housekeeping -------------------------------------------------------------------------

IDEMPOTENCY_KEEP = timedelta(hours=24)  # an API client retries within a day, not later
RATE_BUCKET_KEEP = timedelta(hours=1)  # longer than every rate window (at most minutes)


async def purge_expired(db: Any, now: datetime | None = None) -> dict[str, int]:
    """Delete ended sessions, idempotency keys past their day and idle rate counters."""
    from console.models import ConsoleSession, IdempotencyKey, RateBucket
    from console.security import IDLE_TIMEOUT

    now = now or utcnow()
    async with db.transaction() as session:
        sessions = await session.execute(
            delete(ConsoleSession).where(
                or_(
                    ConsoleSession.expires_at <= now,
                    ConsoleSession.last_seen_at <= now - IDLE_TIMEOUT,
                )
            )
        )
        idempotency = await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at <= now - IDEMPOTENCY_KEEP)
        )
        buckets = await session.execute(
            delete(RateBucket).where(RateBucket.window_start <= now - RATE_BUCKET_KEEP)
        )
    removed = {
        "sessions": int(getattr(sessions, "rowcount", 0) or 0),
        "idempotency_keys": int(getattr(idempotency, "rowcount", 0) or 0),
        "rate_buckets": int(getattr(buckets, "rowcount", 0) or 0),
    }
    if any(removed.values()):
        log.info("console housekeeping", extra=removed)
    return removed


def ticks(app: web.Application) -> list[Any]:
    """The console's hourly housekeeping tick."""
    from govcast.scheduler import Tick

    async def purge() -> dict[str, int]:
        return await purge_expired(app[keys.DB])

    return [Tick("console_housekeeping", 3600.0, purge)]
