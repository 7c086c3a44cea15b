"""The website channel through the real workflow and worker: the catalog entry, the search
index and the static export change together, and a withdrawn item answers 410."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from channels.models import WebsiteEntry
from channels.website import WebsiteChannel
from govcast.settings import Settings
from publisher import audit, workflow
from publisher.db import Database
from publisher.staff import StaffMember
from tests.publisher.helpers import approve_through, core, create_draft, make_worker, sample
from website import search
from website.export import Exporter, file_for
from website.models import SearchDoc


async def _publish(
    db: Database, members: dict[str, StaffMember], tmp_path: Path, **fields: Any
) -> Any:
    config = core(targets=("website",))
    draft = await create_draft(db, config, members["editor"], channels=["website"], **fields)
    await approve_through(db, config, members, draft.id)
    assert await make_worker(db, config, [], tmp_path).run_until_idle() == 1
    async with db.sessions() as session:
        return await workflow.get_publication(session, draft.id)


async def test_publish_correct_withdraw_keep_index_in_step(
    db: Database, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    pub = await _publish(
        db,
        staff_members,
        tmp_path,
        title="关于社保卡换发的通知",
        body="第三代社保卡开始换发。",
        document_number="示人社〔2026〕5号",
    )
    found = await search.search(db, "社保卡")
    assert [h.publication_id for h in found.items] == [pub.id]
    assert found.items[0].url.endswith(pub.index_number)
    assert (await search.search(db, "示人社〔2026〕5号")).total == 1

    config = core(targets=("website",))
    async with db.transaction() as session:
        await workflow.correct(
            session,
            config,
            pub.id,
            sample(
                title="关于医保卡换发的通知", body="第三代医保卡开始换发。", channels=["website"]
            ),
            staff_members["approver"],
            reason="错别字",
        )
    assert await make_worker(db, config, [], tmp_path).run_until_idle() == 1
    assert (await search.search(db, "社保卡")).total == 0
    assert (await search.search(db, "医保卡")).total == 1

    async with db.transaction() as session:
        await workflow.withdraw(session, pub.id, audit.CLI, reason="政策调整")
    assert await make_worker(db, config, [], tmp_path).run_until_idle() == 1
    assert (await search.search(db, "医保卡")).total == 0
    async with db.sessions() as session:
        entry = (await session.execute(select(WebsiteEntry))).scalar_one()
        assert entry.state == "withdrawn"
        assert (await session.execute(select(SearchDoc))).first() is None


async def test_incremental_export_rewrites_only_affected_pages(
    db: Database, settings: Settings, staff_members: dict[str, StaffMember], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    await Exporter(settings, db, out).full()
    changes: list[int] = []

    async def hook(publication_id: int) -> None:
        stats = await Exporter(settings, db, out).apply(publication_id)
        changes.append(stats.pages)

    config = core(targets=("website",))
    draft = await create_draft(
        db, config, staff_members["editor"], channels=["website"], title="增量导出测试"
    )
    await approve_through(db, config, staff_members, draft.id)
    worker = make_worker(db, config, [], tmp_path)
    worker.channels["website"] = WebsiteChannel(db, on_change=hook)  # type: ignore[index]
    assert await worker.run_until_idle() == 1
    async with db.sessions() as session:
        pub = await workflow.get_publication(session, draft.id)
    page = file_for(out, f"/disclosure/{pub.index_number}")
    assert "增量导出测试" in page.read_text(encoding="utf-8")
    assert "增量导出测试" in file_for(out, "/").read_text(encoding="utf-8")
    # Item, 2 homes, first catalog pages (all/category/column x 2 languages), the day of the
    # archive, 2 feeds; the first item of a new day and month also rewrites the month's list
    # of days and the list of months.
    assert changes == [14]

    async with db.transaction() as session:
        await workflow.withdraw(session, pub.id, audit.CLI, reason="撤回")
    assert await worker.run_until_idle() == 1
    assert not page.exists()
    assert changes == [14, 11]  # the item page is removed, not written
    assert "增量导出测试" not in file_for(out, "/").read_text(encoding="utf-8")


async def test_images_need_alt_text_before_they_reach_the_site(db: Database) -> None:
    from datetime import UTC, datetime

    from channels.base import PermanentError
    from publisher.outcomes import DeliveryContext
    from publisher.snapshot import PublicationSnapshot

    snap = PublicationSnapshot(
        id=1,
        office_id=1,
        office_key="main",
        office_name="办公室",
        index_number="11340000MB0000000X/202611-00001",
        kind="disclosure",
        version=1,
        title="带图片的通知",
        body_html='<p><img src="/media/a/b.png"></p>',
        summary="",
        category="service",
        issuing_body="办公室",
        url="http://gov.test/disclosure/x",
        published_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    channel = WebsiteChannel(db)
    rendition = channel.render(snap, "main")
    assert rendition.notes == ("image without alt text: /media/a/b.png",)
    ctx = DeliveryContext(
        delivery_id=1,
        publication_id=1,
        account="main",
        action="publish",
        attempt=1,
        idempotency_key="k",
    )
    with __import__("pytest").raises(PermanentError, match="alt text"):
        await channel.publish(rendition, ctx)
    async with db.sessions() as session:
        assert (await session.execute(select(WebsiteEntry))).first() is None
