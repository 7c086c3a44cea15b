"""Commands of the website package: ``govcast website export DIR`` and ``govcast import FILE``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from govcast import runtime
from govcast.settings import Settings
from website.export import Exporter
from website.imports import import_file

MAX_REPORTED = 200


def register(subparsers: Any) -> None:
    """Add ``website export`` and the top-level ``import``."""
    website = subparsers.add_parser("website", help="the public website")
    sub = website.add_subparsers(dest="website_command", required=True)
    export = sub.add_parser("export", help="write the whole site as static files")
    export.add_argument("dir", type=Path, help="folder to write (created if missing)")
    export.set_defaults(handler=_export)
    imp = subparsers.add_parser(
        "import", help="bulk-import an existing catalog (JSON Lines); resumable"
    )
    imp.add_argument("file", type=Path, help="FILE.jsonl, one publication per line")
    imp.add_argument("--office", help="office key (default: the main office)")
    imp.add_argument("--report", type=Path, help="also write rejected lines to this file")
    imp.set_defaults(handler=_import)


def _export(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = runtime.database(settings)
        try:
            stats = await Exporter(settings, db, args.dir).full()
        finally:
            await db.dispose()
        rate = stats.pages / stats.seconds if stats.seconds else 0.0
        print(f"exported {stats.pages} pages to {args.dir} in {stats.seconds:.1f} s ({rate:.0f}/s)")
        return 0

    target: Path = args.dir
    if target.exists() and not target.is_dir():
        print(f"govcast: {target} is not a folder", file=sys.stderr)
        return 1
    return asyncio.run(run())


def _import(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = runtime.database(settings)
        try:
            await runtime.sync_offices(db, settings)
            report = await import_file(
                db, runtime.core_config(settings), args.office or settings.office.key, args.file
            )
        finally:
            await db.dispose()
        for rejection in report.rejected[:MAX_REPORTED]:
            print(f"line {rejection.line}: rejected: {rejection.reason}", file=sys.stderr)
        if len(report.rejected) > MAX_REPORTED:
            print(f"... {len(report.rejected) - MAX_REPORTED} more rejected", file=sys.stderr)
        if args.report:
            with args.report.open("w", encoding="utf-8") as out:
                for rejection in report.rejected:
                    out.write(f"{rejection.line}\t{rejection.reason}\n")
        print(
            f"imported {report.imported}, rejected {len(report.rejected)}, "
            f"resumed after line {report.skipped_lines}, last line {report.last_line}"
        )
        return 0 if not report.rejected else 1

    return asyncio.run(run())
