"""Settings: one frozen typed object; env overrides; bad values name the key."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from govcast.settings import Secret, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_embedded_sandbox_setup() -> None:
    settings = load_settings(env={})
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8080
    assert settings.is_sqlite and settings.database_url.endswith("/data/govcast.sqlite3")
    assert settings.sandbox.enabled
    assert settings.wechat.accounts["main"].api_base_url.endswith("/sandbox/wechat/cgi-bin")
    assert settings.weibo.accounts["main"].api_base_url.endswith("/sandbox/weibo/2")
    assert settings.workflow.review_steps == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.server.port = 1  # type: ignore[misc]


def test_environment_overrides_every_level() -> None:
    settings = load_settings(
        env={
            "GOVCAST_SERVER__PORT": "9090",
            "GOVCAST_DATABASE__URL": "postgresql+asyncpg://u@db/gov",
            "GOVCAST_WECHAT__ACCOUNTS__MAIN__TOKEN": "from-env",
            "GOVCAST_WEIBO__ACCOUNTS__DEPT__SAFE_DOMAIN": "gov.example.cn",
            "GOVCAST_SANDBOX__ENABLED": "false",
            "GOVCAST_QUEUE__QUIET_HOURS_START": "23:30",
        }
    )
    assert settings.server.port == 9090
    assert not settings.is_sqlite
    assert settings.wechat.accounts["main"].token.reveal() == "from-env"
    assert settings.weibo.accounts["dept"].safe_domain == "gov.example.cn"
    assert settings.sandbox.enabled is False
    assert settings.queue.quiet_hours_start.hour == 23


def test_secrets_never_show_in_repr() -> None:
    settings = load_settings(env={"GOVCAST_WECHAT__ACCOUNTS__MAIN__APP_SECRET": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(settings)
    assert isinstance(settings.wechat.accounts["main"].app_secret, Secret)


def test_secrets_file_outside_the_repository(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[weibo.accounts.main]\naccess_token = "real-token"\n', encoding="utf-8")
    settings = load_settings(env={"GOVCAST_SECRETS_FILE": str(secrets)})
    assert settings.weibo.accounts["main"].access_token.reveal() == "real-token"


@pytest.mark.parametrize(
    "env,key,problem",
    [
        ({"GOVCAST_SERVER__PORT": "eighty"}, "server.port", "must be an integer"),
        ({"GOVCAST_SERVER__PORT": "70000"}, "server.port", "between 1 and 65535"),
        ({"GOVCAST_WORKFLOW__REVIEW_STEPS": "4"}, "workflow.review_steps", "1, 2 or 3"),
        (
            {"GOVCAST_WECHAT__ACCOUNTS__MAIN__MODE": "secret"},
            "wechat.accounts.main.mode",
            "must be one of",
        ),
        (
            {"GOVCAST_WECHAT__ACCOUNTS__MAIN__ENCODING_AES_KEY": "short"},
            "wechat.accounts.main.encoding_aes_key",
            "43 characters",
        ),
        ({"GOVCAST_OFFICE__TIMEZONE": "Mars/Olympus"}, "office.timezone", "unknown time zone"),
        ({"GOVCAST_OFFICE__ORG_CODE": "123"}, "office.org_code", "18-character"),
        ({"GOVCAST_DATABASE__URL": "mysql://x"}, "database.url", "must start with"),
        ({"GOVCAST_SERVER__NOPE": "1"}, "server.nope", "unknown setting"),
        ({"GOVCAST_SANDBOX__ENABLED": "maybe"}, "sandbox.enabled", "true or false"),
        ({"GOVCAST_QUEUE__QUIET_HOURS_END": "25:00"}, "queue.quiet_hours_end", "HH:MM"),
        ({"GOVCAST_WEBSITE__BASE_URL": "ftp://x"}, "website.base_url", "http(s)"),
        (
            {"GOVCAST_WEIBO__ACCOUNTS__X__APP_KEY": "1"},
            "weibo.accounts.x.safe_domain",
            "safe domain",
        ),
        ({"GOVCAST__PORT": "1"}, "GOVCAST__PORT", "malformed"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env=env)
    assert caught.value.key == key
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    "content,key",
    [
        ("[server\nport = 1", "config"),
        ('[server]\nport = "x"', "server.port"),
        ("server = 3", "server"),
        ('[wechat.accounts.MAIN]\napp_id = "x"', "wechat.accounts.MAIN"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings(path, env={})
    assert caught.value.key == key


def test_a_bad_configuration_stops_start_up_with_exit_code_2_and_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCAST_")}
    env["GOVCAST_SERVER__PORT"] = "not-a-port"
    result = subprocess.run(
        [sys.executable, "-m", "govcast.cli", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "govcast: configuration error: server.port: must be an integer, not 'not-a-port'"
    ]
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "govcast.cli",
            "--config",
            str(tmp_path / "nope.toml"),
            "db",
            "upgrade",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_lists_from_file_and_environment(tmp_path: Path) -> None:
    from govcast.settings import _coerce

    assert _coerce(tuple[str, ...], ["a", "b"], "x") == ("a", "b")
    with pytest.raises(SettingsError, match=r"x\[1\]: must be a string"):
        _coerce(tuple[str, ...], ["a", 2], "x")
    with pytest.raises(SettingsError, match="must be a list"):
        _coerce(tuple[str, ...], "a", "x")
