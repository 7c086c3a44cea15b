"""`govcast backup` and `govcast deliveries` on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from govcast import cli, ops_cli
from publisher.db import Database
from publisher.staff import StaffMember
from tests.publisher.helpers import approve_through, core, create_draft


def _config(tmp_path: Path, database_url: str) -> Path:
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        "[logging]\njson = false\n",
        encoding="utf-8",
    )
    return config


async def _one_approved(db: Database, staff_members: dict[str, StaffMember]) -> int:
    config = core()
    draft = await create_draft(db, config, staff_members["editor"])
    await approve_through(db, config, staff_members, draft.id)
    return draft.id


async def test_backup_makes_a_restorable_copy(
    db: Database,
    staff_members: dict[str, StaffMember],
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publication_id = await _one_approved(db, staff_members)
    config = _config(tmp_path, database_url)
    suffix = ".sqlite3" if database_url.startswith("sqlite") else ".dump"
    target = tmp_path / f"copy{suffix}"
    assert cli.main(["--config", str(config), "backup", "--to", str(target)]) == 0
    assert "backup written" in capsys.readouterr().out
    assert target.is_file() and target.stat().st_size > 0
    assert not list(tmp_path.glob("*.partial"))
    if suffix == ".sqlite3":
        with sqlite3.connect(target) as conn:
            titles = conn.execute("SELECT id FROM publications").fetchall()
            deliveries = conn.execute("SELECT count(*) FROM deliveries").fetchone()
        assert (publication_id,) in titles
        assert deliveries == (3,)
    else:
        listing = subprocess.run(
            ["pg_restore", "--list", str(target)], capture_output=True, text=True, check=True
        ).stdout
        assert "TABLE DATA public deliveries" in listing

    # A second backup to the same file is refused; the first stays intact.
    size = target.stat().st_size
    assert cli.main(["--config", str(config), "backup", "--to", str(target)]) == 1
    assert "exists" in capsys.readouterr().err
    assert target.stat().st_size == size

    # A folder that does not exist is an error, not a traceback.
    missing = tmp_path / "no" / "such" / "folder" / f"x{suffix}"
    assert cli.main(["--config", str(config), "backup", "--to", str(missing)]) == 1
    assert "does not exist" in capsys.readouterr().err

    # Without --to: a time-stamped file under the data folder.
    assert cli.main(["--config", str(config), "backup"]) == 0
    written = list((tmp_path / "data" / "backups").glob(f"govcast-*{suffix}"))
    assert len(written) == 1


def test_backup_of_a_missing_sqlite_database_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'absent.sqlite3'}")
    assert cli.main(["--config", str(config), "backup", "--to", str(tmp_path / "x")]) == 1
    assert "no SQLite database" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_backup_of_an_unreachable_postgresql_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A port nothing listens on: pg_dump fails, the guidance is printed, nothing is left.
    config = _config(tmp_path, "postgresql+asyncpg://nobody:secret-pw@127.0.0.1:9/none")
    target = tmp_path / "x.dump"
    assert cli.main(["--config", str(config), "backup", "--to", str(target)]) == 1
    err = capsys.readouterr().err
    assert "pg_dump failed" in err and "pg_restore" in err
    assert "secret-pw" not in err
    assert not target.exists() and not list(tmp_path.glob("*.partial"))


def test_pg_environment_keeps_the_password_off_the_command_line() -> None:
    env = ops_cli._pg_environment("postgresql+asyncpg://gov:p%40ss@db.internal:6543/govcast")
    assert env["PGHOST"] == "db.internal"
    assert env["PGPORT"] == "6543"
    assert env["PGUSER"] == "gov"
    assert env["PGPASSWORD"] == "p@ss"
    assert env["PGDATABASE"] == "govcast"


async def test_deliveries_status(
    db: Database,
    staff_members: dict[str, StaffMember],
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The command runs its own event loop, so it runs in a thread here.
    config = _config(tmp_path, database_url)
    assert await asyncio.to_thread(cli.main, ["--config", str(config), "deliveries"]) == 0
    assert "(no deliveries)" in capsys.readouterr().out
    await _one_approved(db, staff_members)
    assert await asyncio.to_thread(cli.main, ["--config", str(config), "deliveries", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {
        "fake:main": {"pending": 1},
        "fake:second": {"pending": 1},
        "website:main": {"pending": 1},
    }
    assert status["oldest_pending_not_before"]
    assert status["dead"] == []
    assert await asyncio.to_thread(cli.main, ["--config", str(config), "deliveries"]) == 0
    table = capsys.readouterr().out
    assert "website:main" in table and "pending" in table
    for bad in ("-1", "100000"):
        assert (
            await asyncio.to_thread(
                cli.main, ["--config", str(config), "deliveries", "--dead", bad]
            )
            == 2
        )
    with pytest.raises(SystemExit):
        cli.main(["--config", str(config), "deliveries", "--dead", "many"])
