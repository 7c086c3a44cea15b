"""Uploaded images placed in the body, and the content checks on the compose form itself."""

from __future__ import annotations

import re
from typing import Any

from govcast import keys
from publisher.models import Publication
from tests.console.helpers import compose_form, png


def _id_of(location: str) -> int:
    match = re.search(r"/console/publications/(\d+)$", location)
    assert match, location
    return int(match.group(1))


async def test_an_uploaded_image_placed_in_the_body_reaches_website_and_wechat(
    signed_in: Any, db: Any
) -> None:
    editor = await signed_in("editor")
    response = await editor.post(
        "/console/publications/new",
        compose_form(editor.csrf, png("navy"), images_in_body="on", image_alt="缴费[流程]图"),
    )
    assert response.status == 303, await response.text()
    publication_id = _id_of(response.headers["Location"])
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
        assert publication is not None
        source, html = publication.body_source or "", publication.body_html
    assert re.search(r"!\[缴费\\\[流程\\\]图\]\(<http[^>]+/media/[0-9a-f]{64}/flow\.png>\)", source)
    assert re.search(
        r'<img src="http[^"]+/media/[0-9a-f]{64}/flow\.png" alt="缴费\[流程\]图"', html
    )
    # The website preview shows the image; the WeChat rendition turns it into an
    # uploadimg slot (not a dropped image).
    frame = await editor.get(f"/console/publications/{publication_id}/preview/website/frame")
    assert re.search(r"<img [^>]*src=\"[^\"]+/media/[0-9a-f]{64}/flow\.png\"", await frame.text())
    from channels.wechat_render import render_article
    from publisher.views import snapshot_of

    app = editor.client.server.app
    async with db.sessions() as session:
        snapshot = await snapshot_of(session, app[keys.CORE], app[keys.MEDIA], publication_id)
    rendition = render_article(snapshot, "main")
    assert len(rendition.images) == 1
    assert rendition.images[0].placeholder in rendition.content
    assert not any("无法转存" in note for note in rendition.notes)


async def test_an_image_is_not_placed_unless_asked_and_can_be_placed_on_edit(
    signed_in: Any, db: Any
) -> None:
    editor = await signed_in("editor")
    response = await editor.post("/console/publications/new", compose_form(editor.csrf, png()))
    publication_id = _id_of(response.headers["Location"])
    async with db.sessions() as session:
        publication = await session.get(Publication, publication_id)
        assert publication is not None and "<img" not in publication.body_html
    page = await editor.get(f"/console/publications/{publication_id}/edit")
    html = await page.text()
    media_id = re.search(r'name="insert_media" value="(\d+)"', html)
    assert media_id, html
    # The snippet and the (script-revealed) insert button, and the script itself.
    assert 'class="insert-image" data-snippet="![' in html
    assert re.search(r'<script src="/console/static/compose\.js(\?v=[^"]+)?" defer>', html)
    script = await editor.get("/console/static/compose.js")
    assert script.status == 200 and "insert-image" in await script.text()
    publication_body = "城乡居民医保缴费。"
    for _ in range(2):  # saving twice places the image once
        saved = await editor.post(
            f"/console/publications/{publication_id}/edit",
            compose_form(editor.csrf, insert_media=media_id.group(1), body=publication_body),
        )
        assert saved.status == 303, await saved.text()
        async with db.sessions() as session:
            publication = await session.get(Publication, publication_id)
            assert publication is not None
            publication_body = publication.body_source or ""
    assert publication_body.count("/media/") == 1
    assert publication.body_html.count("<img") == 1


async def test_insert_media_ignores_images_of_other_publications(signed_in: Any, db: Any) -> None:
    editor = await signed_in("editor")
    first = await editor.post("/console/publications/new", compose_form(editor.csrf, png("red")))
    second = await editor.post("/console/publications/new", compose_form(editor.csrf))
    first_id, second_id = _id_of(first.headers["Location"]), _id_of(second.headers["Location"])
    page = await editor.get(f"/console/publications/{first_id}/edit")
    media_id = re.search(r'name="insert_media" value="(\d+)"', await page.text())
    assert media_id
    saved = await editor.post(
        f"/console/publications/{second_id}/edit",
        compose_form(editor.csrf, insert_media=media_id.group(1)),
    )
    assert saved.status == 303
    async with db.sessions() as session:
        publication = await session.get(Publication, second_id)
        assert publication is not None and "<img" not in publication.body_html


async def test_findings_are_shown_on_the_compose_form_after_a_refused_save(
    signed_in: Any, db: Any
) -> None:
    editor = await signed_in("editor")
    empty = await editor.get("/console/publications/new")
    assert 'id="form-checks"' not in await empty.text()
    # A personal identity number in the body is a finding; the bad date refuses the save.
    response = await editor.post(
        "/console/publications/new",
        compose_form(
            editor.csrf,
            body="联系人身份证号 11010519491231002X，请按时缴费。",
            written_on="2026-13-45",
        ),
    )
    assert response.status == 400
    html = await response.text()
    assert 'id="form-error"' in html
    assert 'id="form-checks"' in html and 'id="findings"' in html
    findings = html.split('id="findings"', 1)[1].split("</ul>", 1)[0]
    assert "[body]" in findings
    # The edit form of a saved draft shows its findings too.
    saved = await editor.post(
        "/console/publications/new",
        compose_form(editor.csrf, body="联系人身份证号 11010519491231002X。"),
    )
    assert saved.status == 303
    publication_id = _id_of(saved.headers["Location"])
    edit = await editor.get(f"/console/publications/{publication_id}/edit")
    edit_html = await edit.text()
    assert 'id="findings"' in edit_html and "[body]" in edit_html
    refused = await editor.post(
        f"/console/publications/{publication_id}/edit",
        compose_form(editor.csrf, title="", body="一切正常的正文。"),
    )
    assert refused.status == 400
    refused_html = await refused.text()
    assert 'id="form-checks"' in refused_html and "11010519491231002X" not in refused_html
