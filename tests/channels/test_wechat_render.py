"""Table tests of the pure WeChat renderer: hostile HTML, limits, images, links."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from PIL import Image

from channels.base import PermanentError
from channels.wechat_render import (
    AUTHOR_LIMIT,
    DIGEST_LIMIT,
    TITLE_LIMIT,
    cut,
    cut_sentence,
    fill_images,
    plain_cover,
    prepare_image,
    render_article,
    resolve_link,
    safe_prefix,
)
from tests.channels.helpers import image_bytes, media, snapshot

ALLOWED = {
    "p",
    "br",
    "hr",
    "h2",
    "h3",
    "h4",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "s",
    "sub",
    "sup",
    "blockquote",
    "pre",
    "code",
    "ul",
    "ol",
    "li",
    "table",
    "caption",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "img",
    "figure",
    "figcaption",
    "span",
    "section",
    "a",
    "dl",
    "dt",
    "dd",
    "del",
    "ins",
}
ALLOWED_ATTRS = {"style", "src", "alt", "colspan", "rowspan", "href"}

HOSTILE = [
    "<script>alert(1)</script><p>正文</p>",
    '<p onclick="steal()">点击</p><img src=x onerror="alert(1)">',
    '<iframe src="https://evil.example/"></iframe><p>正文</p>',
    '<form action="https://evil.example/"><input name=a><button>提交</button></form><p>正文</p>',
    '<a href="javascript:alert(1)">链接</a>',
    "<style>p{display:none}</style><p>正文</p>",
    "<svg><script>alert(1)</script></svg><p>正文</p>",
    "<!-- <script>alert(1)</script> --><p>正文</p>",
    '<p style="background:url(javascript:alert(1));color:red">正文</p>',
    '<p style="width:expression(alert(1))">正文</p>',
    "<object data=x></object><embed src=x><p>正文</p>",
    "<scr<script>ipt>alert(1)</script><p>正文</p>",
    "<p>未闭合<b>粗体<i>斜体",
    "<table><tr><td onmouseover=x>格</td></tr></table>",
    '<a href="https://evil.example/" onclick="x">外链</a>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "<meta http-equiv=refresh content='0;url=https://evil.example'>",
    "<base href='https://evil.example/'><p>x</p>",
    "<noscript><p>nope</p></noscript><template><p>t</p></template>",
    "<textarea><script>alert(1)</script></textarea>",
    "\x00<p>空字符</p>",
    "<" * 500 + "p>深",
    "<div>" * 400 + "深嵌套" + "</div>" * 400,
]


def _check_no_danger(content: str) -> None:
    lower = content.lower()
    for bad in (
        "<script",
        "<iframe",
        "<form",
        "<style",
        "<svg",
        "javascript:",
        "onerror",
        "onclick",
        "onmouseover",
        "expression(",
        "<object",
        "<embed",
        "<meta",
        "<base",
        "<input",
        "<textarea",
        "<math",
    ):
        assert bad not in lower, bad


def _check_safe(content: str) -> None:
    lower = content.lower()
    for bad in (
        "<script",
        "<iframe",
        "<form",
        "<style",
        "<svg",
        "javascript:",
        "onerror",
        "onclick",
        "onmouseover",
        "expression(",
        "<object",
        "<embed",
        "<meta",
        "<base",
        "<input",
        "<textarea",
        "<math",
    ):
        assert bad not in lower, bad
    soup = BeautifulSoup(content, "html.parser")
    for tag in soup.find_all(True):
        assert tag.name in ALLOWED, tag.name
        assert set(tag.attrs) <= ALLOWED_ATTRS, tag.attrs
        if tag.name == "a":
            assert tag["href"].startswith("https://mp.weixin.qq.com/")
        style = tag.get("style", "")
        assert "url(" not in style and "expression" not in style


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_html_comes_out_safe(body: str) -> None:
    rendition = render_article(snapshot(body_html=body), "main")
    _check_safe(rendition.content)
    _check_no_danger(rendition.preview_html)
    assert len(rendition.content) < 20_000


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("关于2026年城乡居民医保集中缴费的通知", "关于2026年城乡居民医保集中缴费的通知"),
        ("关" * 32, "关" * 32),
        ("关" * 33, "关" * 31 + "…"),
        (
            "关于进一步加强和改进新时代城乡居民基本医疗保险集中缴费工作若干措施的实施意见的通知",
            "关于进一步加强和改进新时代城乡居民基本医疗保险集中缴费工作若干…",
        ),
        ("“十五五”规划（征求意见稿）：全市城乡居民医保、养老保险集中缴费工作安排！！", None),
        ("  多余   空白\n\t标题  ", "多余 空白 标题"),
        ("😀" * 40, "😀" * 31 + "…"),
        ("家庭👨‍👩‍👧‍👦" * 8, None),
        ("国旗🇨🇳" * 12, None),
    ],
)
def test_titles_fit_on_character_boundaries(title: str, expected: str | None) -> None:
    rendition = render_article(snapshot(title=title), "main")
    assert len(rendition.title) <= TITLE_LIMIT
    if expected is not None:
        assert rendition.title == expected
    assert not rendition.title.endswith("\u200d")
    assert not re.search("[\U0001f1e6-\U0001f1ff]…$", rendition.title) or (
        len(re.findall("[\U0001f1e6-\U0001f1ff]", rendition.title)) % 2 == 0
    )
    assert rendition.title.encode("utf-8").decode("utf-8") == rendition.title
    if len(title.split()) and rendition.title.endswith("…"):
        assert any("标题" in note for note in rendition.notes)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, "abcde…"),
        ("ab👨‍👩‍👧cd", 4, "ab…"),
        ("🇨🇳🇨🇳", 3, "🇨🇳"),  # safe_prefix below
        ("é" + "e\u0301" * 3, 3, "é…"),
    ],
)
def test_cut_never_splits_a_character(text: str, limit: int, expected: str) -> None:
    if text.startswith("🇨🇳"):
        assert safe_prefix(text, limit) == expected
        return
    assert cut(text, limit) == expected
    assert len(cut(text, limit)) <= limit


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("第一句话。第二句话很长很长。第三句。", 14, "第一句话。第二句话很长很长。"),
        ("第一句话。第二句话很长很长。第三句。", 10, "第一句话。"),
        ("一。第二句话很长很长很长。", 10, "一。第二句话很长很…"),
        ("没有句号的一段很长的文字内容", 8, "没有句号的一段…"),
        ("短。", 8, "短。"),
    ],
)
def test_cut_sentence(text: str, limit: int, expected: str) -> None:
    assert cut_sentence(text, limit) == expected


def test_author_digest_and_source_url() -> None:
    long_body = "<p>" + "城乡居民医保缴费，" * 40 + "</p>"
    rendition = render_article(
        snapshot(
            issuing_body="示例市人力资源和社会保障局医疗保障事务服务中心",
            summary="",
            body_html=long_body,
        ),
        "main",
    )
    assert len(rendition.author) <= AUTHOR_LIMIT and rendition.author.endswith("…")
    assert len(rendition.digest) <= DIGEST_LIMIT and rendition.digest.startswith("城乡居民医保缴费")
    assert rendition.content_source_url.endswith("/disclosure/11340000MB0000000X/202611-00001")
    summary = "摘要" * 100
    assert render_article(snapshot(summary=summary), "main").digest == cut(summary, DIGEST_LIMIT)


def test_images_in_every_position(tmp_path: Path) -> None:
    a = media(tmp_path, image_bytes(seed=1), "a.png")
    b = media(tmp_path, image_bytes((30, 30), "JPEG"), "b.jpg", "image/jpeg")
    body = (
        f'<img src="{a.url}" alt="首图"><p>开头</p>'
        f'<p>段中<img src="{b.url}">段中</p>'
        f'<table><tr><td><img src="{a.url}"></td></tr></table>'
        f'<ul><li><img src="{b.url}"></li></ul>'
        f'<a href="https://example.org/x"><img src="{a.url}"></a>'
        '<img src="https://elsewhere.example/x.png">'
        f'<p>结尾</p><img src="{b.url}">'
    )
    rendition = render_article(snapshot(body_html=body, images=(a, b)), "main")
    assert [s.path for s in rendition.images] == [str(a.path), str(b.path)]
    assert rendition.cover == rendition.images[0]
    assert rendition.content.count("govcast-img://0") == 3
    assert "（https://example.org/x）" in rendition.content
    assert rendition.content.count("govcast-img://1") == 3
    assert "elsewhere.example/x.png" not in rendition.content
    assert any("1 张图片" in note for note in rendition.notes)
    filled = fill_images(
        rendition.content,
        {
            "govcast-img://0": "https://mmbiz.qpic.cn/a",
            "govcast-img://1": "https://mmbiz.qpic.cn/b",
        },
    )
    assert "govcast-img" not in filled
    assert filled.count('src="https://mmbiz.qpic.cn/a"') == 3
    # A placeholder without an uploaded URL is dropped, not sent as a broken link.
    assert "<img" not in fill_images('<p><img src="govcast-img://0" alt=""/></p>', {})
    # The preview shows the images from the website.
    assert a.url in rendition.preview_html


def test_no_images_uses_default_cover() -> None:
    rendition = render_article(snapshot(), "main")
    assert rendition.images == () and rendition.cover is None
    assert any("默认封面" in note for note in rendition.notes)


def test_cover_from_attached_image_when_body_has_none(tmp_path: Path) -> None:
    a = media(tmp_path, image_bytes(), "a.png")
    rendition = render_article(snapshot(images=(a,)), "main")
    assert rendition.images == ()
    assert rendition.cover is not None and rendition.cover.path == str(a.path)


def test_links_tables_and_lists() -> None:
    body = (
        '<p>详见<a href="https://www.gov.cn/zhengce/">中国政府网</a>和'
        '<a href="https://mp.weixin.qq.com/s/abc">往期文章</a>，'
        '<a href="mailto:x@example.org">来信</a>。</p>'
        '<p><a href="https://example.org/page">https://example.org/page</a></p>'
        "<table><thead><tr><th>项目</th><th colspan=2>金额</th></tr></thead>"
        '<tbody><tr><td rowspan="9999">个人</td><td>380元</td></tr></tbody></table>'
        "<ol><li>第一</li><li>第二</li></ol><h1>大标题</h1>"
    )
    content = render_article(snapshot(body_html=body), "main").content
    assert "中国政府网（https://www.gov.cn/zhengce/）" in content
    assert '<a href="https://mp.weixin.qq.com/s/abc">往期文章</a>' in content
    assert "mailto" not in content and "来信" in content
    assert "https://example.org/page（" not in content and "https://example.org/page" in content
    soup = BeautifulSoup(content, "html.parser")
    assert "border" in soup.find("td")["style"]
    assert soup.find_all("th")[1]["colspan"] == "2"
    assert "rowspan" not in soup.find("td").attrs
    assert [li.get_text() for li in soup.find_all("li")] == ["第一", "第二"]
    assert soup.find("h2").get_text() == "大标题"
    _check_safe(content)


PAGE = "http://127.0.0.1:8080/disclosure/11340000MB0000000X/202611-00001"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/files/2026/notice.pdf", "http://127.0.0.1:8080/files/2026/notice.pdf"),
        ("attachment.pdf", "http://127.0.0.1:8080/disclosure/11340000MB0000000X/attachment.pdf"),
        ("../guide/", "http://127.0.0.1:8080/disclosure/guide/"),
        ("?page=2", f"{PAGE}?page=2"),
        ("//www.gov.cn/zhengce/", "http://www.gov.cn/zhengce/"),
        ("  https://www.gov.cn/a  ", "https://www.gov.cn/a"),
        ("#section-2", ""),
        ("mailto:x@example.org", ""),
        ("javascript:alert(1)", ""),
        ("", ""),
    ],
)
def test_relative_links_resolve_against_the_website(href: str, expected: str) -> None:
    assert resolve_link(href, PAGE) == expected
    body = f'<p>请下载<a href="{href}">附件</a>。</p>'
    content = render_article(snapshot(body_html=body, url=PAGE), "main").content
    if expected:
        assert f"附件（{expected}）" in content
    else:
        assert "附件" in content and "（" not in content
    _check_safe(content)


def test_relative_links_without_a_website_address_stay_text() -> None:
    assert resolve_link("/files/a.pdf", "") == ""
    assert resolve_link("/files/a.pdf", "file:///srv/x") == ""


def test_oversized_content_is_cut_with_a_notice() -> None:
    body = "".join(f"<p>第{i}段：" + "内容" * 100 + "</p>" for i in range(200))
    rendition = render_article(snapshot(body_html=body), "main")
    assert len(rendition.content) < 20_000
    assert len(rendition.content.encode("utf-8")) < 1_000_000
    assert "阅读原文" in rendition.content
    assert any("截断" in note for note in rendition.notes)


def test_render_is_deterministic_and_emoji_survive(tmp_path: Path) -> None:
    a = media(tmp_path, image_bytes(), "a.png")
    pub = snapshot(
        title="🎉喜讯！我市获评“全国文明城市”👍",
        body_html=f'<p>全角标点：，。、；：？！“”‘’（）【】《》——……</p><img src="{a.url}">',
        images=(a,),
    )
    first, second = render_article(pub, "main"), render_article(pub, "main")
    assert first == second
    assert "🎉" in first.title and "👍" in first.title
    assert "，。、；：？！“”‘’（）【】《》——……" in first.content


def test_prepare_image_table() -> None:
    small = image_bytes()
    assert prepare_image(small) == (small, "image.png", "image/png")
    big = image_bytes((1400, 1000), "PNG", noise=True)
    assert len(big) > 1024 * 1024
    out, name, ctype = prepare_image(big)
    assert len(out) < 1024 * 1024 and ctype == "image/jpeg" and name == "image.jpg"
    Image.open(io.BytesIO(out)).verify()
    webp = image_bytes((50, 50), "WEBP")
    assert prepare_image(webp)[2] == "image/jpeg"
    with pytest.raises(PermanentError) as info:
        prepare_image(b"not an image at all")
    assert "图片" in info.value.message
    with pytest.raises(PermanentError):
        prepare_image(big, max_bytes=200)
    cover = plain_cover()
    assert Image.open(io.BytesIO(cover)).format == "JPEG" and len(cover) < 64 * 1024
