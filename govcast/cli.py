"""The ``govcast`` command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from govcast import logs
from govcast.settings import Settings, SettingsError, load_settings
from publisher.errors import GovcastError

log = logging.getLogger("govcast.cli")

EXIT_REFUSED = 1
EXIT_CONFIG = 2

Command = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="govcast", description=__doc__)
    parser.add_argument(
        "--config", help="settings file (default: settings.toml or $GOVCAST_CONFIG)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="everything in one process (embedded default)")
    _server_args(serve)
    web = sub.add_parser("web", help="the web process (website, console, API, callback)")
    _server_args(web)
    web.add_argument("--workers", type=int, default=None, help="processes sharing the port")
    sub.add_parser("worker", help="a delivery worker process")
    sub.add_parser("scheduler", help="a scheduler process (periodic ticks)")

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply pending migrations")

    user = sub.add_parser("user", help="staff accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a staff account")
    add.add_argument("name")
    add.add_argument(
        "--role",
        action="append",
        required=True,
        choices=["editor", "reviewer", "approver", "responder", "admin"],
    )
    add.add_argument("--office", action="append", help="office key (default: the first office)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    pub = sub.add_parser("publication", help="publications")
    pub_sub = pub.add_subparsers(dest="publication_command", required=True)
    p_add = pub_sub.add_parser("add", help="add a publication from a file and submit it for review")
    p_add.add_argument("file", type=Path)
    p_add.add_argument("--as", dest="as_user", help="author (a staff user name)")
    p_add.add_argument("--office", help="office key (default: the first office)")
    p_add.add_argument("--draft", action="store_true", help="keep it as a draft, not submitted")
    p_review = pub_sub.add_parser("review", help="decide the current review step")
    p_review.add_argument("id", type=int)
    p_review.add_argument("--as", dest="as_user", required=True)
    decision = p_review.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true")
    decision.add_argument("--reject", metavar="REASON")
    p_review.add_argument("--comment", default="")
    p_review.add_argument(
        "--checks-override",
        metavar="REASON",
        default="",
        help="approve despite blocking content-check findings, for this reason (audited)",
    )
    p_show = pub_sub.add_parser("show", help="state, metadata and deliveries")
    p_show.add_argument("id", type=int)
    p_show.add_argument("--json", action="store_true")
    p_withdraw = pub_sub.add_parser("withdraw", help="withdraw everywhere")
    p_withdraw.add_argument("id", type=int)
    p_withdraw.add_argument("--as", dest="as_user", required=True)
    p_withdraw.add_argument("--reason", required=True)
    p_submit = pub_sub.add_parser("submit", help="submit a draft for review")
    p_submit.add_argument("id", type=int)
    p_submit.add_argument("--as", dest="as_user")

    sub.add_parser("demo", help="load clearly marked sample data into an empty database")

    for register in _extension_registrars():
        register(sub)
    return parser


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")


def _extension_registrars() -> list[Callable[[Any], None]]:
    # Commands owned by other packages, listed explicitly (no import scanning).
    registrars: list[Callable[[Any], None]] = []
    for module_name in (
        "website.cli",
        "bot.cli",
        "bot.cases.cli",
        "console.cli",
        "reports.cli",
        "sandbox.cli",
        "channels.cli",
        "govcast.ops_cli",
    ):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        registrars.append(module.register)
    return registrars


# Long-running processes: a stop request while they are still starting is a clean stop.
PROCESS_COMMANDS = frozenset({"serve", "web", "worker", "scheduler"})


def _stopped_while_starting(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console command."""
    # Loading every command's code takes seconds on a busy machine; a process manager
    # that stops a worker or web process in that window (a rolling restart, systemd)
    # should see it exit cleanly, not die of SIGTERM. Each process installs its own
    # graceful handling once its event loop runs, replacing this one.
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config")
    early.add_argument("command", nargs="?")
    known, _ = early.parse_known_args(argv)
    if known.command in PROCESS_COMMANDS:
        signal.signal(signal.SIGTERM, _stopped_while_starting)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        overrides: dict[str, Any] = {}
        if getattr(args, "host", None):
            overrides["server.host"] = args.host
        if getattr(args, "port", None):
            overrides["server.port"] = args.port
        settings = load_settings(args.config, overrides=overrides)
    except SettingsError as exc:
        print(f"govcast: configuration error: {exc.key}: {exc.problem}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(settings)
    handler: Command = getattr(args, "handler", None) or _COMMANDS[_command_key(args)]
    try:
        return handler(settings, args)
    except SettingsError as exc:
        print(f"govcast: configuration error: {exc.key}: {exc.problem}", file=sys.stderr)
        return EXIT_CONFIG
    except GovcastError as exc:
        print(f"govcast: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


def _command_key(args: argparse.Namespace) -> str:
    sub = {
        "db": "db_command",
        "user": "user_command",
        "publication": "publication_command",
    }.get(args.command)
    return f"{args.command} {getattr(args, sub)}" if sub else args.command


# --- process commands ----------------------------------------------------------------------


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import server

    server.upgrade_schema(settings)
    return server.run_web(settings, roles={"web", "worker", "scheduler"}, processes=1)


def _web(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import server

    processes = args.workers if args.workers is not None else settings.server.workers
    if processes < 1:
        print("govcast: --workers must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    return server.run_web(settings, roles={"web"}, processes=processes)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import server

    return server.run_headless(settings, roles={"worker"})


def _scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import server

    return server.run_headless(settings, roles={"scheduler"})


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import migrate

    migrate.upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


# --- staff and publications ----------------------------------------------------------------


def _user_add(settings: Settings, args: argparse.Namespace) -> int:
    from publisher import audit, staff
    from publisher.models import Role

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("govcast: the passwords differ", file=sys.stderr)
            return EXIT_REFUSED
    else:
        print("govcast: give the password with --password-stdin", file=sys.stderr)
        return EXIT_REFUSED
    offices = args.office or [settings.office.key]

    from govcast import runtime

    async def run() -> int:
        db = runtime.database(settings)
        try:
            await runtime.sync_offices(db, settings)
            async with db.transaction() as session:
                user = await staff.add_user(
                    session,
                    args.name,
                    password,
                    [Role(r) for r in args.role],
                    offices,
                    actor=audit.CLI,
                )
            print(
                f"user {user.name} added with roles {', '.join(args.role)} in {', '.join(offices)}"
            )
            return 0
        finally:
            await db.dispose()

    return asyncio.run(run())


def _publication_add(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import services

    async def run() -> int:
        async with services.Services.open(settings) as svc:
            publication_id = await svc.add_from_file(
                args.file,
                as_user=args.as_user,
                office_key=args.office or settings.office.key,
                submit=not args.draft,
            )
        state = "draft" if args.draft else "submitted for review"
        print(f"publication {state}: {publication_id}")
        return 0

    return asyncio.run(run())


def _publication_review(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import services

    async def run() -> int:
        comment = args.reject if args.reject is not None else args.comment
        async with services.Services.open(settings) as svc:
            if args.checks_override:
                from publisher import staff, workflow

                # The override reaches the approval checks, which audit it.
                async with svc.db.transaction() as session:
                    member = await staff.load_member(session, args.as_user)
                    publication = await workflow.review(
                        session,
                        svc.config,
                        args.id,
                        member,
                        approve=bool(args.approve),
                        comment=comment,
                        origin="cli",
                        checks_override=args.checks_override,
                    )
            else:
                publication = await svc.review(
                    args.id, args.as_user, approve=bool(args.approve), comment=comment
                )
        print(
            f"publication {publication.id}: {publication.state}"
            + (f" ({publication.index_number})" if publication.index_number else "")
        )
        return 0

    return asyncio.run(run())


def _publication_submit(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import services

    async def run() -> int:
        async with services.Services.open(settings) as svc:
            publication = await svc.submit(args.id, args.as_user)
        print(f"publication {publication.id}: {publication.state}")
        return 0

    return asyncio.run(run())


def _publication_withdraw(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import services

    async def run() -> int:
        async with services.Services.open(settings) as svc:
            publication = await svc.withdraw(args.id, args.as_user, reason=args.reason)
        print(f"publication {publication.id}: {publication.state}")
        return 0

    return asyncio.run(run())


def _publication_show(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import services

    async def run() -> int:
        async with services.Services.open(settings) as svc:
            report = await svc.show(args.id)
        if args.json:
            print(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            print(services.format_show(report))
        return 0

    return asyncio.run(run())


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from govcast import demo, migrate

    migrate.upgrade(settings.database_url)
    for line in asyncio.run(demo.load_demo(settings)):
        print(line)
    return 0


_COMMANDS: dict[str, Command] = {
    "demo": _demo,
    "serve": _serve,
    "web": _web,
    "worker": _worker,
    "scheduler": _scheduler,
    "db upgrade": _db_upgrade,
    "user add": _user_add,
    "publication add": _publication_add,
    "publication review": _publication_review,
    "publication submit": _publication_submit,
    "publication show": _publication_show,
    "publication withdraw": _publication_withdraw,
}


if __name__ == "__main__":
    raise SystemExit(main())
