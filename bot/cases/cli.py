"""Command line of the cases package: the editable holiday calendar."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sqlalchemy import delete, select

from bot.cases.calendar import parse_calendar_lines
from bot.cases.models import CalendarDay
from govcast import runtime
from govcast.settings import Settings

MAX_FILE_BYTES = 1024 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``govcast holidays import FILE`` and ``govcast holidays list [YEAR]``."""
    holidays = subparsers.add_parser("holidays", help="the working-day calendar of cases")
    sub = holidays.add_subparsers(dest="holidays_command", required=True)
    imp = sub.add_parser("import", help="apply DATE,holiday|workday|normal[,NAME] lines")
    imp.add_argument("file")
    imp.set_defaults(handler=import_holidays)
    lst = sub.add_parser("list", help="show the calendar's exceptions")
    lst.add_argument("year", nargs="?", type=int)
    lst.set_defaults(handler=list_holidays)


def import_holidays(settings: Settings, args: argparse.Namespace) -> int:
    """Apply a calendar file in one transaction (all lines or none)."""
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            print(f"error: {path} is larger than 1 MB", file=sys.stderr)
            return 2
        rows = parse_calendar_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        db = runtime.database(settings)
        try:
            async with db.transaction() as session:
                for day, kind, name in rows:
                    await session.execute(delete(CalendarDay).where(CalendarDay.day == day))
                    if kind != "normal":
                        session.add(CalendarDay(day=day, kind=kind, name=name))
        finally:
            await db.dispose()

    asyncio.run(run())
    print(f"applied {len(rows)} calendar lines")
    return 0


def list_holidays(settings: Settings, args: argparse.Namespace) -> int:
    """Print the calendar's holidays and worked weekend days."""

    async def run() -> list[CalendarDay]:
        db = runtime.database(settings)
        try:
            async with db.sessions() as session:
                return list(
                    (await session.execute(select(CalendarDay).order_by(CalendarDay.day))).scalars()
                )
        finally:
            await db.dispose()

    for row in asyncio.run(run()):
        if args.year is None or row.day.year == args.year:
            print(f"{row.day.isoformat()},{row.kind},{row.name}")
    return 0
