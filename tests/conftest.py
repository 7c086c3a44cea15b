"""Shared fixtures: real SQLite and real PostgreSQL databases, settings, staff."""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from govcast import migrate, runtime
from govcast.settings import Settings, load_settings
from publisher import staff, workflow
from publisher.db import Database
from publisher.models import Membership, Role, User

PG_ADMIN_URL = os.environ.get("GOVCAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_TEMPLATE = f"govcast_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL template database; each test clones it (fast, isolated)."""
    asyncio.run(_pg_admin(f'CREATE DATABASE "{_TEMPLATE}"'))
    migrate.upgrade(_pg_url(_TEMPLATE))
    yield _TEMPLATE
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test copies it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of each kind: the test runs once on each."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "govcast.sqlite3"
        target.write_bytes(template.read_bytes())
        yield f"sqlite+aiosqlite:///{target}"
        return
    template_name: str = request.getfixturevalue("pg_template")
    name = f"govcast_t_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    yield _pg_url(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings from the repository's settings.toml with test overrides."""
    values: dict[str, Any] = {
        "database.url": database_url,
        "storage.data_dir": str(tmp_path / "data"),
        "logging.json": False,
    }
    values.update(overrides)
    return load_settings(env={}, overrides=values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Repository defaults pointed at this test's database and data folder."""
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The test database, with offices synced."""
    database = runtime.database(settings)
    await runtime.sync_offices(database, settings)
    yield database
    await database.dispose()


STAFF = {
    "editor": [Role.EDITOR],
    "editor2": [Role.EDITOR],
    "reviewer1": [Role.REVIEWER],
    "reviewer2": [Role.REVIEWER],
    "approver": [Role.APPROVER],
    "responder": [Role.RESPONDER],
    "admin": [Role.ADMIN],
}
PASSWORD = "correct horse battery staple"


@functools.cache
def _password_hash() -> str:
    return staff.hash_password(PASSWORD)


@pytest.fixture
async def staff_members(db: Database, settings: Settings) -> dict[str, staff.StaffMember]:
    """One staff member per role in the main office (plus a second editor and reviewer)."""
    members = {}
    async with db.transaction() as session:
        office = await workflow.office_by_key(session, settings.office.key)
        for name, roles in STAFF.items():
            # Hashing is deliberately slow; one hash serves every fixture user.
            user = User(name=name, display_name=name, password_hash=_password_hash())
            user.memberships = [Membership(office_id=office.id, role=r.value) for r in roles]
            session.add(user)
    async with db.sessions() as session:
        for name in STAFF:
            members[name] = await staff.load_member(session, name)
    return members


# --- a stuck test explains itself ------------------------------------------------------------
# pytest-timeout fails a test after 300 s with the main thread's stack, which for an asyncio
# test only shows the event loop waiting. Shortly before that, print every unfinished task's
# stack and every thread's, so that whatever is being waited for can be read off the log.
_STUCK_AFTER_SECONDS = float(os.environ.get("GOVCAST_TEST_STUCK_SECONDS", "240"))


def _dump_stuck(nodeid: str) -> None:
    import faulthandler
    import gc
    import sys

    print(f"\n=== {nodeid} still running after {_STUCK_AFTER_SECONDS:.0f} s ===", file=sys.stderr)
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Task) and not obj.done():
            obj.print_stack(limit=12, file=sys.stderr)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    import threading

    timer = threading.Timer(_STUCK_AFTER_SECONDS, _dump_stuck, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
