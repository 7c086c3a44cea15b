"""Structured logging: one JSON object per line, secrets scrubbed from every record."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from govcast.settings import Secret, Settings

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings (to scrub from log output)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Secret):
            if len(node) >= 4:
                found.append(node.reveal())
            return
        if hasattr(node, "__dataclass_fields__"):
            for name in node.__dataclass_fields__:
                walk(getattr(node, name))
        elif isinstance(node, dict) or hasattr(node, "items"):
            for value in node.values():
                walk(value)

    walk(settings)
    return sorted(set(found), key=len, reverse=True)


class JsonFormatter(logging.Formatter):
    """Render a record and its ``extra`` fields as one JSON line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, (int, float, bool, type(None))) else str(value)
                )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.scrub(json.dumps(entry, ensure_ascii=False))

    def scrub(self, text: str) -> str:
        """Replace every known secret value."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "********")
        return text


class TextFormatter(JsonFormatter):
    """Human-readable lines for a terminal, scrubbed the same way."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")
        }
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.scrub(line)


def configure(settings: Settings, stream: Any = None) -> None:
    """Install the formatter on the root logger (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter_cls = JsonFormatter if settings.logging.json else TextFormatter
    handler.setFormatter(formatter_cls(secrets_of(settings)))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_govcast", False):
            root.removeHandler(old)
    handler._govcast = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.logging.level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
