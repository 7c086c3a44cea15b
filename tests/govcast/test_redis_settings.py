"""``[redis]``: off by default, env override, bad URLs exit 2 naming the key (and never
quoting the password), a missing package is a configuration error, the app wiring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.web import BOT
from channels.base import ChannelRegistry
from channels.wechat import WeChatChannel
from govcast import keys
from govcast.app import create_app
from govcast.rediscache import SharedRedis, mask_url
from govcast.settings import Secret, Settings, SettingsError, load_settings
from tests.conftest import make_settings
from tests.redis_helpers import REDIS_URL, flush

PASSWORD = "pa55-word-never-shown"


def test_off_by_default() -> None:
    settings = load_settings(env={})
    assert settings.redis.url == "" and not settings.redis.url
    assert settings.redis.key_prefix == "govcast:"


def test_environment_sets_the_url_and_repr_hides_it() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:6379/2"
    settings = load_settings(
        env={"GOVCAST_REDIS__URL": url, "GOVCAST_REDIS__KEY_PREFIX": "city-a:"}
    )
    assert isinstance(settings.redis.url, Secret)
    assert settings.redis.url.reveal() == url
    assert settings.redis.key_prefix == "city-a:"
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    "url,problem",
    [
        (f"http://:{PASSWORD}@127.0.0.1:6379", "must start with redis://"),
        (f"postgresql://u:{PASSWORD}@h/db", "must start with redis://"),
        ("127.0.0.1:6379", "must start with redis://"),
        ("redis:/127.0.0.1", "must start with redis://"),
        ("REDIS://127.0.0.1", "must start with redis://"),
        ("redis://", "must name a host"),
        (f"redis://:{PASSWORD}@:6379/0", "must name a host"),
        (f"redis://:{PASSWORD}@127.0.0.1:99999/0", "valid port"),
        (f"redis://:{PASSWORD}@127.0.0.1:port/0", "valid port"),
        ("redis://127.0.0.1:0/0", "between 1 and 65535"),
        (f"redis://:{PASSWORD}@127.0.0.1:6379/cache", "database number"),
        (f"redis://:{PASSWORD}@127.0.0.1 :6379", "without spaces"),
        ("redis://127.0.0.1\n:6379", "without spaces"),
        ("unix://relative/path.sock", "absolute path"),
        ("unix://", "absolute path"),
        ("redis://" + "h" * 3000, "without spaces"),
    ],
)
def test_bad_urls_name_the_key_and_hide_the_password(url: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"GOVCAST_REDIS__URL": url})
    assert caught.value.key == "redis.url"
    assert problem in caught.value.problem
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        f"redis://default:{PASSWORD}@cache.internal:6380/3",
        "rediss://cache.internal",
        "redis://[::1]:6379",
        "unix:///run/redis/redis.sock",
        f"unix:///run/redis/redis.sock?db=2&password={PASSWORD}",
    ],
)
def test_good_urls(url: str) -> None:
    assert load_settings(env={"GOVCAST_REDIS__URL": url}).redis.url.reveal() == url


@pytest.mark.parametrize(
    "env,key",
    [
        ({"GOVCAST_REDIS__KEY_PREFIX": "has space"}, "redis.key_prefix"),
        ({"GOVCAST_REDIS__KEY_PREFIX": "x" * 65}, "redis.key_prefix"),
        ({"GOVCAST_REDIS__KEY_PREFIX": "*"}, "redis.key_prefix"),
        ({"GOVCAST_REDIS__TIMEOUT_SECONDS": "0"}, "redis.timeout_seconds"),
        ({"GOVCAST_REDIS__TIMEOUT_SECONDS": "30"}, "redis.timeout_seconds"),
        ({"GOVCAST_REDIS__TIMEOUT_SECONDS": "fast"}, "redis.timeout_seconds"),
        ({"GOVCAST_REDIS__RETRY_AFTER_SECONDS": "-1"}, "redis.retry_after_seconds"),
        ({"GOVCAST_REDIS__HOST": "x"}, "redis.host"),
    ],
)
def test_other_bad_values(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env=env)
    assert caught.value.key == key


def test_missing_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if `pip install govcast` without the [redis] extra: importing redis fails.
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(SettingsError) as caught:
        load_settings(env={"GOVCAST_REDIS__URL": "redis://127.0.0.1:6379/0"})
    assert caught.value.key == "redis.url"
    assert "not installed" in caught.value.problem
    # Off, the package is never needed.
    assert not load_settings(env={}).redis.url


def _run(tmp_path: Path, env_extra: dict[str, str], code: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVCAST_")}
    env.update(env_extra)
    args = [sys.executable, "-c", code] if code else [sys.executable, "-m", "govcast.cli", "serve"]
    return subprocess.run(
        args,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_url_stops_start_up_with_exit_2_and_one_masked_line(tmp_path: Path) -> None:
    result = _run(tmp_path, {"GOVCAST_REDIS__URL": f"http://admin:{PASSWORD}@cache.internal"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "govcast: configuration error: redis.url: must start with redis://, rediss:// or unix://"
    ]
    assert PASSWORD not in result.stderr + result.stdout


def test_a_missing_package_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['redis'] = None; sys.modules['redis.asyncio'] = None\n"
        "from govcast.cli import main\n"
        "sys.exit(main(['serve']))\n"
    )
    result = _run(tmp_path, {"GOVCAST_REDIS__URL": f"redis://:{PASSWORD}@127.0.0.1:6379/0"}, code)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("govcast: configuration error: redis.url:")
    assert "not installed" in lines[0] and PASSWORD not in result.stderr


def test_mask_url() -> None:
    assert mask_url(f"redis://user:{PASSWORD}@cache.internal:6380/3") == (
        "redis://****@cache.internal:6380/3"
    )
    assert mask_url(f"rediss://:{PASSWORD}@cache.internal") == "rediss://****@cache.internal:6379/0"
    assert mask_url("redis://[::1]:6379") == "redis://[::1]:6379/0"
    assert mask_url(f"unix:///run/redis.sock?password={PASSWORD}") == "unix:///run/redis.sock"
    assert mask_url("redis://h:notaport") == "redis://(malformed)"


# --- the application wiring ---------------------------------------------------------------------


def _app_settings(tmp_path: Path, database_url: str, **extra: Any) -> Settings:
    return make_settings(tmp_path, database_url, **{"sandbox.enabled": False, **extra})


async def test_app_without_redis_has_no_client(
    aiohttp_client: Any, tmp_path: Path, database_url: str
) -> None:
    client = await aiohttp_client(create_app(_app_settings(tmp_path, database_url), {"web"}))
    app = client.server.app
    assert app.get(keys.REDIS) is None
    assert app[BOT].store.redis is None


async def test_app_with_redis_shares_one_client(
    aiohttp_client: Any, tmp_path: Path, database_url: str
) -> None:
    prefix = f"govcast-app-{os.getpid()}:"
    settings = _app_settings(
        tmp_path,
        database_url,
        **{"redis.url": REDIS_URL, "redis.key_prefix": prefix, "redis.timeout_seconds": 5.0},
    )
    try:
        client = await aiohttp_client(create_app(settings, {"web"}))
        app = client.server.app
        shared = app[keys.REDIS]
        assert isinstance(shared, SharedRedis) and shared.prefix == prefix
        assert app[BOT].store.redis is shared
        registry = app[keys.CHANNELS]
        assert isinstance(registry, ChannelRegistry)
        wechat = registry["wechat"]
        assert isinstance(wechat, WeChatChannel)
        assert wechat.api("main").tokens.redis is shared
        assert await shared.client.ping()
        pool = shared.client.connection_pool
        assert any(c.is_connected for c in pool._available_connections)
        await client.close()
        # Closed with the application: no connection is left open.
        assert not any(c.is_connected for c in pool._available_connections)
    finally:
        await flush(prefix)
