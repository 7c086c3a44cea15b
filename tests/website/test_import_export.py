"""`govcast import FILE.jsonl` and `govcast website export DIR` through the real CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.models import WebsiteEntry
from govcast import cli, runtime
from govcast.settings import Settings
from publisher.models import Delivery, Publication
from website import search
from website.export import file_for

ORG = "11340000MB0000000X"


def _line(**fields: Any) -> str:
    base: dict[str, Any] = {
        "title": "关于做好2025年社保缴费工作的通知",
        "kind": "disclosure",
        "category": "service",
        "issuing_body": "示例市人力资源和社会保障局",
        "body": "请各单位按时为职工缴纳**社保**费用。",
        "published_at": "2025-03-01T09:00:00+08:00",
    }
    base.update(fields)
    return json.dumps(base, ensure_ascii=False)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    monkeypatch.setenv("GOVCAST_DATABASE__URL", settings.database_url)
    monkeypatch.setenv("GOVCAST_STORAGE__DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("GOVCAST_CONFIG", raising=False)
    return settings


def _query(settings: Settings, fn: Any) -> Any:
    async def run() -> Any:
        db = runtime.database(settings)
        try:
            return await fn(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_import_streams_rejects_and_resumes(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        _line(index_number=f"{ORG}/202503-00007", document_number="示人社〔2025〕7号"),
        "{not json",
        "[1, 2]",
        _line(title=""),
        _line(category="evil"),
        _line(published_at=(datetime.now(UTC) + timedelta(days=3)).isoformat()),
        _line(index_number=f"{ORG}/202503-00007"),
        _line(index_number="../../etc/passwd"),
        "",
        _line(
            title="医保报销指南",
            body="<script>alert(1)</script>医保报销需要携带医保卡。",
            published_at="2024-06-01T00:00:00Z",
            channels=["wechat:main"],
            push=True,
        ),
        _line(title="x" * 10, body="长" * 2_100_000),
        _line(title="英文版测试", title_en="English test", body_html_en="<p>Hello</p>"),
    ]
    source = tmp_path / "catalog.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = tmp_path / "rejected.tsv"
    assert cli.main(["import", str(source), "--report", str(report)]) == 1
    out = capsys.readouterr()
    assert "imported 3, rejected 8" in out.out
    for number in (2, 3, 4, 5, 6, 7, 8, 11):
        assert f"line {number}: rejected" in out.err
    assert "already in the catalog" in out.err and "in the future" in out.err
    assert len(report.read_text(encoding="utf-8").splitlines()) == 8

    async def check(db: Any) -> None:
        async with db.sessions() as session:
            pubs = list((await session.execute(select(Publication))).scalars())
            assert len(pubs) == 3
            assert all(p.imported and p.state == "published" for p in pubs)
            assert all(p.channels == ["website"] and not p.push for p in pubs)
            assert f"{ORG}/202503-00007" in {p.index_number for p in pubs}
            generated = next(p.index_number for p in pubs if p.title == "医保报销指南")
            assert generated.startswith(f"{ORG}/202406-")
            assert "<script>" not in "".join(p.body_html for p in pubs)
            assert (await session.execute(select(func.count()).select_from(Delivery))).scalar() == 0
            live = (await session.execute(select(func.count()).select_from(WebsiteEntry))).scalar()
            assert live == 3
        found = await search.search(db, "示人社〔2025〕7号")
        assert [h.index_number for h in found.items] == [f"{ORG}/202503-00007"]
        assert (await search.search(db, "医保卡")).total == 1

    _query(env, check)

    # A rerun resumes after the last line: nothing imported twice.
    assert cli.main(["import", str(source)]) == 0
    assert "imported 0, rejected 0, resumed after line 12" in capsys.readouterr().out
    # Lines appended later are picked up from where the last run stopped.
    with source.open("a", encoding="utf-8") as handle:
        handle.write(_line(title="追加的第十三行", index_number=f"{ORG}/202503-00099") + "\n")
    assert cli.main(["import", str(source)]) == 0
    assert "imported 1, rejected 0, resumed after line 12" in capsys.readouterr().out


def test_import_refuses_unreadable_files(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["import", str(tmp_path / "missing.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes(_line().encode() + b"\n" + "caf\xe9".encode("latin-1") + b"\n")
    assert cli.main(["import", str(binary)]) == 1
    captured = capsys.readouterr()
    assert "line 2: rejected: not UTF-8 text" in captured.err
    assert "imported 1, rejected 1" in captured.out


def test_full_export_writes_every_page(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "catalog.jsonl"
    source.write_text(
        "\n".join(
            _line(
                title=f"导出测试{i}",
                index_number=f"{ORG}/202503-{i:05d}",
                title_en=f"Export {i}" if i == 1 else None,
                body_html_en="<p>English</p>" if i == 1 else None,
            )
            for i in range(1, 6)
        ).replace(', "title_en": null, "body_html_en": null', "")
        + "\n",
        encoding="utf-8",
    )
    assert cli.main(["import", str(source)]) == 0
    out_dir = tmp_path / "site"
    assert cli.main(["website", "export", str(out_dir)]) == 0
    assert "exported" in capsys.readouterr().out
    item = file_for(out_dir, f"/disclosure/{ORG}/202503-00001")
    assert item.is_file() and "导出测试1" in item.read_text(encoding="utf-8")
    assert file_for(out_dir, f"/en/disclosure/{ORG}/202503-00001").is_file()
    assert not file_for(out_dir, f"/en/disclosure/{ORG}/202503-00002").exists()
    for address in (
        "/",
        "/en/",
        "/disclosure/",
        "/disclosure/category/service/",
        "/disclosure/column/guide/",
        "/disclosure/archive/",
        "/disclosure/archive/2025-03/",
        "/disclosure/archive/2025-03/2025-03-01",
    ):
        html = file_for(out_dir, address).read_text(encoding="utf-8")
        assert "<form" not in html  # static pages have no server to answer forms
    assert (out_dir / "sitemap.xml").is_file() and (out_dir / "feed.atom").is_file()
    assert (out_dir / "static" / "website" / "site.css").is_file()
    plain = tmp_path / "file.txt"
    plain.write_text("x")
    assert cli.main(["website", "export", str(plain)]) == 1
    with pytest.raises(ValueError):
        file_for(out_dir, "/../../etc/passwd")
