"""The load generator for bench/load: an open-loop client in its own process.

Sends signed WeChat pushes (each with its own MsgId) to a running govcast callback at fixed
arrival rates, one step per rate, rising until p99 exceeds the limit or a request fails.
Open loop: request i of a step is sent at ``start + i / rate`` whether or not earlier ones
have been answered, so a server falling behind shows up as latency, not as a lower offered
rate. Latency is counted from the *scheduled* send time (no coordinated omission); how late
the generator itself sent (its lag) is reported beside it, with its own CPU share, so a
saturated client is visible rather than blamed on the server.

Run (normally started by bench/load/run.py):
    .venv/bin/python bench/load/generate.py --port 8080 --rates 25,50,100 --step-seconds 10

Prints ``BEGIN {...}`` before each step and ``STEP {...}`` (JSON) after it has drained.
"""

# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp

from bench.callback.corpus import WEIGHTS, WORDS
from bench.callback.run import KEYWORD, Pushes


@dataclass
class Outcome:
    """One request: its kind, latency from the scheduled time, and how it ended."""

    kind: str
    latency: float
    result: str  # ok, deferred ("success": reply left for the customer-service API), error, timeout


@dataclass
class Step:
    """What one rate step produced."""

    rate: float
    seconds: float
    lags: list[float] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def contents(count: int, keyword_share: float, rng: random.Random) -> list[tuple[str, str]]:
    """The message mix: keyword replies and search texts of one or two Zipf-weighted words."""
    out = []
    for _ in range(count):
        if rng.random() < keyword_share:
            out.append(("keyword", KEYWORD))
        else:
            words = rng.choices(WORDS, WEIGHTS, k=rng.choice((1, 2)))
            out.append(("search", " ".join(words)))
    return out


async def send(
    session: aiohttp.ClientSession,
    base: str,
    line: str,
    kind: str,
    scheduled: float,
    step: Step,
    safe: bool,
) -> None:
    """POST one push and record its outcome against the scheduled time."""
    loop = asyncio.get_running_loop()
    target, body = line.split("\t", 1)
    try:
        async with session.post(
            base + target, data=body.encode(), headers={"Content-Type": "text/xml"}
        ) as resp:
            text = await resp.text()
            latency = loop.time() - scheduled
            if resp.status != 200:
                result, reason = "error", f"http {resp.status}"
            elif text == "success":
                result, reason = "deferred", ""
            elif ("<Encrypt>" in text) if safe else text.startswith("<xml>"):
                result, reason = "ok", ""
            else:
                result, reason = "error", "unexpected body"
    except TimeoutError:
        latency, result, reason = loop.time() - scheduled, "timeout", "timeout"
    except aiohttp.ClientError as exc:
        latency, result, reason = loop.time() - scheduled, "error", type(exc).__name__
    step.outcomes.append(Outcome(kind, latency, result))
    if reason:
        step.errors[reason] = step.errors.get(reason, 0) + 1


async def run_step(
    session: aiohttp.ClientSession,
    base: str,
    path: str,
    safe: bool,
    rate: float,
    seconds: float,
    keyword_share: float,
    pushes: Pushes,
    rng: random.Random,
) -> Step:
    """Send ``rate * seconds`` pushes on schedule and wait for every answer."""
    count = max(1, round(rate * seconds))
    mix = contents(count, keyword_share, rng)
    # Signed (and encrypted) before the clock starts, so that signing costs no lag.
    lines = [(kind, pushes.line(path, text, safe)) for kind, text in mix]
    step = Step(rate, seconds)
    loop = asyncio.get_running_loop()
    tasks = []
    start = loop.time() + 0.05
    for i, (kind, line) in enumerate(lines):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        step.lags.append(max(0.0, loop.time() - scheduled))
        tasks.append(asyncio.create_task(send(session, base, line, kind, scheduled, step, safe)))
    await asyncio.gather(*tasks)
    return step


def summary(step: Step, wall: float, cpu: float) -> dict[str, Any]:
    """The figures of one step, as printed."""
    lat = [o.latency for o in step.outcomes]
    ok = [o for o in step.outcomes if o.result == "ok"]
    out: dict[str, Any] = {
        "offered": step.rate,
        "sent": len(step.outcomes),
        "ok": len(ok),
        "achieved": len(ok) / wall if wall else 0.0,
        "p50": percentile(lat, 50),
        "p95": percentile(lat, 95),
        "p99": percentile(lat, 99),
        "max": max(lat, default=0.0),
        "deferred": sum(o.result == "deferred" for o in step.outcomes),
        "errors": sum(o.result == "error" for o in step.outcomes),
        "timeouts": sum(o.result == "timeout" for o in step.outcomes),
        "error_kinds": step.errors,
        "lag_p50": percentile(step.lags, 50),
        "lag_p99": percentile(step.lags, 99),
        "lag_max": max(step.lags, default=0.0),
        "client_cpu": cpu / wall if wall else 0.0,
        "wall": wall,
    }
    for kind in ("keyword", "search"):
        values = [o.latency for o in step.outcomes if o.kind == kind]
        out[f"{kind}_n"] = len(values)
        out[f"{kind}_p50"] = percentile(values, 50)
        out[f"{kind}_p99"] = percentile(values, 99)
    return out


async def main_async(args: argparse.Namespace) -> int:
    """Warm up, then run the rising steps until one fails."""
    base = f"http://127.0.0.1:{args.port}"
    safe = args.mode == "safe"
    path = args.path or ("/wechat/main" if safe else "/wechat/plain")
    rng = random.Random(args.seed)
    pushes = Pushes()
    # Each request on its own connection by default: with keep-alive, the kernel's
    # SO_REUSEPORT balancing (per connection) would pin a low-rate run to one process.
    connector = aiohttp.TCPConnector(limit=0, force_close=not args.keep_alive)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
        if args.warmup_seconds > 0:
            # Imports, pools and the search cache warm up before anything is measured.
            await run_step(
                session,
                base,
                path,
                safe,
                rates[0],
                args.warmup_seconds,
                args.keyword_share,
                pushes,
                rng,
            )
        for rate in rates:
            print("BEGIN " + json.dumps({"offered": rate}), flush=True)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            step = await run_step(
                session, base, path, safe, rate, args.step_seconds, args.keyword_share, pushes, rng
            )
            wall = time.perf_counter() - wall0
            result = summary(step, wall, time.process_time() - cpu0)
            print("STEP " + json.dumps(result), flush=True)
            failed = result["errors"] + result["timeouts"] + result["deferred"]
            if result["p99"] > args.p99_limit or failed:
                break
            await asyncio.sleep(args.pause)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The generator's command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("safe", "plain"), default="safe")
    parser.add_argument("--path", default="", help="callback path (default by mode)")
    parser.add_argument(
        "--rates", default="20,40,60,80,100,130,160,200,300,400,600,800", help="msg/s per step"
    )
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between steps")
    parser.add_argument("--keyword-share", type=float, default=0.7)
    parser.add_argument("--timeout", type=float, default=5.0, help="WeChat waits 5 s")
    parser.add_argument("--p99-limit", type=float, default=1.0)
    parser.add_argument("--keep-alive", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main_async(parse_args())))
