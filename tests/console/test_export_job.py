"""The website's static export started from the console: a background job with progress."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from channels.models import WebsiteEntry
from govcast import runtime
from publisher.models import AuditEntry

ITEMS = 40


async def _catalog(settings: Any, db: Any, tmp_path: Path) -> list[str]:
    """A catalog of live items (imported: they go to the website only)."""
    from website.imports import import_file

    lines = [
        json.dumps(
            {
                "title": f"历史信息{n}",
                "category": "service",
                "issuing_body": "示例市人民政府",
                "body": f"第{n}条历史信息的正文。",
                "published_at": f"2020-0{n % 3 + 1}-{n % 28 + 1:02d}T09:00:00+08:00",
            },
            ensure_ascii=False,
        )
        for n in range(ITEMS)
    ]
    source = tmp_path / "catalog.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = await import_file(db, runtime.core_config(settings), settings.office.key, source)
    assert report.imported == ITEMS, report.rejected
    async with db.sessions() as session:
        return list((await session.execute(select(WebsiteEntry.index_number))).scalars())


def _progress(html: str) -> tuple[int, int, str]:
    row = re.search(
        r'<tr class="export (\w+)"[^>]*>.*?<span class="pages">(\d+)/(\d+)</span>', html, re.S
    )
    assert row, html
    return int(row.group(2)), int(row.group(3)), row.group(1)


async def test_export_runs_in_the_background_with_progress(
    signed_in: Any, db: Any, settings: Any, tmp_path: Path
) -> None:
    index_numbers = await _catalog(settings, db, tmp_path)
    editor = await signed_in("editor")
    empty = await editor.get("/console/admin/export")
    assert empty.status == 200
    assert 'id="start-export"' in await empty.text()
    assert "Refresh" not in empty.headers
    started = await editor.post("/console/admin/export")
    assert started.status == 303
    assert started.headers["Location"] == "/console/admin/export"
    seen: list[tuple[int, int, str]] = []
    for _ in range(600):
        page = await editor.get("/console/admin/export")
        html = await page.text()
        written, planned, state = _progress(html)
        seen.append((written, planned, state))
        if state == "running":
            # The page refreshes itself while the export runs, and says so.
            assert page.headers["Refresh"] == "2"
            assert 'http-equiv="refresh"' in html and "<progress" in html
            assert 0 <= written <= planned and planned > ITEMS
        else:
            break
        await asyncio.sleep(0.05)
    assert seen[0][2] == "running", seen[:3]
    written, planned, state = seen[-1]
    assert state == "done", seen[-3:]
    assert written == planned > ITEMS
    # The estimate shown while running was the number of pages the export wrote.
    assert {p for w, p, s in seen if s == "running" and w} == {written}
    assert "100%" in html and "Refresh" not in page.headers
    # Progress only grows.
    assert [w for w, _, _ in seen] == sorted(w for w, _, _ in seen)
    folder = Path(settings.data_dir) / "export"
    assert (folder / "index.html").is_file()
    assert (folder / "sitemap.xml").is_file()
    assert (folder / "static" / "website").is_dir()
    for index_number in index_numbers:
        page_file = folder / "disclosure" / f"{index_number}.html"
        assert page_file.is_file(), page_file
        assert "历史信息" in page_file.read_text(encoding="utf-8")
    async with db.sessions() as session:
        actions = list((await session.execute(select(AuditEntry.action))).scalars())
    assert "website.export.start" in actions


async def test_export_is_for_editors_and_admins_with_csrf(signed_in: Any, settings: Any) -> None:
    reviewer = await signed_in("reviewer1")
    assert (await reviewer.get("/console/admin/export")).status == 403
    assert (await reviewer.post("/console/admin/export")).status == 403
    admin = await signed_in("admin")
    assert (await admin.get("/console/admin/export")).status == 200
    assert (await admin.post("/console/admin/export", csrf=False)).status == 403
    assert (await admin.post("/console/admin/export", {"_csrf": "wrong"}, csrf=False)).status == 403
    assert not (Path(settings.data_dir) / "export").exists()
    # One at a time: a second start while the first runs is refused with a message.
    assert (await admin.post("/console/admin/export")).status == 303
    again = await admin.post("/console/admin/export")
    assert again.status == 303
    page = await (await admin.get("/console/admin/export")).text()
    rows = re.findall(r'<tr class="export (\w+)"', page)
    if "导出正在进行中" in page:
        assert len(rows) == 1
    else:  # the first had already finished: the second is a new run
        assert len(rows) == 2
    for _ in range(600):
        page = await (await admin.get("/console/admin/export")).text()
        if "running" not in re.findall(r'<tr class="export (\w+)"', page):
            break
        await asyncio.sleep(0.05)
    assert set(re.findall(r'<tr class="export (\w+)"', page)) == {"done"}
