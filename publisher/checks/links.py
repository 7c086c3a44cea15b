"""Broken links and images: an asynchronous checker with timeouts, bounded concurrency
and a cache, so a page full of links costs one request per address per hour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import aiohttp

from publisher.checks.findings import Finding, Severity, apply_policy
from publisher.checks.run import FIELD_ORDER, Checker, LinkRef, find_links, subject_of


@dataclass(frozen=True)
class LinkStatus:
    """What one address answered: ``ok`` False with the reason when it is broken."""

    url: str
    ok: bool
    status: int | None
    reason: str


@dataclass
class LinkChecker:
    """Checks addresses with HEAD (GET when HEAD is refused); results are cached."""

    session: aiohttp.ClientSession
    timeout_seconds: float = 15.0
    cache_seconds: float = 3600.0
    concurrency: int = 8
    base_url: str = ""  # relative addresses are resolved against it
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, LinkStatus]] = field(default_factory=dict)

    def resolve(self, url: str) -> str | None:
        """An absolute http(s) address, or None for addresses that are not checked."""
        url = url.strip()
        if url.startswith(("mailto:", "tel:", "#")) or not url:
            return None
        absolute = urljoin(self.base_url, url) if self.base_url else url
        if urlsplit(absolute).scheme not in ("http", "https"):
            return None
        return absolute

    async def status(self, url: str) -> LinkStatus:
        """The (possibly cached) status of one absolute address."""
        now = self.clock()
        cached = self._cache.get(url)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        result = await self._probe(url)
        self._cache[url] = (now, result)
        return result

    async def _probe(self, url: str) -> LinkStatus:
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            async with self.session.head(url, timeout=timeout, allow_redirects=True) as resp:
                status = resp.status
            if status in (405, 501):
                async with self.session.get(url, timeout=timeout, allow_redirects=True) as resp:
                    status = resp.status
        except TimeoutError:
            return LinkStatus(url, False, None, f"超时（{self.timeout_seconds:g}秒）")
        except (aiohttp.ClientError, ValueError) as exc:
            return LinkStatus(url, False, None, f"无法连接（{type(exc).__name__}）")
        if status >= 400:
            return LinkStatus(url, False, status, f"HTTP {status}")
        return LinkStatus(url, True, status, "")

    async def check_many(self, urls: list[str]) -> dict[str, LinkStatus]:
        """Statuses of many addresses, at most ``concurrency`` requests at once."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(url: str) -> tuple[str, LinkStatus]:
            async with gate:
                return url, await self.status(url)

        return dict(await asyncio.gather(*(one(u) for u in dict.fromkeys(urls))))

    async def check_html(self, body_html: str, field: str = "body_html") -> list[Finding]:
        """A finding for every broken link or image in ``body_html``."""
        refs: list[tuple[LinkRef, str]] = []
        for ref in find_links(body_html):
            absolute = self.resolve(ref.url)
            if absolute is not None:
                refs.append((ref, absolute))
        statuses = await self.check_many([a for _, a in refs])
        findings = []
        for ref, absolute in refs:
            result = statuses[absolute]
            if result.ok:
                continue
            what, what_en = ("图片", "Image") if ref.kind == "image" else ("链接", "Link")
            findings.append(
                Finding(
                    code="broken_image" if ref.kind == "image" else "broken_link",
                    severity=Severity.ERROR,
                    field=field,
                    start=ref.start,
                    end=ref.end,
                    snippet=ref.url[:200],
                    message=f"{what}无法访问：{ref.url}（{result.reason}）",
                    message_en=f"{what_en} unreachable: {ref.url} ({result.reason})",
                )
            )
        return findings


async def run_checks_with_links(obj: object, checker: Checker, links: LinkChecker) -> list[Finding]:
    """Every check, broken links and images included (for the compose page and inspection)."""
    findings = checker.check(obj)
    extra = await links.check_html(subject_of(obj).body_html)
    findings.extend(apply_policy(extra, checker.lists.severities))
    findings.sort(key=lambda f: (FIELD_ORDER.get(f.field, 9), f.start, f.code))
    return findings
