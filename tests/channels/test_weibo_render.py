"""Table and property tests of the pure Weibo renderer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.base import ConfigurationError
from channels.weibo_render import (
    CATEGORY_TAGS,
    CORRECTION_MARK,
    STATUS_LIMIT,
    compose_status,
    on_safe_domain,
    render_status,
)
from tests.channels.helpers import image_bytes, media, snapshot

LINK = "http://127.0.0.1:8080/disclosure/11340000MB0000000X/202611-00001"


@pytest.mark.parametrize(
    ("title", "summary", "tag", "expected"),
    [
        (
            "医保缴费通知",
            "10月至12月缴费。请按时缴费。",
            "",
            f"【医保缴费通知】10月至12月缴费。请按时缴费。 {LINK}",
        ),
        ("医保缴费通知", "", "#服务公开#", f"【医保缴费通知】 {LINK} #服务公开#"),
        ("医保缴费通知", "医保缴费通知", "", f"【医保缴费通知】 {LINK}"),
        ("关" * 100, "摘要", "", None),
        ("短标题", "第一句比较长的说明文字。" * 10, "", None),
        ("🎉喜讯", "我市获评“全国文明城市”👍！全角标点：，。", "", None),
    ],
)
def test_compose_status_table(title: str, summary: str, tag: str, expected: str | None) -> None:
    status, head, _notes = compose_status(title, summary, LINK, tag=tag)
    assert len(status) <= STATUS_LIMIT
    assert LINK in status and status.startswith(head) and head.startswith("【")
    if tag:
        assert status.endswith(tag)
    if expected is not None:
        assert status == expected


def test_summary_cut_on_sentence_boundary() -> None:
    summary = "第一句说明缴费时间。第二句说明缴费渠道和注意事项。" * 5
    status, head, notes = compose_status("医保缴费", summary, LINK)
    body = status[len(head) :].rsplit(" ", 1)[0]
    assert body.endswith("。") and len(status) <= STATUS_LIMIT
    assert notes


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(min_size=1, max_size=200).filter(lambda t: t.strip()),
    summary=st.text(max_size=600),
    hashtags=st.booleans(),
    correction=st.booleans(),
)
def test_every_post_fits_and_links(
    title: str, summary: str, hashtags: bool, correction: bool
) -> None:
    rendition = render_status(
        snapshot(title=title, summary=summary),
        "main",
        safe_domain="127.0.0.1",
        hashtags=hashtags,
        correction=correction,
    )
    assert len(rendition.status) <= STATUS_LIMIT
    assert len(rendition.correction_status) <= STATUS_LIMIT
    assert LINK in rendition.status
    assert rendition.correction_status.startswith(CORRECTION_MARK)
    assert rendition.status.startswith(rendition.head)
    if hashtags:
        assert CATEGORY_TAGS["service"] in rendition.status


def test_link_must_be_on_the_safe_domain() -> None:
    with pytest.raises(ConfigurationError) as info:
        render_status(snapshot(), "main", safe_domain="gov.example.cn")
    assert "safe_domain" in info.value.message
    assert on_safe_domain("https://www.gov.example.cn/x", "gov.example.cn")
    assert on_safe_domain("https://gov.example.cn/x", "gov.example.cn")
    assert not on_safe_domain("https://evilgov.example.cn/x", "gov.example.cn")
    assert not on_safe_domain("javascript://gov.example.cn/x", "gov.example.cn")
    assert not on_safe_domain("https://gov.example.cn.evil.com/x", "gov.example.cn")


def test_first_image_is_attached_and_previewed(tmp_path: Path) -> None:
    a = media(tmp_path, image_bytes(seed=3), "a.png")
    b = media(tmp_path, image_bytes((20, 20)), "b.png")
    doc = media(tmp_path, b"%PDF-1.4", "a.pdf", "application/pdf")
    rendition = render_status(
        snapshot(images=(a, b), attachments=(doc,)), "main", safe_domain="127.0.0.1"
    )
    assert rendition.pic_path == str(a.path)
    assert a.url in rendition.preview_html
    assert render_status(snapshot(), "main", safe_domain="127.0.0.1").pic_path is None


def test_render_escapes_preview() -> None:
    rendition = render_status(
        snapshot(title="<script>alert(1)</script>", summary="<img src=x onerror=1>"),
        "main",
        safe_domain="127.0.0.1",
    )
    assert "<script>" not in rendition.preview_html
    assert "<img src=x" not in rendition.preview_html
    assert "<script>alert(1)</script>" in rendition.status  # plain text on Weibo
