"""The command line, end to end in subprocesses, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

PUBLICATION = """+++
title = "关于2026年城乡居民医保集中缴费的通知"
kind = "disclosure"
category = "service"
issuing_body = "示例市医疗保障局"
document_number = "示医保〔2026〕3号"
keywords = ["医保", "缴费"]
+++
城乡居民医保集中缴费期为10月至12月。

![缴费流程图](flow.png)
"""


class Cli:
    def __init__(self, config: Path, cwd: Path) -> None:
        self.config = config
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCAST_")}

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "govcast.cli", "--config", str(self.config), *args]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cmd(*args),
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def show(self, publication_id: str) -> dict[str, Any]:
        return json.loads(self.ok("publication", "show", publication_id, "--json"))


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[database]\nurl = "{database_url}"\n[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        "[queue]\npoll_interval_seconds = 0.05\n[logging]\njson = true\n",
        encoding="utf-8",
    )
    return Cli(config, tmp_path)


def test_publication_lifecycle_through_the_command_line(cli: Cli, tmp_path: Path) -> None:
    assert "up to date" in cli.ok("db", "upgrade")
    for name, role in [
        ("wang", "editor"),
        ("li", "reviewer"),
        ("zhou", "reviewer"),
        ("zhao", "approver"),
    ]:
        out = cli.ok(
            "user", "add", name, "--role", role, "--password-stdin", stdin="a long passphrase 123\n"
        )
        assert f"user {name} added" in out
    weak = cli.run("user", "add", "weak", "--role", "editor", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and "at least 10 characters" in weak.stderr
    duplicate = cli.run(
        "user",
        "add",
        "wang",
        "--role",
        "editor",
        "--password-stdin",
        stdin="a long passphrase 123\n",
    )
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr

    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "flow.png")
    (tmp_path / "notice.md").write_text(PUBLICATION, encoding="utf-8")
    out = cli.ok("publication", "add", str(tmp_path / "notice.md"), "--as", "wang")
    publication_id = out.split()[-1]
    assert publication_id.isdigit()
    shown = cli.show(publication_id)
    assert shown["state"] == "in_review" and shown["channels"] == ["website"]

    own = cli.run("publication", "review", publication_id, "--as", "wang", "--approve")
    assert own.returncode == 1 and "own draft" in own.stderr
    cli.ok("publication", "review", publication_id, "--as", "li", "--approve")
    cli.ok("publication", "review", publication_id, "--as", "zhou", "--approve")
    out = cli.ok("publication", "review", publication_id, "--as", "zhao", "--approve")
    assert "queued" in out
    shown = cli.show(publication_id)
    assert shown["index_number"].startswith("11340000MB0000000X/")
    assert [(d["channel"], d["state"]) for d in shown["deliveries"]] == [("website", "pending")]

    worker = subprocess.Popen(
        cli.cmd("worker"), cwd=cli.cwd, env=cli.env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = cli.show(publication_id)
            if shown["deliveries"][0]["state"] == "done":
                break
            time.sleep(0.2)
        assert shown["deliveries"][0]["state"] == "done"
        assert shown["deliveries"][0]["remote_url"].endswith(shown["index_number"])
        assert shown["state"] == "published"
        text = cli.ok("publication", "show", publication_id)
        assert "website:main" in text and "done" in text

        cli.ok("publication", "withdraw", publication_id, "--as", "zhao", "--reason", "数据有误")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = cli.show(publication_id)
            if [d["state"] for d in shown["deliveries"]] == ["done", "done"]:
                break
            time.sleep(0.2)
        assert [(d["action"], d["state"]) for d in shown["deliveries"]] == [
            ("publish", "done"),
            ("retract", "done"),
        ]
        assert shown["state"] == "withdrawn"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0
    # Structured logs, and no secret of the default settings in them.
    assert '"msg": "delivered"' in stderr
    assert "sandbox-app-secret-main" not in stderr


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["publication", "show", "99999"], 1, "no publication 99999"),
        (["publication", "review", "99999", "--as", "nobody", "--approve"], 1, "no active user"),
        (["publication", "add", "/nonexistent/file.md"], 1, "cannot read"),
        (["user", "add", "x y", "--role", "editor", "--password-stdin"], 1, "letters, digits"),
        (["user", "add", "ok", "--role", "mayor"], 2, "invalid choice"),
        (["publication", "review", "1", "--as", "x"], 2, "one of the arguments"),
    ],
)
def test_bad_command_line_input(cli: Cli, args: list[str], code: int, message: str) -> None:
    cli.ok("db", "upgrade")
    result = cli.run(*args, stdin="a long passphrase 123\n")
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
