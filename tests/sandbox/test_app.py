"""The sandbox inside govcast's own application, across a restart, and its CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from govcast.app import create_app
from govcast.cli import build_parser, main
from sandbox.core import SANDBOX
from tests.conftest import make_settings
from tests.sandbox.conftest import APPID, SECRET, WEIBO_TOKEN, MakeHarness
from tests.sandbox.test_wechat_api import _published, _thumb


async def test_state_survives_restart(make_harness: MakeHarness) -> None:
    first = await make_harness()
    token = await first.token()
    thumb = await _thumb(first, token)
    pub = await _published(first, token, thumb)
    _, post = await first.wb("POST", "statuses/share.json", status="重启前 http://127.0.0.1:8080/r")
    await first.client.close()
    second = await make_harness()
    # The old token is still valid after a restart: tokens live in the database.
    listed = await second.wx("freepublish/batchget", {"offset": 0, "count": 10}, token=token)
    assert listed["item"][0]["article_id"] == pub["article_id"]
    _, timeline = await second.wb("GET", "statuses/user_timeline.json")
    assert timeline["statuses"][0]["id"] == post["id"]


async def test_mounted_in_govcast_app(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    app = create_app(settings, roles={"web"})
    async with TestClient(TestServer(app)) as client:
        assert SANDBOX in app
        resp = await client.get(
            "/sandbox/wechat/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": APPID, "secret": SECRET},
        )
        assert "access_token" in await resp.json()
        resp = await client.get(
            "/sandbox/weibo/2/statuses/user_timeline.json", params={"access_token": WEIBO_TOKEN}
        )
        assert resp.status == 200
        assert (await client.get("/sandbox/")).status == 200


async def test_not_mounted_when_disabled(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, **{"sandbox.enabled": False})
    app = create_app(settings, roles={"web"})
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/sandbox/")).status == 404


def test_cli_parser() -> None:
    args = build_parser().parse_args(["sandbox", "serve", "--port", "0"])
    assert args.port == 0 and callable(args.handler)


@pytest.mark.parametrize(
    "argv",
    [["sandbox", "serve", "--port", "http"], ["sandbox", "serve", "--port", "70000"], ["sandbox"]],
)
def test_cli_rejects(argv: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sandbox.callback_timeout_seconds", "soon"),
        ("sandbox.unverified_accounts", "main"),
        ("sandbox.weibo_token_lifetime_seconds", [1]),
    ],
)
def test_bad_sandbox_settings(tmp_path: Path, key: str, value: Any) -> None:
    from govcast.settings import SettingsError

    with pytest.raises(SettingsError) as exc:
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", **{key: value})
    assert exc.value.key.startswith(key)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sandbox.followers", 0),
        ("sandbox.callback_timeout_seconds", 0),
        ("sandbox.publish_delay_seconds", -1),
    ],
)
def test_out_of_range_sandbox_settings(tmp_path: Path, key: str, value: Any) -> None:
    from govcast.settings import SettingsError

    with pytest.raises(SettingsError) as exc:
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", **{key: value})
    assert exc.value.key == key


def test_sandbox_serve_command(tmp_path: Path) -> None:
    """`govcast sandbox serve --port` answers on its own port, from a fresh data folder."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "GOVCAST_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'sb.sqlite3'}",
        "GOVCAST_STORAGE__DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "govcast.cli", "sandbox", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = (
            f"http://127.0.0.1:{port}/sandbox/wechat/cgi-bin/token?grant_type="
            f"client_credential&appid={APPID}&secret={SECRET}"
        )
        for _ in range(240):
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.25)
        else:
            raise AssertionError("sandbox did not start")
        assert '"access_token"' in body and '"expires_in": 7200' in body
    finally:
        proc.terminate()
        proc.wait(timeout=20)
