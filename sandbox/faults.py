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
    "publish_failure_statuses",
    "submit_error_rate",
    "submit_errcodes",
}
DEFAULT_ERRCODES: Mapping[Platform, tuple[int, ...]] = {"wechat": (-1,), "weibo": (10001,)}
# freepublish job statuses that mean failure: originality check, failed, review, banned.
FAILURE_STATUSES = (2, 3, 4, 6)
# freepublish/submit refusals: failed the publish check, must use the web console, save first.
SUBMIT_ERRCODES = (53503, 53504, 53505)


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
    # WeChat: share of freepublish jobs that end in a failure status, drawn from
    # publish_failure_statuses (2 originality, 3 failed, 4 rejected by review, 6 banned).
    publish_failure_rate: float = 0.0
    publish_failure_statuses: tuple[int, ...] = (3,)
    # WeChat: share of freepublish/submit calls refused with one of submit_errcodes.
    submit_error_rate: float = 0.0
    submit_errcodes: tuple[int, ...] = SUBMIT_ERRCODES


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


def _subset(
    raw: Mapping[str, Any], key: str, allowed: tuple[int, ...], default: tuple[int, ...]
) -> tuple[int, ...]:
    value = raw.get(key)
    if value is None:
        return default
    choices = ", ".join(str(a) for a in allowed)
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or v not in allowed for v in value)
    ):
        raise FaultSpecError(f"{key} must be a non-empty list taken from {choices}")
    return tuple(int(v) for v in value)


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
    statuses = _subset(raw, "publish_failure_statuses", FAILURE_STATUSES, (3,))
    submit_codes = _subset(raw, "submit_errcodes", SUBMIT_ERRCODES, SUBMIT_ERRCODES)
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
        publish_failure_statuses=statuses,
        submit_error_rate=_rate(raw, "submit_error_rate"),
        submit_errcodes=submit_codes,
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
        # Calls already hanging wait on the current event: keep it, so a later clear()
        # still releases them. Only a spent event (a clear() happened) is replaced.
        if self.cleared.is_set():
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
                "publish_failure_statuses": list(a.spec.publish_failure_statuses),
                "submit_error_rate": a.spec.submit_error_rate,
                "submit_errcodes": list(a.spec.submit_errcodes),
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

    def publish_outcome(self) -> int:
        """The status the next freepublish job ends with: 0 success, else a failure status."""
        found = self.active.get("wechat")
        if found is None or found.spec.publish_failure_rate <= 0:
            return 0
        spec, rng = found.spec, found.rng
        if rng.random() >= spec.publish_failure_rate:
            return 0
        return spec.publish_failure_statuses[rng.randrange(len(spec.publish_failure_statuses))]

    def submit_error(self) -> int | None:
        """The errcode refusing the next freepublish/submit (53503/53504/53505), or None."""
        found = self.active.get("wechat")
        if found is None or found.spec.submit_error_rate <= 0:
            return None
        spec, rng = found.spec, found.rng
        if rng.random() >= spec.submit_error_rate:
            return None
        return spec.submit_errcodes[rng.randrange(len(spec.submit_errcodes))]

    async def hang(self, limit: float = 600.0) -> None:
        """Hang longer than any client waits, or until the faults are cleared."""
        cleared = self.cleared
        try:
            await asyncio.wait_for(cleared.wait(), timeout=limit)
        except TimeoutError:
            pass
