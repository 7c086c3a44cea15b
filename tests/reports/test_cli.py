"""``govcast report``, ``figures``, ``inspect`` and ``checks`` in process, on both databases."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from govcast import cli, runtime
from tests.conftest import make_settings
from tests.reports import seed


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> str:
    for key in list(__import__("os").environ):
        if key.startswith("GOVCAST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GOVCAST_DATABASE__URL", database_url)
    monkeypatch.setenv("GOVCAST_STORAGE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GOVCAST_LOGGING__JSON", "false")

    async def prepare() -> None:
        db = runtime.database(make_settings(tmp_path, database_url))
        settings = make_settings(tmp_path, database_url)
        await runtime.sync_offices(db, settings)
        await seed.insert(db, seed.build())
        await db.dispose()

    asyncio.run(prepare())
    return database_url


def test_report_csv_and_html(env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["report", "--year", "2025", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    data = seed.build()
    expected = sum(
        1
        for p in data.pubs
        if p.state in ("queued", "published")
        and p.published_at
        and p.published_at.astimezone(seed.ZONE).year == 2025
        and p.published_at <= seed.NOW
    )
    total = next(r for r in rows if r["row"] == "合计")
    assert total["value"] == str(expected)
    out = tmp_path / "report.html"
    assert cli.main(["report", "--year", "2025", "--format", "print", "--output", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "@page" in html and "2025年政府信息公开工作年度报告" in html and "<svg" in html
    assert not (tmp_path / "report.html.tmp").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--year", "1066"],
        ["figures", "2025-13"],
        ["figures", "x" * 10_000],
        ["figures", "2025", "--office", "nope"],
        ["checks", "add", "typo", "布署", ""],
        ["checks", "add", "severity", "no_such_check", "error"],
        ["checks", "remove", "999999"],
    ],
)
def test_bad_input_is_refused_cleanly(
    env: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("govcast: ") and "Traceback" not in err


def test_figures_json(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["figures", "2025-Q2", "--account", "wechat:main"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["period"]["label"] == "2025-Q2" and list(data["by_channel"]) in (
        [],
        ["wechat:main"],
    )


def test_check_lists_and_offline_inspection(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["checks", "add", "leader", "张建国", "市长"]) == 0
    assert cli.main(["checks", "add", "leader", "赵卫东", "市长", "--former"]) == 0
    assert cli.main(["checks", "add", "severity", "typo", "error"]) == 0
    capsys.readouterr()
    assert cli.main(["checks", "list", "leader"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2:] for line in listed] == [
        ["张建国", "市长"],
        ["赵卫东", "市长 (former)"],
    ]
    # The seed's items are long past: the home page is stale, so the run is vetoed.
    assert cli.main(["inspect", "--offline"]) == 1
    text = capsys.readouterr().out
    assert "[不通过] 首页两周未更新" in text and "[未检测] 网站无法访问" in text
    assert cli.main(["inspect", "--offline", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["vetoed"] is True and {i["code"] for i in data["items"]} >= {
        "leader_titles",
        "backdated",
    }
