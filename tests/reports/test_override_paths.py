"""Findings from the office's stored lists (banned words, leaders) show on the console
page and can be overridden, with an audited reason, from the console, the API and the
command line; personal data is masked with one click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from govcast import runtime
from govcast.settings import Settings
from publisher import audit, workflow
from publisher.db import Database
from publisher.models import AuditEntry, Publication, PublicationVersion
from publisher.staff import StaffMember
from reports.lists import import_lines
from tests.console.conftest import signed_in  # noqa: F401  (the fixture)
from tests.console.test_api import auth, token_for
from tests.publisher.helpers import create_draft

Members = dict[str, StaffMember]
TITLE = "副市长张建国调研供暖工作"  # 张建国 is the mayor: a wrong title
BODY = "本产品荣获国家级最佳称号。"  # a banned word (in the body and the derived summary)


async def _blocked_at_final_step(db: Database, settings: Settings, members: Members) -> int:
    """A publication in review whose last step remains, blocked only by list findings."""
    config = runtime.core_config(settings)
    async with db.transaction() as session:
        await import_lines(session, "banned", "国家级最佳")
        await import_lines(session, "leader", "张建国,市长")
    draft = await create_draft(
        db, config, members["editor"], title=TITLE, body=BODY, channels=["website"]
    )
    async with db.transaction() as session:
        await workflow.submit(session, draft.id, audit.CLI)
    for name in ("reviewer1", "reviewer2")[: config.review_steps - 1]:
        async with db.transaction() as session:
            await workflow.review(session, config, draft.id, members[name], approve=True)
    async with db.sessions() as session:
        publication = await session.get(Publication, draft.id)
        assert publication is not None
        assert publication.review_step == config.review_steps - 1
    return draft.id


async def _state(db: Database, publication_id: int) -> str:
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
        assert publication is not None
        return publication.state


async def _overrides(db: Database, publication_id: int) -> list[tuple[str, str, list[str]]]:
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(AuditEntry).where(
                    AuditEntry.action == "publication.checks_override",
                    AuditEntry.object_id == str(publication_id),
                )
            )
        ).scalars()
        return [
            (r.actor, r.detail["reason"], sorted(f["code"] for f in r.detail["findings"]))
            for r in rows
        ]


async def test_console_shows_list_findings_and_takes_an_override(
    db: Database,
    settings: Settings,
    staff_members: Members,
    signed_in: Any,  # noqa: F811
) -> None:
    publication_id = await _blocked_at_final_step(db, settings, staff_members)
    approver = await signed_in("approver")
    page = await (await approver.get(f"/console/publications/{publication_id}")).text()
    assert "含有禁用词“国家级最佳”" in page and "领导职务有误" in page
    assert 'id="checks_override"' in page  # the box appears for list findings too
    refused = await approver.post(
        f"/console/publications/{publication_id}/review", {"decision": "approve"}
    )
    assert refused.status != 303
    assert await _state(db, publication_id) == "in_review"
    approved = await approver.post(
        f"/console/publications/{publication_id}/review",
        {"decision": "approve", "checks_override": "经核实，引用的是外省文件原文"},
    )
    assert approved.status == 303, await approved.text()
    assert await _state(db, publication_id) in ("queued", "scheduled")
    assert await _overrides(db, publication_id) == [
        ("approver", "经核实，引用的是外省文件原文", ["banned_word", "banned_word", "leader_title"])
    ]


async def test_api_takes_an_override_reason(
    db: Database,
    settings: Settings,
    staff_members: Members,
    signed_in: Any,  # noqa: F811
) -> None:
    publication_id = await _blocked_at_final_step(db, settings, staff_members)
    approver = await signed_in("approver")
    token = await token_for(approver, "publications:review")
    url = f"/api/v1/publications/{publication_id}/review"
    refused = await approver.client.post(url, json={"decision": "approve"}, headers=auth(token))
    assert refused.status == 422
    problem = await refused.json()
    assert problem["field"] == "checks" and "国家级最佳" in problem["detail"]
    wrong = await approver.client.post(
        url, json={"decision": "approve", "checks_override": 5}, headers=auth(token)
    )
    assert wrong.status == 422 and (await wrong.json())["field"] == "checks_override"
    assert await _state(db, publication_id) == "in_review"
    approved = await approver.client.post(
        url,
        json={"decision": "approve", "checks_override": "领导同意按原文发布"},
        headers=auth(token),
    )
    assert approved.status == 200, await approved.text()
    assert (await approved.json())["state"] in ("queued", "scheduled")
    assert await _overrides(db, publication_id) == [
        ("approver", "领导同意按原文发布", ["banned_word", "banned_word", "leader_title"])
    ]
    document = await (await approver.client.get("/api/v1/openapi.json")).json()
    assert "checks_override" in document["components"]["schemas"]["ReviewInput"]["properties"]


async def test_command_line_takes_an_override_reason(
    db: Database, settings: Settings, staff_members: Members, tmp_path: Path
) -> None:
    publication_id = await _blocked_at_final_step(db, settings, staff_members)
    config = tmp_path / "cli.toml"
    config.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCAST_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "govcast.cli", "--config", str(config), *args]
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    review = ("publication", "review", str(publication_id), "--as", "approver", "--approve")
    refused = run(*review)
    assert refused.returncode == 1 and "国家级最佳" in refused.stderr, refused.stderr
    assert await _state(db, publication_id) == "in_review"
    approved = run(*review, "--checks-override", "已请示分管领导")
    assert approved.returncode == 0, approved.stderr
    assert await _state(db, publication_id) in ("queued", "scheduled")
    assert await _overrides(db, publication_id) == [
        ("approver", "已请示分管领导", ["banned_word", "banned_word", "leader_title"])
    ]


LEAKY_BODY = (
    "联系人：王女士，手机13812345678，身份证号110101199003074514。\n\n"
    "![现场照片](/media/13812345678.png)"
)


async def test_one_click_masking_of_a_draft(
    db: Database,
    settings: Settings,
    staff_members: Members,
    signed_in: Any,  # noqa: F811
) -> None:
    config = runtime.core_config(settings)
    draft = await create_draft(
        db,
        config,
        staff_members["editor"],
        title="请联系13812345678办理",
        body=LEAKY_BODY,
        channels=["website"],
    )
    url = f"/console/publications/{draft.id}/mask"
    reviewer = await signed_in("reviewer1")
    assert (await reviewer.post(url)).status == 403  # editors only
    editor = await signed_in("editor")
    page = await (await editor.get(f"/console/publications/{draft.id}")).text()
    assert f'action="{url}"' in page  # the button next to the personal-data findings
    assert (await editor.post(url, csrf=False)).status == 403
    assert (await editor.post(url, {"_csrf": "forged"}, csrf=False)).status == 403
    masked = await editor.post(url)
    assert masked.status == 303
    async with db.sessions() as session:
        publication = await session.get(Publication, draft.id)
        assert publication is not None
        assert publication.title == "请联系138****5678办理"
        assert "138****5678" in publication.summary and "13812345678" not in publication.summary
        assert "1101**********4514" in publication.body_html
        # Text only: the image address is left alone, so the picture still shows.
        assert 'src="/media/13812345678.png"' in publication.body_html
        assert publication.version == draft.version + 1
        stored = (
            await session.execute(
                select(PublicationVersion).where(
                    PublicationVersion.publication_id == draft.id,
                    PublicationVersion.version == publication.version,
                )
            )
        ).scalar_one()
        assert stored.snapshot["title"] == "请联系138****5678办理"
        entry = (
            await session.execute(
                select(AuditEntry).where(AuditEntry.action == "publication.mask_personal_data")
            )
        ).scalar_one()
        assert entry.actor == "editor" and entry.detail["masked"] >= 3
    after = await (await editor.get(f"/console/publications/{draft.id}")).text()
    assert "个人信息" not in after.split("内容检查", 1)[1].split("预览", 1)[0]
    again = await editor.post(url)  # nothing left: no new version
    assert again.status == 303
    async with db.sessions() as session:
        publication = await session.get(Publication, draft.id)
        assert publication is not None and publication.version == draft.version + 1
    async with db.transaction() as session:
        await workflow.submit(session, draft.id, audit.CLI)
    assert (await editor.post(url)).status == 400  # drafts only (the console's refusal)
    async with db.sessions() as session:
        publication = await session.get(Publication, draft.id)
        assert publication is not None and publication.version == draft.version + 1
