"""Parsing and validating publication input: Markdown files with TOML front matter, JSON,
and the same fields from the API. Every problem is a ValidationError naming the field."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from publisher.errors import ValidationError
from publisher.markup import markdown_to_html, sanitize_html
from publisher.models import Category, Kind, Validity

MAX_TITLE = 300
MAX_FILE_BYTES = 4 * 1024 * 1024
_TARGET = re.compile(r"^[a-z][a-z0-9_]{0,31}(:[a-z0-9_\-]{1,64})?$")

_KNOWN_KEYS = {
    "title",
    "title_en",
    "kind",
    "category",
    "issuing_body",
    "document_number",
    "written_on",
    "subject",
    "genre",
    "audience",
    "keywords",
    "summary",
    "channels",
    "publish_at",
    "urgent",
    "push",
    "validity",
    "source",
    "column",
    "explanation_url",
    "solicitation_opens_at",
    "solicitation_closes_at",
    "solicitation_basis",
    "body",
    "body_html",
    "body_en",
    "body_html_en",
    "published_at",
    "index_number",
    "images",
}


@dataclass
class PublicationInput:
    """A validated publication as submitted, before it is stored."""

    title: str
    kind: str
    category: str
    issuing_body: str
    body_html: str
    body_source: str | None = None
    title_en: str | None = None
    body_html_en: str | None = None
    document_number: str | None = None
    written_on: date | None = None
    subject: str | None = None
    genre: str | None = None
    audience: str | None = None
    keywords: list[str] = field(default_factory=list)
    summary: str | None = None
    channels: list[str] | None = None
    publish_at: datetime | None = None
    urgent: bool = False
    push: bool = False
    validity: str = Validity.IN_FORCE.value
    source: str | None = None
    column_key: str | None = None
    explanation_url: str | None = None
    solicitation_opens_at: datetime | None = None
    solicitation_closes_at: datetime | None = None
    solicitation_basis: str | None = None
    # Bulk import only: already published elsewhere.
    published_at: datetime | None = None
    index_number: str | None = None
    image_paths: list[Path] = field(default_factory=list)


def parse_publication_file(path: Path, *, max_body_chars: int) -> PublicationInput:
    """Read a ``.md`` file with ``+++`` TOML front matter, or a ``.json`` file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError("file", f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ValidationError("file", f"larger than {MAX_FILE_BYTES // 1024 // 1024} MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("file", "is not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError("file", f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(fields, dict):
            raise ValidationError("file", "a JSON publication must be an object")
    else:
        fields = split_front_matter(text)
    result = publication_from_fields(fields, max_body_chars=max_body_chars)
    result.image_paths = _local_images(result.body_source or "", path.parent)
    return result


def split_front_matter(text: str) -> dict[str, Any]:
    """Split ``+++\\n<toml>\\n+++\\n<markdown>`` into fields, the Markdown under ``body``."""
    match = re.match(r"\A\+\+\+[ \t]*\r?\n(.*?)\r?\n\+\+\+[ \t]*(?:\r?\n|\Z)(.*)\Z", text, re.S)
    if not match:
        raise ValidationError(
            "front_matter", "the file must start with +++, TOML metadata, and a closing +++"
        )
    try:
        fields = tomllib.loads(match.group(1))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError("front_matter", f"invalid TOML: {exc}") from None
    if "body" in fields or "body_html" in fields:
        raise ValidationError("front_matter", "the body goes after the closing +++")
    fields["body"] = match.group(2)
    return fields


def publication_from_fields(fields: dict[str, Any], *, max_body_chars: int) -> PublicationInput:
    """Validate a mapping of publication fields (front matter, JSON, API body)."""
    unknown = sorted(set(fields) - _KNOWN_KEYS)
    if unknown:
        raise ValidationError(unknown[0], "unknown field")
    title = _text(fields, "title", required=True, limit=MAX_TITLE)
    kind = _choice(fields, "kind", [k.value for k in Kind], default=Kind.DISCLOSURE.value)
    category = _choice(fields, "category", [c.value for c in Category], required=True)
    issuing_body = _text(fields, "issuing_body", required=True, limit=200)
    body_source: str | None = None
    if "body_html" in fields:
        body_html = sanitize_html(_text(fields, "body_html", required=True, limit=None))
    else:
        body_source = _text(fields, "body", required=True, limit=None)
        body_html = markdown_to_html(body_source)
    if len(body_html) > max_body_chars:
        raise ValidationError("body", f"longer than {max_body_chars} characters")
    if not body_html.strip():
        raise ValidationError("body", "must not be empty")
    body_html_en = None
    if "body_html_en" in fields:
        body_html_en = sanitize_html(_text(fields, "body_html_en", limit=None))
    elif "body_en" in fields:
        body_html_en = markdown_to_html(_text(fields, "body_en", limit=None))
    channels = None
    if "channels" in fields:
        channels = _string_list(fields, "channels", limit=20)
        for target in channels:
            if not _TARGET.match(target):
                raise ValidationError(
                    "channels",
                    f"{target!r} is not a target like website, wechat:<account>, weibo:<account>",
                )
        channels = list(dict.fromkeys(channels))
    basis = fields.get("solicitation_basis")
    if basis is not None and basis not in ("major_decision", "normative"):
        raise ValidationError("solicitation_basis", "must be major_decision or normative")
    result = PublicationInput(
        title=title,
        kind=kind,
        category=category,
        issuing_body=issuing_body,
        body_html=body_html,
        body_source=body_source,
        title_en=_text(fields, "title_en", limit=MAX_TITLE) or None,
        body_html_en=body_html_en,
        document_number=_text(fields, "document_number", limit=100) or None,
        written_on=_date(fields, "written_on"),
        subject=_text(fields, "subject", limit=100) or None,
        genre=_text(fields, "genre", limit=50) or None,
        audience=_text(fields, "audience", limit=100) or None,
        keywords=_string_list(fields, "keywords", limit=20, item_limit=30),
        summary=_text(fields, "summary", limit=500) or None,
        channels=channels,
        publish_at=_datetime(fields, "publish_at"),
        urgent=_bool(fields, "urgent"),
        push=_bool(fields, "push"),
        validity=_choice(fields, "validity", [v.value for v in Validity], default="in_force"),
        source=_text(fields, "source", limit=200) or None,
        column_key=_text(fields, "column", limit=64) or None,
        explanation_url=_url(fields, "explanation_url"),
        solicitation_opens_at=_datetime(fields, "solicitation_opens_at"),
        solicitation_closes_at=_datetime(fields, "solicitation_closes_at"),
        solicitation_basis=basis,
        published_at=_datetime(fields, "published_at"),
        index_number=_text(fields, "index_number", limit=64) or None,
    )
    if result.kind == Kind.SOLICITATION.value:
        if not (result.solicitation_opens_at and result.solicitation_closes_at):
            raise ValidationError(
                "solicitation_closes_at",
                "a solicitation needs solicitation_opens_at and _closes_at",
            )
        if result.solicitation_closes_at <= result.solicitation_opens_at:
            raise ValidationError("solicitation_closes_at", "must be after solicitation_opens_at")
    return result


def _text(fields: dict[str, Any], key: str, *, required: bool = False, limit: int | None) -> str:
    value = fields.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(key, "is required")
        return ""
    if not isinstance(value, str):
        raise ValidationError(key, "must be text")
    if "\x00" in value:
        raise ValidationError(key, "contains a NUL character")
    value = value.strip() if limit is not None else value
    if limit is not None and len(value) > limit:
        raise ValidationError(key, f"longer than {limit} characters")
    return value


def _choice(
    fields: dict[str, Any],
    key: str,
    allowed: list[str],
    *,
    default: str | None = None,
    required: bool = False,
) -> str:
    value = fields.get(key, default)
    if value is None:
        raise ValidationError(key, f"is required (one of {', '.join(allowed)})")
    if value not in allowed:
        raise ValidationError(key, f"unknown value {value!r}; expected one of {', '.join(allowed)}")
    return str(value)


def _bool(fields: dict[str, Any], key: str) -> bool:
    value = fields.get(key, False)
    if not isinstance(value, bool):
        raise ValidationError(key, "must be true or false")
    return value


def _string_list(
    fields: dict[str, Any], key: str, *, limit: int, item_limit: int = 100
) -> list[str]:
    value = fields.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(key, "must be a list of strings")
    if len(value) > limit:
        raise ValidationError(key, f"at most {limit} entries")
    items = [v.strip() for v in value if v.strip()]
    for item in items:
        if "\x00" in item:
            raise ValidationError(key, "contains a NUL character")
        if len(item) > item_limit:
            raise ValidationError(key, f"entries are at most {item_limit} characters")
    return items


def _date(fields: dict[str, Any], key: str) -> date | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(key, "must be a date YYYY-MM-DD")


def _datetime(fields: dict[str, Any], key: str) -> datetime | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(key, "must be an ISO 8601 date-time with offset") from None
    if not isinstance(value, datetime):
        raise ValidationError(
            key, "must be a date-time with offset, e.g. 2026-12-01T09:00:00+08:00"
        )
    if value.tzinfo is None:
        raise ValidationError(key, "needs a UTC offset, e.g. +08:00")
    return value.astimezone(UTC)


def _url(fields: dict[str, Any], key: str) -> str | None:
    value = _text(fields, key, limit=1000)
    if not value:
        return None
    if not re.match(r"^https?://[^\s<>\"]+$", value):
        raise ValidationError(key, "must be an http(s) URL")
    return value


def _local_images(markdown: str, folder: Path) -> list[Path]:
    """Images referenced by relative path in the Markdown, resolved next to the file."""
    paths = []
    for target in re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?", markdown):
        if re.match(r"^[a-z]+:", target, re.I) or target.startswith("/"):
            continue
        resolved = (folder / target).resolve()
        if folder.resolve() not in resolved.parents:
            raise ValidationError("body", f"image {target!r} lies outside the file's folder")
        if not resolved.is_file():
            raise ValidationError("body", f"image {target!r} not found next to the file")
        paths.append(resolved)
    return paths
