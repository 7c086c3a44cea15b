"""The media store: images and attachments, content-addressed files under the data folder."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.errors import ValidationError
from publisher.models import Media

IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
ATTACHMENT_TYPES = IMAGE_TYPES | {
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
    "application/ofd",
    "text/plain",
}
_PIL_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


class MediaStore:
    """Files live at ``<root>/<sha[:2]>/<sha>``; the database row carries the metadata."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path_of(self, sha256: str) -> Path:
        """Where the file with this digest lives."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError("not a sha256 digest")
        return self.root / sha256[:2] / sha256

    async def save(
        self,
        session: AsyncSession,
        office_id: int,
        filename: str,
        content: bytes,
        *,
        image_only: bool = False,
    ) -> Media:
        """Validate and store a file; the same bytes stored twice share one file."""
        if len(content) > self.max_bytes:
            raise ValidationError(
                "file", f"{filename} is larger than {self.max_bytes // 1048576} MB"
            )
        if not content:
            raise ValidationError("file", f"{filename} is empty")
        safe_name = _safe_filename(filename)
        content_type, width, height = sniff(content, safe_name)
        if image_only and content_type not in IMAGE_TYPES:
            raise ValidationError("file", f"{safe_name} is not a JPEG, PNG, GIF or WebP image")
        if content_type not in ATTACHMENT_TYPES:
            raise ValidationError("file", f"{safe_name}: type {content_type} is not accepted")
        digest = hashlib.sha256(content).hexdigest()
        path = self.path_of(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(content)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        existing = (
            (
                await session.execute(
                    select(Media).where(Media.office_id == office_id, Media.sha256 == digest)
                )
            )
            .scalars()
            .first()
        )
        if existing is not None:
            return existing
        media = Media(
            office_id=office_id,
            sha256=digest,
            filename=safe_name,
            content_type=content_type,
            size=len(content),
            width=width,
            height=height,
        )
        session.add(media)
        await session.flush()
        return media


def sniff(content: bytes, filename: str) -> tuple[str, int | None, int | None]:
    """The real content type from the bytes (not the name), and image dimensions."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.verify()
            kind = _PIL_TYPES.get(image.format or "")
            if kind:
                return kind, image.width, image.height
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        pass
    if content.startswith(b"%PDF-"):
        return "application/pdf", None, None
    guessed = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if guessed.startswith("image/"):
        # Claims to be an image but Pillow cannot read it: refuse rather than trust the name.
        return "application/octet-stream", None, None
    return guessed, None, None


def _safe_filename(filename: str) -> str:
    name = Path(filename.replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f<>:\"|?*]", "_", name).strip(". ") or "file"
    return name[:200]
