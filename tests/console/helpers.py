"""Helpers for console tests: a small real PNG and a valid compose form."""

from __future__ import annotations

import io
from typing import Any

from aiohttp import FormData
from PIL import Image


def png(color: str = "red", size: tuple[int, int] = (40, 30)) -> bytes:
    """A real PNG image."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def compose_form(csrf: str, image: bytes | None = None, **overrides: Any) -> FormData:
    """A multipart compose form, as the browser sends it."""
    values: dict[str, Any] = {
        "_csrf": csrf,
        "office": "main",
        "title": "关于2026年城乡居民医保集中缴费的通知",
        "kind": "disclosure",
        "category": "service",
        "issuing_body": "示例市医疗保障局",
        "body": "城乡居民医保2026年度集中缴费期为**10月至12月**。\n\n请按时缴费。",
        "keywords": "医保, 缴费",
        "validity": "in_force",
        "channels": ["website"],
        "image_alt": "缴费流程图",
    }
    values.update(overrides)
    form = FormData()
    for key, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            form.add_field(key, item)
    if image is not None:
        form.add_field("images", image, filename="flow.png", content_type="image/png")
    return form
