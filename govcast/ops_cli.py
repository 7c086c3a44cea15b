"""Operations commands: ``govcast backup`` and ``govcast deliveries``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from govcast import runtime
from govcast.settings import Settings
from publisher.models import Delivery, DeliveryState

EXIT_REFUSED = 1
_STATES = [s.value for s in DeliveryState]


def register(subparsers: Any) -> None:
    """Add the operations subcommands."""
    backup = subparsers.add_parser(
        "backup",
        help="back up the database (SQLite: online copy; PostgreSQL: pg_dump)",
    )
    backup.add_argument(
        "--to",
        type=Path,
        help="target file (default: <data_dir>/backups/govcast-<UTC time>.sqlite3 or .dump)",
    )
    backup.set_defaults(handler=backup_command)

    deliveries = subparsers.add_parser(
        "deliveries", help="delivery queue status: counts by state and channel, dead letters"
    )
    deliveries.add_argument("--json", action="store_true", help="machine-readable output")
    deliveries.add_argument(
        "--dead", type=int, default=10, metavar="N", help="list the N latest dead letters"
    )
    deliveries.set_defaults(handler=deliveries_command)


# --- backup --------------------------------------------------------------------------------


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    """``govcast backup``: a consistent copy while the service keeps running."""
    if settings.is_sqlite:
        return _backup_sqlite(settings, args.to)
    return _backup_postgresql(settings, args.to)


def _target(settings: Settings, given: Path | None, suffix: str) -> Path | None:
    target = given or settings.data_dir / "backups" / f"govcast-{_stamp()}{suffix}"
    if target.exists():
        print(f"govcast: {target} exists; choose another --to", file=sys.stderr)
        return None
    if not target.parent.is_dir():
        if given is not None:
            print(f"govcast: the folder {target.parent} does not exist", file=sys.stderr)
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _backup_sqlite(settings: Settings, given: Path | None) -> int:
    source = make_url(settings.database_url).database or ""
    if not source or source == ":memory:" or not Path(source).is_file():
        print(f"govcast: no SQLite database at {source or '(none)'}", file=sys.stderr)
        return EXIT_REFUSED
    target = _target(settings, given, ".sqlite3")
    if target is None:
        return EXIT_REFUSED
    partial = target.with_name(target.name + ".partial")
    try:
        # sqlite3's online backup API copies a consistent snapshot page by page while
        # other processes keep writing (WAL); readers and writers are not blocked.
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst, pages=1024)
                check = dst.execute("PRAGMA quick_check").fetchone()
            finally:
                dst.close()
        finally:
            src.close()
        if not check or check[0] != "ok":
            raise sqlite3.DatabaseError(f"the copy failed its check: {check}")
        partial.replace(target)  # never leave a half-written file under the final name
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        print(f"govcast: backup failed: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"backup written: {target} ({target.stat().st_size} bytes)")
    print(f"media files are not in it: copy {settings.data_dir / 'media'} as well")
    return 0


def _pg_environment(database_url: str) -> dict[str, str]:
    """libpq environment for the URL, so the password never appears on a command line."""
    url = make_url(database_url)
    env = dict(os.environ)
    for key, value in (
        ("PGHOST", url.host),
        ("PGPORT", str(url.port) if url.port else None),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value:
            env[key] = str(value)
    return env


def _backup_postgresql(settings: Settings, given: Path | None) -> int:
    url = make_url(settings.database_url)
    guidance = (
        "PostgreSQL backups: pg_dump --format=custom --file govcast.dump "
        f"--host {url.host or 'localhost'} --username {url.username or 'govcast'} "
        f"{url.database or 'govcast'}\n"
        "restore: pg_restore --clean --if-exists --dbname <database> govcast.dump\n"
        "continuous archiving (point-in-time recovery): see docs/deployment.md"
    )
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        print("govcast: pg_dump is not installed here.\n" + guidance, file=sys.stderr)
        return EXIT_REFUSED
    target = _target(settings, given, ".dump")
    if target is None:
        return EXIT_REFUSED
    partial = target.with_name(target.name + ".partial")
    # The arguments are fixed; the database comes from the environment, not the shell.
    result = subprocess.run(  # noqa: S603
        [pg_dump, "--format=custom", "--no-owner", "--file", str(partial)],
        env=_pg_environment(settings.database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        print(f"govcast: pg_dump failed: {result.stderr.strip()[:500]}", file=sys.stderr)
        print(guidance, file=sys.stderr)
        return EXIT_REFUSED
    partial.replace(target)
    print(f"backup written: {target} ({target.stat().st_size} bytes)")
    print(f"restore with: pg_restore --clean --if-exists --dbname <database> {target}")
    return 0


# --- delivery status -----------------------------------------------------------------------


async def delivery_status(settings: Settings, dead_limit: int) -> dict[str, Any]:
    """Counts by channel and state, the oldest due row and the latest dead letters."""
    db = runtime.database(settings)
    try:
        async with db.sessions() as session:
            rows = await session.execute(
                select(Delivery.channel, Delivery.account, Delivery.state, func.count()).group_by(
                    Delivery.channel, Delivery.account, Delivery.state
                )
            )
            counts: dict[str, dict[str, int]] = {}
            for channel, account, state, count in rows.all():
                counts.setdefault(f"{channel}:{account}", {})[state] = int(count)
            oldest = (
                await session.execute(
                    select(func.min(Delivery.not_before)).where(
                        Delivery.state == DeliveryState.PENDING.value
                    )
                )
            ).scalar()
            dead = (
                await session.execute(
                    select(Delivery)
                    .where(Delivery.state == DeliveryState.DEAD.value)
                    .order_by(Delivery.updated_at.desc())
                    .limit(max(0, dead_limit))
                )
            ).scalars()
            dead_rows = [
                {
                    "delivery_id": d.id,
                    "publication_id": d.publication_id,
                    "target": f"{d.channel}:{d.account}",
                    "action": d.action,
                    "attempts": d.attempts,
                    "error": (d.last_error or "")[:200],
                }
                for d in dead
            ]
    finally:
        await db.dispose()
    return {
        "counts": counts,
        "oldest_pending_not_before": oldest.isoformat() if oldest else None,
        "dead": dead_rows,
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as a plain table."""
    states = list(_STATES)
    lines = ["target".ljust(24) + "".join(s.rjust(11) for s in states)]
    for target, by_state in sorted(status["counts"].items()):
        lines.append(
            target[:24].ljust(24) + "".join(str(by_state.get(s, 0)).rjust(11) for s in states)
        )
    if not status["counts"]:
        lines.append("(no deliveries)")
    if status["oldest_pending_not_before"]:
        lines.append(f"oldest pending since: {status['oldest_pending_not_before']}")
    if status["dead"]:
        lines.append("dead letters (latest first):")
        for d in status["dead"]:
            lines.append(
                f"  #{d['delivery_id']} publication {d['publication_id']} {d['target']} "
                f"{d['action']} after {d['attempts']} attempts: {d['error']}"
            )
    return "\n".join(lines)


def deliveries_command(settings: Settings, args: argparse.Namespace) -> int:
    """``govcast deliveries``: what the queue holds now."""
    if args.dead < 0 or args.dead > 1000:
        print("govcast: --dead must be between 0 and 1000", file=sys.stderr)
        return 2
    status = asyncio.run(delivery_status(settings, args.dead))
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
    else:
        print(format_status(status))
    return 0
