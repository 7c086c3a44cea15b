"""One frozen, typed settings object, loaded once at start-up and passed explicitly.

Sources, later ones winning: the TOML file (``settings.toml`` at the repository root, or
``--config PATH`` / ``GOVCAST_CONFIG``), an optional secrets file outside the repository
(``GOVCAST_SECRETS_FILE``, same TOML shape), then environment variables
``GOVCAST_<SECTION>__<KEY>`` (``__`` between levels, e.g.
``GOVCAST_WECHAT__ACCOUNTS__MAIN__TOKEN``).

Any problem raises :class:`SettingsError` naming the dotted key, so the CLI can print one
line and exit with status 2.
"""

from __future__ import annotations

import dataclasses
import importlib
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "settings.toml"
ENV_PREFIX = "GOVCAST_"
# Environment variables that select sources rather than override keys.
_SOURCE_VARS = {"GOVCAST_CONFIG", "GOVCAST_SECRETS_FILE"}


class SettingsError(Exception):
    """A configuration problem; ``key`` is the dotted settings key at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class Secret(str):
    """A string that never shows itself in repr, logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('********')" if self else "Secret('')"

    def reveal(self) -> str:
        """Return the plain value, for the one place that must send it."""
        return str.__str__(self)


_NO_SECRET = Secret("")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 8 * 1024 * 1024
    shutdown_grace_seconds: float = 10.0
    # Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For/-Proto/-Host are
    # believed. Empty (the default): none, the TCP peer is the client. docs/deployment.md.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatabaseSettings:
    # Empty means the embedded default: a SQLite file in the data folder.
    url: str = ""
    pool_size: int = 10
    echo: bool = False


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path = Path("data")
    max_upload_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class OfficeSettings:
    key: str = "main"
    name: str = "示例市人民政府办公室"
    org_code: str = "11340000MB0000000X"
    timezone: str = "Asia/Shanghai"

    @property
    def zone(self) -> ZoneInfo:
        """The office's time zone."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class ExtraOfficeSettings:
    name: str = ""
    org_code: str = ""


@dataclass(frozen=True)
class WebsiteSettings:
    base_url: str = "http://127.0.0.1:8080"
    site_name: str = "示例市人民政府"
    site_name_en: str = "Example Municipal People's Government"
    site_domain: str = "127.0.0.1"
    site_id_code: str = "3400000000"
    page_size: int = 20
    # Static export folder kept current on every publish/correct/withdraw; empty = none.
    export_dir: str = ""


WechatMode = Literal["plain", "compatible", "safe"]
WechatAccountType = Literal["subscription", "service"]


@dataclass(frozen=True)
class WechatAccountSettings:
    app_id: str = ""
    app_secret: Secret = _NO_SECRET
    token: Secret = _NO_SECRET
    encoding_aes_key: Secret = _NO_SECRET
    mode: WechatMode = "plain"
    api_base_url: str = "https://api.weixin.qq.com/cgi-bin"
    account_type: WechatAccountType = "service"
    name: str = ""
    office: str = ""
    default_cover: str = ""
    per_minute: int = 60
    # Open the comment area (留言) under published articles (need_open_comment).
    open_comments: bool = True


@dataclass(frozen=True)
class WechatSettings:
    accounts: Mapping[str, WechatAccountSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class WeiboAccountSettings:
    app_key: str = ""
    access_token: Secret = _NO_SECRET
    safe_domain: str = ""
    api_base_url: str = "https://api.weibo.com/2"
    name: str = ""
    office: str = ""
    posts_per_hour: int = 30
    hashtags: bool = False


@dataclass(frozen=True)
class WeiboSettings:
    accounts: Mapping[str, WeiboAccountSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkflowSettings:
    review_steps: int = 3
    max_body_chars: int = 200_000


@dataclass(frozen=True)
class QueueSettings:
    lease_seconds: float = 60.0
    max_attempts: int = 12
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 900.0
    batch_size: int = 64
    concurrency: int = 64
    poll_interval_seconds: float = 0.2
    quiet_hours_start: time = time(22, 0)
    quiet_hours_end: time = time(7, 0)


@dataclass(frozen=True)
class SchedulerSettings:
    tick_seconds: float = 5.0
    enabled: bool = True


@dataclass(frozen=True)
class SandboxSettings:
    enabled: bool = True
    seed: int = 20190701
    followers: int = 3000
    publish_delay_seconds: float = 1.0
    # Where WeChat's pushes (citizen messages, PUBLISHJOBFINISH) go; empty: this server.
    callback_base_url: str = ""
    # WeChat account keys that are unverified (48001 on publishing) or subscription
    # accounts (mass send 1/day), and accounts without the comment privilege (88000).
    unverified_accounts: tuple[str, ...] = ()
    subscription_accounts: tuple[str, ...] = ()
    no_comment_accounts: tuple[str, ...] = ()
    # Weibo OAuth token lifetime from its first use (a developer's own app: years).
    weibo_token_lifetime_seconds: float = 5 * 365 * 86400.0
    # How long WeChat waits for the callback before it drops the connection and retries.
    callback_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class CasesSettings:
    """Citizens' cases: time limits in working days, reminders, intake limits."""

    reply_working_days: int = 5
    extension_working_days: int = 5
    max_total_working_days: int = 15
    max_months: int = 3
    remind_working_days_before: int = 1
    reject_reasons: tuple[str, ...] = (
        "无实质内容",
        "广告信息",
        "涉诉涉法",
        "重复留言",
        "不属于本机关职责",
    )
    departments: tuple[str, ...] = ("办公室", "政务公开科", "市民服务中心")
    web_per_hour: int = 5
    secret_key: Secret = _NO_SECRET
    # Template message used for replies outside WeChat's 48-hour customer-service window.
    wechat_template_id: str = ""
    weibo_poll_seconds: float = 60.0


