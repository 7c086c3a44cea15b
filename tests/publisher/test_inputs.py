"""Bad publication input gets a clear error naming the field; hostile HTML is neutralised."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.errors import ValidationError
from publisher.inputs import parse_publication_file, publication_from_fields
from publisher.markup import cut, html_to_text, markdown_to_html, sanitize_html

GOOD = """+++
title = "关于2026年城乡居民医保集中缴费的通知"
kind = "disclosure"
category = "service"
issuing_body = "六安市医疗保障局"
document_number = "六医保〔2026〕3号"
written_on = 2026-10-20
keywords = ["医保", "缴费"]
channels = ["website", "wechat:main", "weibo:main"]
publish_at = 2030-12-01T09:00:00+08:00
+++
# 缴费时间

城乡居民医保集中缴费期为 **10月至12月**。
"""


def write(tmp_path: Path, text: str, name: str = "p.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_parses(tmp_path: Path) -> None:
    data = parse_publication_file(write(tmp_path, GOOD), max_body_chars=200_000)
    assert data.title.startswith("关于2026年")
    assert data.document_number == "六医保〔2026〕3号"
    assert (
        data.publish_at is not None and data.publish_at.isoformat() == "2030-12-01T01:00:00+00:00"
    )
    assert "<h2>缴费时间</h2>" in data.body_html and "<strong>10月至12月</strong>" in data.body_html
    assert data.channels == ["website", "wechat:main", "weibo:main"]


@pytest.mark.parametrize(
    "text,field,message",
    [
        ("no front matter at all", "front_matter", "must start with +++"),
        ('+++\ntitle = "x"\n', "front_matter", "must start with +++"),
        ("+++\ntitle = \n+++\nbody", "front_matter", "invalid TOML"),
        (
            '+++\ntitle="t"\ncategory="nonsense"\nissuing_body="b"\n+++\nbody',
            "category",
            "unknown value 'nonsense'",
        ),
        ('+++\ntitle="t"\nissuing_body="b"\n+++\nbody', "category", "is required"),
        ('+++\ncategory="service"\nissuing_body="b"\n+++\nbody', "title", "is required"),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\nkind="poem"\n+++\nbody',
            "kind",
            "unknown value",
        ),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\ncolour="red"\n+++\nbody',
            "colour",
            "unknown field",
        ),
        ('+++\ntitle="t"\ncategory="service"\nissuing_body="b"\n+++\n   ', "body", "is required"),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\nurgent="yes"\n+++\nbody',
            "urgent",
            "true or false",
        ),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\npublish_at=2026-12-01T09:00:00\n+++\nbody',
            "publish_at",
            "UTC offset",
        ),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\nwritten_on="yesterday"\n+++\nbody',
            "written_on",
            "YYYY-MM-DD",
        ),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\nchannels=["website", "WeChat!"]\n+++\nbody',
            "channels",
            "is not a target",
        ),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\nkeywords="医保"\n+++\nbody',
            "keywords",
            "list of strings",
        ),
        (
            '+++\ntitle="' + "长" * 301 + '"\ncategory="service"\nissuing_body="b"\n+++\nbody',
            "title",
            "longer than 300",
        ),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\nbody="x"\n+++\nbody',
            "front_matter",
            "after the closing",
        ),
        (
            '+++\ntitle="t"\nkind="solicitation"\ncategory="decision"\nissuing_body="b"\n+++\nbody',
            "solicitation_closes_at",
            "needs",
        ),
        ('+++\ntitle="t\\u0000"\ncategory="service"\nissuing_body="b"\n+++\nbody', "title", "NUL"),
        (
            '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\nexplanation_url="javascript:alert(1)"\n+++\nbody',
            "explanation_url",
            "http(s) URL",
        ),
    ],
)
def test_malformed_files_get_a_clear_error(
    tmp_path: Path, text: str, field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_publication_file(write(tmp_path, text), max_body_chars=200_000)
    assert caught.value.field == field
    assert message in caught.value.message


def test_oversized_body_and_file_are_refused(tmp_path: Path) -> None:
    big = '+++\ntitle="t"\ncategory="service"\nissuing_body="b"\n+++\n' + "字" * 3000
    with pytest.raises(ValidationError, match="body: longer than 1000"):
        parse_publication_file(write(tmp_path, big), max_body_chars=1000)
    huge = tmp_path / "huge.md"
    huge.write_bytes(b"+++\n" + b"a" * (5 * 1024 * 1024))
    with pytest.raises(ValidationError, match="larger than 4 MB"):
        parse_publication_file(huge, max_body_chars=10**9)
    binary = tmp_path / "bin.md"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValidationError, match="not UTF-8"):
        parse_publication_file(binary, max_body_chars=1000)


def test_json_files(tmp_path: Path) -> None:
    ok = write(
        tmp_path,
        '{"title": "t", "category": "results", "issuing_body": "b", "body_html": "<p>x</p>"}',
        "p.json",
    )
    assert parse_publication_file(ok, max_body_chars=1000).category == "results"
    for text, message in [("[1, 2]", "must be an object"), ("{bad json", "invalid JSON")]:
        with pytest.raises(ValidationError, match=message):
            parse_publication_file(write(tmp_path, text, "bad.json"), max_body_chars=1000)


def test_images_outside_the_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    text = GOOD + "\n![secret](../../etc/passwd)\n"
    with pytest.raises(ValidationError, match="outside the file's folder"):
        parse_publication_file(write(tmp_path / "sub", text), max_body_chars=200_000)
    with pytest.raises(ValidationError, match="not found"):
        parse_publication_file(
            write(tmp_path, GOOD + "\n![x](missing.png)\n"), max_body_chars=200_000
        )


HOSTILE = [
    ("<script>alert(1)</script><p>ok</p>", "<script", "<p>ok</p>"),
    ('<p onclick="steal()">hi</p>', "onclick", "<p>hi</p>"),
    ('<a href="javascript:alert(1)">x</a>', "javascript:", ">x</a>"),
    ('<a href="JaVaScRiPt:alert(1)">x</a>', "alert", ">x</a>"),
    ('<img src="x.png" onerror="alert(1)" alt="a">', "onerror", 'alt="a"'),
    ('<iframe src="https://evil.example"></iframe><p>t</p>', "iframe", "<p>t</p>"),
    ('<form action="/steal"><input name="p"></form>', "<form", ""),
    ("<style>body{display:none}</style><p>s</p>", "<style", "<p>s</p>"),
    ('<p style="background:url(javascript:alert(1))">s</p>', "style=", "<p>s</p>"),
    ('<svg onload="alert(1)"><circle/></svg>', "onload", ""),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">d</a>', "data:", ">d</a>"),
    ("<p>unclosed <b>bold", "<script", "<b>bold</b>"),
]


@pytest.mark.parametrize("html,forbidden,kept", HOSTILE)
def test_hostile_html_is_sanitized(html: str, forbidden: str, kept: str) -> None:
    clean = sanitize_html(html)
    assert forbidden.lower() not in clean.lower()
    assert kept in clean
    data = publication_from_fields(
        {
            "title": "t",
            "category": "service",
            "issuing_body": "b",
            "body_html": html + "<p>正文</p>",
        },
        max_body_chars=10_000,
    )
    assert forbidden.lower() not in data.body_html.lower()


def test_markdown_raw_html_is_escaped_not_rendered() -> None:
    html = markdown_to_html("<script>alert(1)</script>\n\n[x](javascript:alert(1))")
    assert "<script" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html


@pytest.mark.parametrize(
    "text,limit,expected",
    [
        ("关于医保缴费的通知", 20, "关于医保缴费的通知"),
        ("一二三四五六七八九十", 5, "一二三四…"),
        ("😀😀😀", 2, "😀…"),
    ],
)
def test_cut_on_character_boundaries(text: str, limit: int, expected: str) -> None:
    assert cut(text, limit) == expected


def test_html_to_text() -> None:
    assert html_to_text("<p>一</p><p>二  三</p>") == "一 二 三"


def test_nul_in_list_entries_is_refused() -> None:
    with pytest.raises(ValidationError, match="keywords: contains a NUL"):
        publication_from_fields(
            {
                "title": "t",
                "category": "service",
                "issuing_body": "b",
                "body": "x",
                "keywords": ["a\x00b"],
            },
            max_body_chars=1000,
        )
