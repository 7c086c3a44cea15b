"""Console pages of the reports package through the real application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from console.security import SESSION_COOKIE, open_session
from govcast.app import create_app
from govcast.settings import Settings
from publisher.db import Database
from publisher.models import User
from tests.reports import seed


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    settings: Settings,
    db: Database,
    staff_members: Any,
) -> TestClient:
    await seed.insert(db, seed.build())
    return await aiohttp_client(create_app(settings, roles={"web"}))


async def _sign_in(db: Database, client: TestClient, name: str = "editor") -> None:
    async with db.transaction() as session:
        user = (await session.execute(select(User).where(User.name == name))).scalar_one()
        token = await open_session(session, user, "127.0.0.1", "zh")
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})


PAGES = [
    "/console/reports/",
    "/console/reports/figures?period=2025",
    "/console/reports/figures?period=2025-Q3&account=wechat:main",
    "/console/reports/annual/2025.html",
    "/console/reports/annual/2025.print",
    "/console/reports/annual/2025.csv",
    "/console/reports/charts/publications.svg?period=2025",
    "/console/inspect?offline=1",
]


@pytest.mark.parametrize("path", PAGES)
async def test_pages_need_a_console_session(client: TestClient, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/console/login?next=")


async def test_pages_render_for_staff(client: TestClient, db: Database) -> None:
    await _sign_in(db, client)
    for path in PAGES:
        response = await client.get(path, allow_redirects=False)
        assert response.status == 200, (path, await response.text())
        assert "script-src" not in response.headers["Content-Security-Policy"]
    svg = await (await client.get(PAGES[6])).text()
    assert svg.startswith("<svg") and 'role="img"' in svg
    csv_body = await (await client.get("/console/reports/annual/2025.csv")).read()
    assert csv_body.startswith(b"\xef\xbb\xbf") and "行政规范性文件".encode() in csv_body
    figures = await (await client.get("/console/reports/figures?period=2025")).text()
    assert "2025 统计" in figures and "<svg" in figures and "<script" not in figures
    page = await (await client.get("/console/inspect?offline=1")).text()
    assert "一、单项否决指标" in page and "未检测" in page


@pytest.mark.parametrize(
    "path,status",
    [
        ("/console/reports/figures?period=2025-13", 400),
        ("/console/reports/figures?period=" + "9" * 5000, 400),
        ("/console/reports/figures", 400),
        ("/console/reports/figures?period=2025&account=" + "w" * 100, 400),
        ("/console/reports/figures?period=%3Cscript%3E", 400),
        ("/console/reports/charts/nothing.svg?period=2025", 404),
        ("/console/reports/annual/1066.html", 400),
        ("/console/reports/annual/2025.exe", 404),
    ],
)
async def test_bad_requests_get_clear_errors(
    client: TestClient, db: Database, path: str, status: int
) -> None:
    await _sign_in(db, client)
    response = await client.get(path, allow_redirects=False)
    assert response.status == status
    assert "<script>" not in await response.text()


async def test_forged_or_oversized_cookie_is_not_a_session(client: TestClient) -> None:
    for value in ("forged", "x" * 5000):
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: value})
        response = await client.get("/console/reports/", allow_redirects=False)
        assert response.status == 303


async def _lists(db: Database) -> list[tuple[str, str, str, bool]]:
    from reports.models import CheckListEntry

    async with db.sessions() as session:
        rows = (await session.execute(select(CheckListEntry).order_by(CheckListEntry.id))).scalars()
        return [(r.kind, r.term, r.value, r.current) for r in rows]


async def _csrf(db: Database, client: TestClient, name: str) -> str:
    from console.security import load_current

    await _sign_in(db, client, name)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    async with db.transaction() as session:
        current = await load_current(session, token)
    assert current is not None
    return current.csrf_token


async def test_approver_edits_lists_and_approval_uses_them(
    client: TestClient, db: Database
) -> None:
    csrf = await _csrf(db, client, "approver")
    page = await client.get("/console/reports/lists")
    assert page.status == 200 and "<textarea" in await page.text()
    response = await client.post(
        "/console/reports/lists",
        data={
            "_csrf": csrf,
            "kind": "leader",
            "lines": "张建国,市长\n赵卫东，市长,former\n# 注释\n",
        },
        allow_redirects=False,
    )
    assert response.status == 303
    response = await client.post(
        "/console/reports/lists",
        data={"_csrf": csrf, "kind": "banned", "lines": "国家级最佳"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert await _lists(db) == [
        ("leader", "张建国", "市长", True),
        ("leader", "赵卫东", "市长", False),
        ("banned", "国家级最佳", "", True),
    ]
    from reports.lists import content_checks

    class Draft:
        id = 1
        title = "副市长张建国调研"
        summary = ""
        body_html = "<p>本产品国家级最佳。</p>"
        channels = ("website",)

    async with db.sessions() as session:
        codes = [f.code for f in await content_checks(session, Draft())]
    assert codes == ["leader_title", "banned_word"]


@pytest.mark.parametrize(
    "data,status",
    [
        ({"kind": "banned", "lines": "好词\n坏\x00词\n另一个"}, 400),  # nothing half-written
        ({"kind": "typo", "lines": "布署"}, 400),
        ({"kind": "leader", "lines": "张三"}, 400),
        ({"kind": "nonsense", "lines": "x"}, 400),
        ({"kind": "banned"}, 400),
        ({"kind": "banned", "lines": "词" * 101}, 400),
    ],
)
async def test_bad_list_input_changes_nothing(
    client: TestClient, db: Database, data: dict[str, str], status: int
) -> None:
    csrf = await _csrf(db, client, "approver")
    response = await client.post(
        "/console/reports/lists", data={"_csrf": csrf, **data}, allow_redirects=False
    )
    assert response.status == status
    assert await _lists(db) == []


async def test_lists_need_role_csrf_and_same_origin(client: TestClient, db: Database) -> None:
    csrf = await _csrf(db, client, "editor")
    data = {"_csrf": csrf, "kind": "banned", "lines": "词"}
    assert (
        await client.post("/console/reports/lists", data=data, allow_redirects=False)
    ).status == 403
    csrf = await _csrf(db, client, "admin")
    bad = {**data, "_csrf": "wrong"}
    assert (
        await client.post("/console/reports/lists", data=bad, allow_redirects=False)
    ).status == 403
    cross = await client.post(
        "/console/reports/lists",
        data={**data, "_csrf": csrf},
        headers={"Origin": "http://evil.example"},
        allow_redirects=False,
    )
    assert cross.status == 403
    assert await _lists(db) == []
    assert (
        await client.post(
            "/console/reports/lists", data={**data, "_csrf": csrf}, allow_redirects=False
        )
    ).status == 303
    assert [(k, t) for k, t, _, _ in await _lists(db)] == [("banned", "词")]
    from reports.models import CheckListEntry

    async with db.sessions() as session:
        entry_id = (await session.execute(select(CheckListEntry.id))).scalar_one()
    gone = await client.post(
        f"/console/reports/lists/{entry_id}/delete", data={"_csrf": csrf}, allow_redirects=False
    )
    assert gone.status == 303 and await _lists(db) == []
    again = await client.post(
        f"/console/reports/lists/{entry_id}/delete", data={"_csrf": csrf}, allow_redirects=False
    )
    assert again.status == 404
    client.session.cookie_jar.clear()
    assert (
        await client.post("/console/reports/lists", data=data, allow_redirects=False)
    ).status == 401


async def _list_audit(db: Database) -> list[tuple[str, str, str, int, list[str]]]:
    from publisher.models import AuditEntry

    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(AuditEntry)
                .where(AuditEntry.action.like("check_list.%"))
                .order_by(AuditEntry.id)
            )
        ).scalars()
        return [
            (r.action, r.actor, r.object_id, r.detail["count"], r.detail["entries"]) for r in rows
        ]


async def test_severities_are_admin_only_and_list_changes_are_audited(
    client: TestClient, db: Database
) -> None:
    csrf = await _csrf(db, client, "approver")
    page = await (await client.get("/console/reports/lists")).text()
    assert 'id="add-banned"' in page and 'id="add-severity"' not in page
    refused = await client.post(
        "/console/reports/lists",
        data={"_csrf": csrf, "kind": "severity", "lines": "banned_word=warning"},
        allow_redirects=False,
    )
    assert refused.status == 403 and await _lists(db) == []
    added = await client.post(
        "/console/reports/lists",
        data={"_csrf": csrf, "kind": "banned", "lines": "赌博\n色情"},
        allow_redirects=False,
    )
    assert added.status == 303
    admin_csrf = await _csrf(db, client, "admin")
    page = await (await client.get("/console/reports/lists")).text()
    assert 'id="add-severity"' in page
    assert (
        await client.post(
            "/console/reports/lists",
            data={"_csrf": admin_csrf, "kind": "severity", "lines": "banned_word=warning"},
            allow_redirects=False,
        )
    ).status == 303
    from reports.models import CheckListEntry

    async with db.sessions() as session:
        rows = (await session.execute(select(CheckListEntry.term, CheckListEntry.id))).all()
        ids = {term: entry_id for term, entry_id in rows}
    csrf = await _csrf(db, client, "approver")
    delete = f"/console/reports/lists/{ids['banned_word']}/delete"
    assert (await client.post(delete, data={"_csrf": csrf}, allow_redirects=False)).status == 403
    assert (
        await client.post(
            f"/console/reports/lists/{ids['色情']}/delete",
            data={"_csrf": csrf},
            allow_redirects=False,
        )
    ).status == 303
    assert [(k, t, v) for k, t, v, _ in await _lists(db)] == [
        ("banned", "赌博", ""),
        ("severity", "banned_word", "warning"),
    ]
    assert await _list_audit(db) == [
        ("check_list.import", "approver", "banned", 2, ["赌博", "色情"]),
        ("check_list.import", "admin", "severity", 1, ["banned_word=warning"]),
        ("check_list.remove", "approver", "banned", 1, ["色情"]),
    ]


async def test_comment_figures_on_the_page_and_in_the_csv(client: TestClient, db: Database) -> None:
    from datetime import UTC, datetime

    data = seed.build()  # the fixture inserted this same data set
    start, end = datetime(2024, 12, 31, 16, tzinfo=UTC), datetime(2025, 12, 31, 16, tzinfo=UTC)
    inside = [c for c in data.comments if start <= c.written_at < end]
    received = len(inside)
    hidden = sum(1 for c in inside if c.hidden)
    answered = sum(1 for c in inside if c.replied and not c.hidden)
    assert received > hidden > 0 and answered > 0
    await _sign_in(db, client)
    page = await (await client.get("/console/reports/figures?period=2025")).text()
    table = page.split('<table id="comments">', 1)[1].split("</table>", 1)[0]
    assert "微信、微博评论回复" in table and "wechat:main" in table and "weibo:main" in table
    total = f'<th scope="row">合计</th><td>{received}</td><td>{hidden}</td><td>{answered}</td>'
    assert total + f"<td>{answered / (received - hidden):.1%}</td>" in table
    csv_text = (await (await client.get("/console/reports/annual/2025.csv")).read()).decode(
        "utf-8-sig"
    )
    rows = [line.split(",") for line in csv_text.splitlines() if "政务新媒体评论回复情况" in line]
    totals = {r[3]: r[4] for r in rows if r[2] == "合计"}
    assert totals["收到评论（条）"] == str(received)
    assert totals["已屏蔽（条）"] == str(hidden)
    assert totals["已回复（条）"] == str(answered)
    assert totals["回复率"] == f"{answered / (received - hidden) * 100:.1f}%"


async def test_an_average_of_zero_days_is_shown_as_zero(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    settings: Settings,
    db: Database,
    staff_members: Any,
) -> None:
    from datetime import UTC, datetime

    from publisher.models import Office, Publication

    at = datetime(2025, 6, 10, 2, 0, tzinfo=UTC)  # created and published the same day
    async with db.transaction() as session:
        office = (await session.execute(select(Office).where(Office.key == "main"))).scalar_one()
        session.add(
            Publication(
                office_id=office.id,
                kind="disclosure",
                state="published",
                title="当日公开的通知",
                body_html="<p>正文。</p>",
                category="service",
                issuing_body="示例市人民政府办公室",
                channels=["website"],
                created_at=at,
                updated_at=at,
                published_at=at,
                index_number="11340000MB0000000X/2025-99999",
            )
        )
    client = await aiohttp_client(create_app(settings, roles={"web"}))
    await _sign_in(db, client)
    page = await (await client.get("/console/reports/figures?period=2025-06")).text()
    assert '<th scope="row">平均公开用时（工作日）</th><td>0.0</td>' in page
    empty = await (await client.get("/console/reports/figures?period=2024-06")).text()
    assert '<th scope="row">平均公开用时（工作日）</th><td>—</td>' in empty
