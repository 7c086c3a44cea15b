"""``govcast holidays import/list``: the editable calendar from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bot.cases import cli
from govcast.settings import Settings


def test_import_then_list(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "2027.csv"
    good.write_text("2027-02-06,workday,春节调休上班\n2026-10-10,normal\n", encoding="utf-8")
    assert cli.import_holidays(settings, argparse.Namespace(file=str(good))) == 0
    assert cli.list_holidays(settings, argparse.Namespace(year=None)) == 0
    out = capsys.readouterr().out
    assert "2027-02-06,workday,春节调休上班" in out
    assert "2026-10-10" not in out and "2026-10-01,holiday,国庆节" in out


@pytest.mark.parametrize("content", ["2027-02-30,holiday\n", "garbage", "2027-01-01,x\n"])
def test_bad_files_change_nothing(
    settings: Settings, tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("2027-01-05,holiday\n" + content, encoding="utf-8")
    assert cli.import_holidays(settings, argparse.Namespace(file=str(bad))) == 2
    assert cli.import_holidays(settings, argparse.Namespace(file=str(tmp_path / "no"))) == 2
    big = tmp_path / "big.csv"
    big.write_bytes(b"#" * (2 * 1024 * 1024))
    assert cli.import_holidays(settings, argparse.Namespace(file=str(big))) == 2
    cli.list_holidays(settings, argparse.Namespace(year=2027))
    assert "2027-01-05" not in capsys.readouterr().out
