"""Fault injection: seeded, per-platform error, latency and timeout decisions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Platform = Literal["wechat", "weibo"]
PLATFORMS: tuple[Platform, ...] = ("wechat", "weibo")
_KEYS = {
    "platform",
    "error_rate",
    "errcodes",
    "latency_ms",
    "timeout_rate",
    "seed",
    "timeout_phase",
    "publish_failure_rate",
}
DEFAULT_ERRCODES: Mapping[Platform, tuple[int, ...]] = {"wechat": (-1,), "weibo": (10001,)}


class FaultSpecError(ValueError):
    """The fault JSON is malformed; the message names the key."""


@dataclass(frozen=True)
class FaultSpec:
    """What to inject on one platform."""

    error_rate: float = 0.0
    errcodes: tuple[int, ...] = ()
    latency_ms: int = 0
    timeout_rate: float = 0.0
    seed: int = 0
    # "before": the call hangs before any effect; "after": the effect happens, then it hangs.
    timeout_phase: Literal["before", "after"] = "before"
    # WeChat: share of freepublish jobs that end in status 3 (failed).
    publish_failure_rate: float = 0.0


def _rate(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultSpecError(f"{key} must be a number between 0 and 1")
    if not 0.0 <= float(value) <= 1.0:
        raise FaultSpecError(f"{key} must be between 0 and 1")
    return float(value)


def _int(raw: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultSpecError(f"{key} must be an integer from {low} to {high}")
    return int(value)


def parse_spec(raw: object) -> tuple[tuple[Platform, ...], FaultSpec]:
    """Validate the POST /sandbox/_faults JSON; raise FaultSpecError naming the bad key."""
    if not isinstance(raw, dict):
        raise FaultSpecError("the body must be a JSON object")
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise FaultSpecError(f"unknown key {unknown[0]!r}")
    platform = raw.get("platform", "all")
    if platform not in ("wechat", "weibo", "all"):
        raise FaultSpecError("platform must be wechat, weibo or all")
    platforms: tuple[Platform, ...] = PLATFORMS if platform == "all" else (platform,)
    error_rate = _rate(raw, "error_rate")
    timeout_rate = _rate(raw, "timeout_rate")
    if error_rate + timeout_rate > 1.0:
        raise FaultSpecError("error_rate + timeout_rate must not exceed 1")
    codes = raw.get("errcodes", [])
    if not isinstance(codes, list) or len(codes) > 64:
        raise FaultSpecError("errcodes must be a list of at most 64 integers")
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not -(2**31) < code < 2**31:
            raise FaultSpecError("errcodes must be a list of integers")
        if code == 0:
            raise FaultSpecError("errcodes must not contain 0 (success)")
    phase = raw.get("timeout_phase", "before")
    if phase not in ("before", "after"):
        raise FaultSpecError("timeout_phase must be before or after")
    spec = FaultSpec(
        error_rate=error_rate,
        errcodes=tuple(codes),
        latency_ms=_int(raw, "latency_ms", 0, 60_000),
        timeout_rate=timeout_rate,
        seed=_int(raw, "seed", -(2**63), 2**63 - 1),
        timeout_phase=phase,
        publish_failure_rate=_rate(raw, "publish_failure_rate"),
    )
    return platforms, spec


@dataclass(frozen=True)
class Decision:
    """What happens to one call: an error code, a hang, and the latency first."""

    latency: float = 0.0
    errcode: int | None = None
    hang: Literal["before", "after", None] = None


@dataclass
class _Active:
    spec: FaultSpec
    rng: random.Random


@dataclass
class Faults:
    """The faults in force per platform; each has its own RNG seeded from the spec."""

    active: dict[str, _Active] = field(default_factory=dict)
    cleared: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, platforms: tuple[Platform, ...], spec: FaultSpec) -> None:
        """Put ``spec`` in force on ``platforms``, restarting their seeded sequences."""
        for platform in platforms:
            self.active[platform] = _Active(spec, random.Random(f"{platform}:{spec.seed}"))
        self.cleared = asyncio.Event()

    def clear(self) -> None:
        """Remove every fault and release hanging calls."""
        self.active.clear()
        self.cleared.set()

    def describe(self) -> dict[str, Any]:
        """The faults in force, as JSON."""
        return {
            name: {
                "error_rate": a.spec.error_rate,
                "errcodes": list(a.spec.errcodes),
                "latency_ms": a.spec.latency_ms,
                "timeout_rate": a.spec.timeout_rate,
                "seed": a.spec.seed,
                "timeout_phase": a.spec.timeout_phase,
                "publish_failure_rate": a.spec.publish_failure_rate,
            }
            for name, a in sorted(self.active.items())
        }

    def decide(self, platform: Platform) -> Decision:
        """Draw the fate of one call from the platform's seeded sequence."""
        found = self.active.get(platform)
        if found is None:
            return Decision()
        spec, rng = found.spec, found.rng
        draw = rng.random()
        latency = spec.latency_ms / 1000.0
        if draw < spec.timeout_rate:
            return Decision(latency=latency, hang=spec.timeout_phase)
        if draw < spec.timeout_rate + spec.error_rate:
            codes = spec.errcodes or DEFAULT_ERRCODES[platform]
            return Decision(latency=latency, errcode=codes[rng.randrange(len(codes))])
        return Decision(latency=latency)

    def publish_fails(self) -> bool:
        """Whether the next freepublish job fails (status 3)."""
        found = self.active.get("wechat")
        if found is None or found.spec.publish_failure_rate <= 0:
            return False
        return found.rng.random() < found.spec.publish_failure_rate

    async def hang(self, limit: float = 600.0) -> None:
        """Hang longer than any client waits, or until the faults are cleared."""
        cleared = self.cleared
        try:
            await asyncio.wait_for(cleared.wait(), timeout=limit)
        except TimeoutError:
            pass
