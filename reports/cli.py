"""Commands of the reports package: ``govcast report``, ``govcast figures``,
``govcast inspect`` and ``govcast checks`` (the editable check lists)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from govcast import runtime
from govcast.settings import Settings
from publisher.errors import ValidationError
from reports import annual, inspect
from reports.figures import compute_figures
from reports.lists import add_entry, entries, import_lines, remove_entry
from reports.periods import parse_period

EXIT_VETO = 1


def register(subparsers: Any) -> None:
    """Add this package's commands to the ``govcast`` parser."""
    report = subparsers.add_parser("report", help="annual report on open government information")
    report.add_argument("--year", type=int, required=True)
    report.add_argument(
        "--format",
        choices=["html", "csv", "print"],
        default="html",
        help="html (for the website), csv, print (print-ready HTML)",
    )
    report.add_argument("--office", help="office key (default: all offices)")
    report.add_argument("--output", type=Path, help="write to this file instead of stdout")
    report.set_defaults(handler=_report)

    figures = subparsers.add_parser("figures", help="figures for a month, quarter or year")
    figures.add_argument("period", help="YYYY, YYYY-Qn or YYYY-MM")
    figures.add_argument("--office", help="office key (default: all offices)")
    figures.add_argument("--account", help='one channel account, e.g. "wechat:main"')
    figures.set_defaults(handler=_figures)

    check = subparsers.add_parser("inspect", help="run the inspection checklist")
    check.add_argument("--office", help="office key (default: all offices)")
    check.add_argument("--offline", action="store_true", help="skip the site and link probes")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_inspect)

    lists = subparsers.add_parser("checks", help="the editable content-check lists")
    lists_sub = lists.add_subparsers(dest="checks_command", required=True)
    show = lists_sub.add_parser("list", help="show entries")
    show.add_argument(
        "kind", nargs="?", choices=["banned", "sensitive", "allowed", "typo", "leader", "severity"]
    )
    show.set_defaults(handler=_checks_list)
    add = lists_sub.add_parser("add", help="add an entry")
    add.add_argument(
        "kind", choices=["banned", "sensitive", "allowed", "typo", "leader", "severity"]
    )
    add.add_argument("term", help="word, wrong form, leader's name or finding code")
    add.add_argument(
        "value", nargs="?", default="", help="correction, title, or severity (error|warning|off)"
    )
    add.add_argument("--former", action="store_true", help="a leader no longer in this post")
    add.set_defaults(handler=_checks_add)
    load = lists_sub.add_parser("import", help="add entries from a UTF-8 file, one per line")
    load.add_argument(
        "kind", choices=["banned", "sensitive", "allowed", "typo", "leader", "severity"]
    )
    load.add_argument("file", type=Path)
    load.set_defaults(handler=_checks_import)
    remove = lists_sub.add_parser("remove", help="remove an entry by id")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=_checks_remove)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _report(settings: Settings, args: argparse.Namespace) -> int:
    if not 2000 <= args.year <= 2100:
        raise ValidationError("year", "between 2000 and 2100")
    period = parse_period(str(args.year))

    async def run() -> str:
        db = runtime.database(settings)
        try:
            config = runtime.core_config(settings)
            figures = await compute_figures(
                db,
                period,
                zone=settings.office.zone,
                office_key=args.office,
                accounts=[t for ts in config.targets_by_office.values() for t in ts],
            )
        finally:
            await db.dispose()
        name = settings.office.name
        if args.office and args.office in settings.offices:
            name = settings.offices[args.office].name
        report = annual.build_report(args.year, name, figures)
        if args.format == "csv":
            return annual.render_csv(report)
        return annual.render_html(report, printable=args.format == "print")

    text = asyncio.run(run())
    _emit(text, args.output)
    return 0


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    # Write beside the target and rename: a failed run never leaves half a file.
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    print(f"written: {output}", file=sys.stderr)


def _figures(settings: Settings, args: argparse.Namespace) -> int:
    period = parse_period(args.period)

    async def run() -> dict[str, Any]:
        db = runtime.database(settings)
        try:
            config = runtime.core_config(settings)
            figures = await compute_figures(
                db,
                period,
                zone=settings.office.zone,
                office_key=args.office,
                account=args.account,
                accounts=[t for ts in config.targets_by_office.values() for t in ts],
            )
        finally:
            await db.dispose()
        return asdict(figures)

    print(json.dumps(asyncio.run(run()), ensure_ascii=False, indent=2, default=_json_default))
    return 0


def _inspect(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> inspect.Inspection:
        db = runtime.database(settings)
        try:
            config = runtime.core_config(settings)
            if args.offline:
                return await inspect.run_inspection(db, config, None, office_key=args.office)
            async with aiohttp.ClientSession() as http:
                return await inspect.run_inspection(db, config, http, office_key=args.office)
        finally:
            await db.dispose()

    result = asyncio.run(run())
    if args.json:
        data = {
            "at": result.at.isoformat(),
            "vetoed": result.vetoed,
            "items": [{**asdict(i), "passed": i.passed} for i in result.items],
        }
        print(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default))
    else:
        sys.stdout.write(inspect.render_text(result))
    return EXIT_VETO if result.vetoed else 0


def _checks_list(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        db = runtime.database(settings)
        try:
            async with db.sessions() as session:
                for e in await entries(session, args.kind):
                    state = "" if e.current else " (former)"
                    print(f"{e.id}\t{e.kind}\t{e.term}\t{e.value}{state}")
        finally:
            await db.dispose()

    asyncio.run(run())
    return 0


def _checks_add(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = runtime.database(settings)
        try:
            async with db.transaction() as session:
                entry = await add_entry(
                    session, args.kind, args.term, args.value, current=not args.former, actor="cli"
                )
                return entry.id
        finally:
            await db.dispose()

    print(f"added {asyncio.run(run())}")
    return 0


def _checks_remove(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        db = runtime.database(settings)
        try:
            async with db.transaction() as session:
                await remove_entry(session, args.id)
        finally:
            await db.dispose()

    asyncio.run(run())
    print(f"removed {args.id}")
    return 0


MAX_IMPORT_BYTES = 16 * 1024 * 1024


def _checks_import(settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise ValidationError("file", f"{path} is not a readable file")
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise ValidationError("file", "larger than 16 MiB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("file", "not UTF-8 text") from None

    async def run() -> int:
        db = runtime.database(settings)
        try:
            async with db.transaction() as session:
                return await import_lines(session, args.kind, text, actor="cli")
        finally:
            await db.dispose()

    print(f"imported {asyncio.run(run())} entries into {args.kind}")
    return 0
