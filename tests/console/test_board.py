"""The delivery board: paging (dead letters first) and the withdraw / correct actions."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from publisher.models import Delivery, Publication
from tests.console.helpers import compose_form

EXTRA = 230


async def _approved(signed_in: Any) -> tuple[int, Any]:
    editor = await signed_in("editor")
    response = await editor.post("/console/publications/new", compose_form(editor.csrf))
    publication_id = int(response.headers["Location"].rsplit("/", 1)[1])
    await editor.post(f"/console/publications/{publication_id}/submit")
    for name in ("reviewer1", "reviewer2", "approver"):
        member = await signed_in(name)
        decided = await member.post(
            f"/console/publications/{publication_id}/review", {"decision": "approve"}
        )
        assert decided.status == 303, await decided.text()
    return publication_id, member


def _ids(html: str) -> list[int]:
    return [int(v) for v in re.findall(r'data-delivery="(\d+)"', html)]


def _link(html: str, rel: str) -> str:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}"', html)
    return match.group(1).replace("&amp;", "&") if match else ""


async def test_the_board_pages_with_dead_letters_first(signed_in: Any, db: Any) -> None:
    publication_id, approver = await _approved(signed_in)
    async with db.transaction() as session:
        # The oldest rows are the dead ones: they must still lead the first page.
        for n in range(EXTRA):
            session.add(
                Delivery(
                    publication_id=publication_id,
                    channel="website",
                    account="main",
                    revision=1000 + n,
                    state="dead" if n < 3 else "done",
                )
            )
    async with db.sessions() as session:
        every = list((await session.execute(select(Delivery.id, Delivery.state))).all())
    dead = sorted((i for i, s in every if s == "dead"), reverse=True)
    assert len(every) == EXTRA + 1 and len(dead) == 3
    seen: list[int] = []
    url = "/console/deliveries"
    pages = 0
    while url:
        page = await approver.get(url)
        assert page.status == 200
        html = await page.text()
        ids = _ids(html)
        assert 0 < len(ids) <= 100
        if pages == 0:
            assert ids[:3] == dead
            assert not _link(html, "prev")
        else:
            assert _link(html, "prev")
        seen += ids
        pages += 1
        url = _link(html, "next")
    assert pages == 3
    assert len(seen) == len(set(seen)) == EXTRA + 1
    rest = [i for i in seen if i not in dead]
    assert rest == sorted(rest, reverse=True)
    # Filters are kept by the page links.
    filtered = await (await approver.get("/console/deliveries?state=done")).text()
    following = _link(filtered, "next")
    assert parse_qs(urlsplit(following).query) == {"state": ["done"], "page": ["2"]}
    assert "dead" not in re.findall(r'<tr class="(\w+)" data-publication', filtered)
    # A page past the end is empty, and a nonsense page number is the first page.
    assert _ids(await (await approver.get("/console/deliveries?page=9")).text()) == []
    first = _ids(await (await approver.get("/console/deliveries?page=-3")).text())
    assert first[:3] == dead


async def test_withdraw_and_correct_from_the_board(signed_in: Any, db: Any) -> None:
    publication_id, approver = await _approved(signed_in)
    board = await (await approver.get("/console/deliveries?state=&channel=&page=1")).text()
    action = f'action="/console/publications/{publication_id}/withdraw"'
    assert board.count(action) == 1
    assert f'href="/console/publications/{publication_id}/correct"' in board
    form = board.split(action, 1)[1].split("</form>", 1)[0]
    back = re.search(r'name="next" value="([^"]+)"', form)
    assert back and back.group(1).replace("&amp;", "&").startswith("/console/deliveries?")
    # Other roles see no actions and cannot take them.
    reviewer = await signed_in("reviewer1")
    reviewer_board = await (await reviewer.get("/console/deliveries")).text()
    assert action not in reviewer_board and "/correct" not in reviewer_board
    refused = await reviewer.post(
        f"/console/publications/{publication_id}/withdraw", {"reason": "x"}
    )
    assert refused.status == 403
    no_csrf = await approver.post(
        f"/console/publications/{publication_id}/withdraw", {"reason": "x"}, csrf=False
    )
    assert no_csrf.status == 403
    no_reason = await approver.post(
        f"/console/publications/{publication_id}/withdraw",
        {"reason": "", "next": "/console/deliveries?page=1"},
    )
    assert no_reason.status == 400
    # An outside address in "next" is not followed.
    elsewhere = await approver.post(
        f"/console/publications/{publication_id}/withdraw",
        {"reason": "内容有误", "next": "https://evil.example/"},
    )
    assert elsewhere.status == 303 and elsewhere.headers["Location"] == "/console/"
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
        assert publication is not None and publication.state == "withdrawn"
    after = await (await approver.get("/console/deliveries")).text()
    assert action not in after


async def test_withdraw_from_the_board_returns_to_the_board(signed_in: Any, db: Any) -> None:
    publication_id, approver = await _approved(signed_in)
    withdrawn = await approver.post(
        f"/console/publications/{publication_id}/withdraw",
        {"reason": "政策调整", "next": "/console/deliveries?state=&channel=&page=1"},
    )
    assert withdrawn.status == 303
    assert withdrawn.headers["Location"] == "/console/deliveries?state=&channel=&page=1"
    board = await (await approver.get(withdrawn.headers["Location"])).text()
    assert "已撤回" in board


async def test_the_correct_link_on_the_board_opens_the_correction_form(
    signed_in: Any, db: Any
) -> None:
    publication_id, approver = await _approved(signed_in)
    board = await (await approver.get("/console/deliveries")).text()
    link = f"/console/publications/{publication_id}/correct"
    assert f'href="{link}"' in board
    form = await approver.get(link)
    assert form.status == 200
    assert f'action="{link}"' in await form.text()
    editor = await signed_in("editor")
    assert (await editor.get(link)).status == 403
