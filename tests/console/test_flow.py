"""Compose, submit, three review steps, deliveries, withdrawal: through the console's HTTP."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from publisher.models import Publication, PublicationMedia, PublicationVersion
from tests.console.helpers import compose_form, png


def _id_of(location: str) -> int:
    match = re.search(r"/console/publications/(\d+)$", location)
    assert match, location
    return int(match.group(1))


async def test_compose_review_and_withdraw(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    response = await editor.post("/console/publications/new", compose_form(editor.csrf, png()))
    assert response.status == 303, await response.text()
    publication_id = _id_of(response.headers["Location"])
    page = await editor.get(f"/console/publications/{publication_id}")
    html = await page.text()
    assert "草稿已保存" in html
    assert f"/console/publications/{publication_id}/preview/website/frame" in html
    frame = await editor.get(f"/console/publications/{publication_id}/preview/website/frame")
    assert frame.status == 200
    assert "sandbox" in frame.headers["Content-Security-Policy"]
    async with db.sessions() as session:
        links = (
            await session.execute(
                select(func.count())
                .select_from(PublicationMedia)
                .where(PublicationMedia.publication_id == publication_id)
            )
        ).scalar_one()
    assert links == 1

    # A second version, then the diff shows the change.
    edit = await editor.post(
        f"/console/publications/{publication_id}/edit",
        compose_form(editor.csrf, body="城乡居民医保2026年度集中缴费期为**9月至12月**。"),
    )
    assert edit.status == 303, await edit.text()
    diff = await editor.get(f"/console/publications/{publication_id}/diff")
    diff_html = await diff.text()
    assert 'class="del"' in diff_html and 'class="add"' in diff_html

    submitted = await editor.post(f"/console/publications/{publication_id}/submit")
    assert submitted.status == 303
    for name in ("reviewer1", "reviewer2", "approver"):
        member = await signed_in(name)
        queue = await member.get("/console/review")
        assert f"/console/publications/{publication_id}" in await queue.text()
        decided = await member.post(
            f"/console/publications/{publication_id}/review",
            {"decision": "approve", "comment": "同意"},
        )
        assert decided.status == 303, await decided.text()
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
        assert publication is not None
        assert publication.state in ("queued", "scheduled")
        assert publication.index_number
        versions = (
            await session.execute(
                select(func.count())
                .select_from(PublicationVersion)
                .where(PublicationVersion.publication_id == publication_id)
            )
        ).scalar_one()
    assert versions == 2
    board = await (await signed_in("approver")).get("/console/deliveries")
    assert f'data-publication="{publication_id}"' in await board.text()

    approver = await signed_in("approver")
    withdrawn = await approver.post(
        f"/console/publications/{publication_id}/withdraw", {"reason": "内容有误"}
    )
    assert withdrawn.status == 303
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
        assert publication is not None and publication.state == "withdrawn"


async def test_rejection_needs_reason_and_returns_to_draft(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    response = await editor.post("/console/publications/new", compose_form(editor.csrf))
    publication_id = _id_of(response.headers["Location"])
    await editor.post(f"/console/publications/{publication_id}/submit")
    reviewer = await signed_in("reviewer1")
    refused = await reviewer.post(
        f"/console/publications/{publication_id}/review", {"decision": "reject", "comment": ""}
    )
    assert refused.status == 400
    assert "reason" in await refused.text()
    rejected = await reviewer.post(
        f"/console/publications/{publication_id}/review",
        {"decision": "reject", "comment": "标题有误"},
    )
    assert rejected.status == 303
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
        assert publication is not None
        assert publication.state == "draft" and publication.rejection_reason == "标题有误"


async def test_bad_compose_input_is_a_clear_400_and_writes_nothing(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    cases = [
        {"title": ""},
        {"category": "nonsense"},
        {"title": "x" * 301},
        {"publish_at": "yesterday"},
        {"publish_at": "2001-01-01T09:00"},
        {"channels": ["wechat:nowhere"]},
        {"explanation_url": "javascript:alert(1)"},
        {"written_on": "2026-13-45"},
        {"kind": "solicitation"},
        {"title": "a\x00b"},
        {"keywords": "医保\x00"},
        {"body": "x" * 400_001},
    ]
    for overrides in cases:
        response = await editor.post(
            "/console/publications/new", compose_form(editor.csrf, **overrides)
        )
        assert response.status == 400, (overrides, response.status)
        assert 'id="form-error"' in await response.text()
    not_an_image = await editor.post(
        "/console/publications/new", compose_form(editor.csrf, b"GIF89a not really")
    )
    assert not_an_image.status == 400
    async with db.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(Publication))).scalar_one()
    assert count == 0