@dataclass(frozen=True)
class MenuButtonSettings:
    """One custom-menu button; a top button with ``sub`` buttons has no type of its own."""

    name: str = ""
    type: Literal["click", "view", ""] = ""
    key: str = ""
    url: str = ""
    sub: Mapping[str, MenuButtonSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class BotSettings:
    """The WeChat callback: time budget, replay window, limits, retention, menu."""

    reply_budget_seconds: float = 4.5
    timestamp_window_seconds: float = 300.0
    max_body_bytes: int = 64 * 1024
    retention_days: int = 30
    retry_wait_seconds: float = 1.0
    keyword_cache_seconds: float = 5.0
    search_results: int = 5
    search_cache_seconds: float = 60.0
    language: Literal["zh", "en"] = "zh"
    # Template for deferred replies outside the 48-hour window (empty: none; they fail).
    template_id: str = ""
    menu: Mapping[str, MenuButtonSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class CommentsSettings:
    """The comments inbox: polling pace (newer items more often), retention, auto answers."""

    retention_days: int = 365
    poll_seconds: float = 60.0
    fresh_days: float = 3.0
    old_poll_seconds: float = 3600.0
    threads_per_tick: int = 50
    # Keyword rule ids whose answer is posted without a person (the office's choice).
    auto_answer_rules: tuple[int, ...] = ()
    # Post the best published item's link under a Weibo comment without a person (off:
    # the link is only suggested to staff and the comment becomes a case).
    weibo_search_answers: bool = False


@dataclass(frozen=True)
class RedisSettings:
    """Optional Redis in front of the database for the token cache and callback dedup."""

    # Empty: off (the default). redis://, rediss:// or unix://; it may hold a password,
    # so it is a Secret and only ever logged masked.
    url: Secret = _NO_SECRET
    # Prepended to every key, so several deployments (or tests) can share one server.
    key_prefix: str = "govcast:"
    # Per-command budget: Redis slower than this counts as down and the database answers
    # (the callback has 5 seconds in all).
    timeout_seconds: float = 0.5
    # After a failure, go straight to the database for this long before trying again.
    retry_after_seconds: float = 5.0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    json: bool = True


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    office: OfficeSettings = field(default_factory=OfficeSettings)
    offices: Mapping[str, ExtraOfficeSettings] = field(default_factory=dict)
    website: WebsiteSettings = field(default_factory=WebsiteSettings)
    wechat: WechatSettings = field(default_factory=WechatSettings)
    weibo: WeiboSettings = field(default_factory=WeiboSettings)
    workflow: WorkflowSettings = field(default_factory=WorkflowSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    cases: CasesSettings = field(default_factory=CasesSettings)
    bot: BotSettings = field(default_factory=BotSettings)
    comments: CommentsSettings = field(default_factory=CommentsSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    # Where the file came from; relative paths in it are resolved against its folder.
    source: Path = DEFAULT_CONFIG

    @property
    def data_dir(self) -> Path:
        """The data folder, absolute."""
        path = self.storage.data_dir
        return path if path.is_absolute() else (self.source.parent / path).resolve()

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, defaulting to SQLite in the data folder."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_dir / 'govcast.sqlite3'}"

    @property
    def is_sqlite(self) -> bool:
        """Whether the configured database is SQLite."""
        return self.database_url.startswith("sqlite")


# --- loading -------------------------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load, merge and validate the settings; raise SettingsError naming the bad key."""
    environ = os.environ if env is None else env
    config_path = Path(path or environ.get("GOVCAST_CONFIG") or DEFAULT_CONFIG)
    merged: dict[str, Any] = _read_toml(config_path, "config")
    secrets_file = environ.get("GOVCAST_SECRETS_FILE")
    if secrets_file:
        _deep_merge(merged, _read_toml(Path(secrets_file), "GOVCAST_SECRETS_FILE"))
    _deep_merge(merged, _env_overlay(environ))
    if overrides:
        _deep_merge(merged, _nest(overrides))
    merged.pop("source", None)
    settings = typing.cast(Settings, _build(Settings, merged, ""))
    settings = dataclasses.replace(settings, source=config_path.resolve())
    _validate(settings)
    return settings


def _read_toml(path: Path, key: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(key, f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(key, f"{path} is not valid TOML ({exc})") from None
    except OSError as exc:
        raise SettingsError(key, f"cannot read {path} ({exc.strerror})") from None


def _env_overlay(environ: Mapping[str, str]) -> dict[str, Any]:
    overlay: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _SOURCE_VARS:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", part) for part in parts):
            raise SettingsError(name, "malformed variable name (use GOVCAST_SECTION__KEY)")
        node = overlay
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(name, "conflicts with another variable")
        node[parts[-1]] = _EnvString(value)
    return overlay


class _EnvString(str):
    """A value from the environment: always text, coerced by the field's type."""


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise SettingsError(prefix or "settings", "must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise SettingsError(where, "unknown setting")
    values: dict[str, Any] = {}
    for fld in dataclasses.fields(cls):
        if fld.name not in raw:
            continue
        key = f"{prefix}.{fld.name}" if prefix else fld.name
        values[fld.name] = _coerce(hints[fld.name], raw[fld.name], key)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    from_env = isinstance(value, _EnvString)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, key)
    if origin in (Mapping, dict) or tp is Mapping:
        _, value_type = get_args(tp)
        if not isinstance(value, Mapping):
            raise SettingsError(key, "must be a table")
        result = {}
        for sub_key, sub_value in value.items():
            if not re.fullmatch(r"[a-z0-9_\-]{1,64}", str(sub_key)):
                raise SettingsError(
                    f"{key}.{sub_key}", "keys are lower-case letters, digits, _ or -"
                )
            result[str(sub_key)] = _coerce(value_type, sub_value, f"{key}.{sub_key}")
        return types.MappingProxyType(result)
    if origin is tuple:
        item_type = get_args(tp)[0]
        if from_env:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise SettingsError(key, "must be a list")
        return tuple(_coerce(item_type, item, f"{key}[{i}]") for i, item in enumerate(value))
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise SettingsError(
                key, f"must be one of {', '.join(map(str, allowed))}, not {value!r}"
            )
        return str(value)
    if tp is Secret:
        if not isinstance(value, str):
            raise SettingsError(key, "must be a string")
        return Secret(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if from_env and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(key, f"must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise SettingsError(key, "must be an integer")
        if isinstance(value, int):
            return value
        if from_env:
            try:
                return int(value)
            except ValueError:
                pass
        raise SettingsError(key, f"must be an integer, not {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
        raise SettingsError(key, f"must be a number, not {value!r}")
    if tp is str:
        if not isinstance(value, str):
            raise SettingsError(key, "must be a string")
        return str(value)
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise SettingsError(key, "must be a non-empty path")
        return Path(value)
    if tp is time:
        if isinstance(value, time):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
            hours, minutes = (int(p) for p in value.split(":"))
            if hours < 24 and minutes < 60:
                return time(hours, minutes)
        raise SettingsError(key, f"must be a time of day HH:MM, not {value!r}")
    raise SettingsError(key, f"unsupported setting type {tp!r}")  # pragma: no cover


def _validate(settings: Settings) -> None:
    def positive(key: str, value: float) -> None:
        if value <= 0:
            raise SettingsError(key, "must be greater than zero")

    if not 1 <= settings.server.port <= 65535:
        raise SettingsError("server.port", "must be between 1 and 65535")
    positive("server.workers", settings.server.workers)
    positive("server.max_body_bytes", settings.server.max_body_bytes)
    for i, proxy in enumerate(settings.server.trusted_proxies):
        try:
            ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:
            raise SettingsError(
                f"server.trusted_proxies[{i}]", f"must be an IP address or network, not {proxy!r}"
            ) from None
    url = settings.database_url
    if not re.match(r"^(sqlite\+aiosqlite|postgresql\+asyncpg|postgresql)://", url):
        raise SettingsError(
            "database.url", "must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    try:
        ZoneInfo(settings.office.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            "office.timezone", f"unknown time zone {settings.office.timezone!r}"
        ) from None
    _validate_org_code("office.org_code", settings.office.org_code)
    for key, office in settings.offices.items():
        if key == settings.office.key:
            raise SettingsError(f"offices.{key}", "repeats the key of [office]")
        if not office.name:
            raise SettingsError(f"offices.{key}.name", "must not be empty")
        _validate_org_code(f"offices.{key}.org_code", office.org_code)
    if not re.match(r"^https?://[^/\s]+", settings.website.base_url):
        raise SettingsError("website.base_url", "must be an absolute http(s) URL")
    offices = {settings.office.key, *settings.offices}
    for key, wechat in settings.wechat.accounts.items():
        where = f"wechat.accounts.{key}"
        if not wechat.app_id:
            raise SettingsError(f"{where}.app_id", "must not be empty")
        if wechat.mode != "plain" and len(wechat.encoding_aes_key) != 43:
            raise SettingsError(
                f"{where}.encoding_aes_key", "must be 43 characters in compatible or safe mode"
            )
        if not re.match(r"^https?://", wechat.api_base_url):
            raise SettingsError(f"{where}.api_base_url", "must be an absolute http(s) URL")
        if wechat.office and wechat.office not in offices:
            raise SettingsError(f"{where}.office", f"no office {wechat.office!r} is configured")
        positive(f"{where}.per_minute", wechat.per_minute)
    for key, weibo in settings.weibo.accounts.items():
        where = f"weibo.accounts.{key}"
        if not weibo.safe_domain:
            raise SettingsError(f"{where}.safe_domain", "must name the app's bound safe domain")
        if not re.match(r"^https?://", weibo.api_base_url):
            raise SettingsError(f"{where}.api_base_url", "must be an absolute http(s) URL")
        if weibo.office and weibo.office not in offices:
            raise SettingsError(f"{where}.office", f"no office {weibo.office!r} is configured")
        positive(f"{where}.posts_per_hour", weibo.posts_per_hour)
    if not 1 <= settings.workflow.review_steps <= 3:
        raise SettingsError("workflow.review_steps", "must be 1, 2 or 3")
    positive("queue.lease_seconds", settings.queue.lease_seconds)
    positive("queue.max_attempts", settings.queue.max_attempts)
    positive("queue.batch_size", settings.queue.batch_size)
    positive("queue.concurrency", settings.queue.concurrency)
    positive("queue.backoff_base_seconds", settings.queue.backoff_base_seconds)
    positive("scheduler.tick_seconds", settings.scheduler.tick_seconds)
    positive("sandbox.followers", settings.sandbox.followers)
    positive("sandbox.callback_timeout_seconds", settings.sandbox.callback_timeout_seconds)
    if settings.sandbox.publish_delay_seconds < 0:
        raise SettingsError("sandbox.publish_delay_seconds", "must not be negative")
    positive("comments.retention_days", settings.comments.retention_days)
    positive("comments.poll_seconds", settings.comments.poll_seconds)
    positive("comments.old_poll_seconds", settings.comments.old_poll_seconds)
    positive("comments.threads_per_tick", settings.comments.threads_per_tick)
    cases = settings.cases
    positive("cases.reply_working_days", cases.reply_working_days)
    positive("cases.max_months", cases.max_months)
    positive("cases.web_per_hour", cases.web_per_hour)
    if cases.extension_working_days < 0 or cases.remind_working_days_before < 0:
        raise SettingsError("cases.extension_working_days", "must not be negative")
    for name in ("reject_reasons", "departments"):
        if not all(item.strip() for item in getattr(cases, name)):
            raise SettingsError(f"cases.{name}", "entries must not be empty")
    if cases.max_total_working_days < cases.reply_working_days:
        raise SettingsError("cases.max_total_working_days", "must be at least reply_working_days")
    _validate_bot(settings.bot)
    _validate_redis(settings.redis)
    if settings.logging.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError("logging.level", "must be DEBUG, INFO, WARNING or ERROR")


def _validate_bot(bot: BotSettings) -> None:
    # WeChat's menu/create limits: 1-3 top buttons, 1-5 sub-buttons, name <= 16 bytes
    # (sub-buttons 60), key <= 128 bytes, url <= 1,024 bytes.
    if not 0 < bot.reply_budget_seconds < 5:
        raise SettingsError("bot.reply_budget_seconds", "must be between 0 and 5 seconds")
    for key in ("timestamp_window_seconds", "max_body_bytes", "retention_days", "search_results"):
        if getattr(bot, key) <= 0:
            raise SettingsError(f"bot.{key}", "must be greater than zero")
    if len(bot.menu) > 3:
        raise SettingsError("bot.menu", "has at most 3 top buttons")
    for top_key, top in bot.menu.items():
        _validate_button(f"bot.menu.{top_key}", top, 16)
        if top.sub and top.type:
            raise SettingsError(f"bot.menu.{top_key}.type", "must be empty with sub-buttons")
        if len(top.sub) > 5:
            raise SettingsError(f"bot.menu.{top_key}.sub", "has at most 5 sub-buttons")
        for sub_key, sub in top.sub.items():
            where = f"bot.menu.{top_key}.sub.{sub_key}"
            _validate_button(where, sub, 60)
            if sub.sub:
                raise SettingsError(f"{where}.sub", "sub-buttons cannot have sub-buttons")
            if not sub.type:
                raise SettingsError(f"{where}.type", "must be click or view")


def _validate_button(where: str, button: MenuButtonSettings, max_name: int) -> None:
    if not button.name or len(button.name.encode()) > max_name:
        raise SettingsError(f"{where}.name", f"must be 1-{max_name} bytes")
    if not button.sub and not button.type:
        raise SettingsError(f"{where}.type", "must be click or view (or have sub-buttons)")
    if button.type == "click" and not 0 < len(button.key.encode()) <= 128:
        raise SettingsError(f"{where}.key", "must be 1-128 bytes")
    if button.type == "view" and not (
        re.match(r"^https?://", button.url) and len(button.url.encode()) <= 1024
    ):
        raise SettingsError(f"{where}.url", "must be an http(s) URL of at most 1,024 bytes")


def _validate_redis(cfg: RedisSettings) -> None:
    # Messages never quote the URL: it may carry a password.
    url = cfg.url.reveal()
    if url:
        problem = redis_url_problem(url)
        if problem:
            raise SettingsError("redis.url", problem)
        try:
            # Optional dependency: imported only when configured (pip install 'govcast[redis]').
            importlib.import_module("redis.asyncio")
        except ImportError:
            raise SettingsError(
                "redis.url",
                "is set but the redis package is not installed (pip install 'govcast[redis]')",
            ) from None
    if not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,64}", cfg.key_prefix):
        raise SettingsError(
            "redis.key_prefix", "must be 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    if not 0 < cfg.timeout_seconds <= 5:
        raise SettingsError("redis.timeout_seconds", "must be between 0 and 5 seconds")
    if cfg.retry_after_seconds < 0:
        raise SettingsError("redis.retry_after_seconds", "must not be negative")


def redis_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable Redis URL, or None; never quotes the URL (pure)."""
    if len(url) > 2048 or not url.isprintable() or any(ch.isspace() for ch in url):
        return "must be a redis://, rediss:// or unix:// URL without spaces"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "must be a redis://, rediss:// or unix:// URL with a valid port"
    if parts.scheme not in ("redis", "rediss", "unix") or not url.startswith(f"{parts.scheme}://"):
        return "must start with redis://, rediss:// or unix://"
    if parts.scheme == "unix":
        # unix://host/x would silently mean the socket /x: a host here is a mistake.
        if parts.hostname or not parts.path.startswith("/") or parts.path == "/":
            return "unix:// URLs must name the socket's absolute path (unix:///run/redis.sock)"
        return None
    if not parts.hostname:
        return "must name a host (redis://host:6379/0)"
    if port == 0:
        return "must name a port between 1 and 65535"
    database = parts.path.strip("/")
    if database and not (database.isdigit() and int(database) < 1 << 16):
        return "the path, if any, must be a database number (redis://host:6379/0)"
    return None


def _validate_org_code(key: str, code: str) -> None:
    # Unified social credit codes are 18 characters; older organisation codes 9.
    if not re.fullmatch(r"[0-9A-Z]{9}|[0-9A-Z]{18}", code):
        raise SettingsError(key, "must be an 18-character unified social credit code")
