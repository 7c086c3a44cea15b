"""`govcast demo` fills an empty database with clearly marked samples, and only an empty one."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import select

from govcast import demo
from govcast.settings import Settings
from publisher.db import Database
from publisher.errors import WorkflowError
from publisher.models import Delivery, Publication


async def test_demo_data_is_marked_and_goes_to_the_website_only(
    settings: Settings, db: Database
) -> None:
    lines = await demo.load_demo(settings)
    async with db.sessions() as session:
        publications = list((await session.execute(select(Publication))).scalars())
        deliveries = list((await session.execute(select(Delivery))).scalars())
    assert len(publications) == len(demo.SAMPLES)
    assert all(p.title.startswith(demo.MARK) for p in publications)
    assert all(p.state == "queued" and p.index_number for p in publications)
    assert {d.channel for d in deliveries} == {"website"}
    secret_file = settings.data_dir / "demo-passwords.txt"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    passwords = [line.split("\t")[2] for line in secret_file.read_text().splitlines()]
    assert passwords and not any(p in "\n".join(lines) for p in passwords)
    with pytest.raises(WorkflowError, match="empty"):
        await demo.load_demo(settings)
