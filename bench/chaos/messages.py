"""Chaos: citizens' messages through the sandbox's WeChat while web processes are
SIGKILLed. Every message must be answered (a passive reply in one of WeChat's tries) or
acknowledged (``success``, then the reply by customer-service message), and none may be
handled twice (one claim per MsgId, never two replies, at most one customer-service
message per message, no duplicated case). One exception is counted apart, not hidden:
a customer-service send in flight when its process is killed may have arrived, and
WeChat's custom send has no idempotency key, so the bot sends it again (at least once;
``resent_after_cut_short``). A push answered ``success`` whose handler was still running
in the killed process is handled again by the scheduler's orphan tick.

Processes, on a dedicated PostgreSQL database created and dropped here: the sandbox (its
own ``govcast web``; it pushes each message to the application's ``/wechat/main`` the way
WeChat does: 5 s per try, up to 3 tries with the same MsgId, a refused or broken
connection being a failed try), the application ``govcast web --workers 2`` (two
children sharing the port with SO_REUSEPORT) and one ``govcast scheduler`` (retries of
customer-service replies). Every few seconds one web child is SIGKILLed, only while the
other one is serving (the supervisor restarts it), so the account is never down as a
whole: a try the kill breaks is retried by the sandbox and reaches the live child.

The messages: keyword texts, corpus searches, menu clicks, subscribe events and guided
intakes (留言 -> type -> text -> consent: a case), sent by concurrent citizens, each
citizen one message at a time.

Usage:  .venv/bin/python bench/chaos/messages.py [--messages 5000] [--citizens 40]
        [--kill-every 3] [--reply-budget 4.5] [--rate 0] [--time-cap 900]
Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from defusedxml import ElementTree as ET  # noqa: E402

from bench.callback.corpus import WORDS, ensure_corpus  # noqa: E402
from bench.chaos.fleet import Fleet, free_port, wait_ready, write_config  # noqa: E402
from bench.queue.dbs import scratch_database  # noqa: E402
from bot.deferred import INTERRUPTED  # noqa: E402

ACCOUNT = "main"
KEYWORDS = {
    "医保": "医保业务请到市政务服务中心二楼办理，或登录医保服务平台。",
    "公积金": "公积金查询：12329 热线或公积金中心网站。",
    "办事指南": "办事指南见政府网站“办事服务”栏目。",
    "上班时间": "工作日 9:00-12:00、13:30-17:30。",
}
CASE_RECEIVED = "留言已收到"
TOKEN_RE = re.compile(r"混沌\d{5}")
# Shares of the mix, per message (an intake is four messages).
MIX = {"keyword": 0.33, "search": 0.33, "click": 0.08, "subscribe": 0.08, "intake": 0.18}


@dataclass(frozen=True)
class Step:
    """One message a citizen sends: a text, or an event (with its key)."""

    kind: str  # keyword | search | click | subscribe | intake
    text: str = ""
    event: str = ""
    event_key: str = ""

    def body(self, follower: int) -> dict[str, Any]:
        """The sandbox's ``_citizen/send`` request for this step."""
        if self.event:
            return {
                "account": ACCOUNT,
                "follower": follower,
                "msgtype": "event",
                "event": self.event,
                "event_key": self.event_key,
            }
        return {"account": ACCOUNT, "follower": follower, "msgtype": "text", "content": self.text}


@dataclass
class Script:
    """Messages one citizen sends in order; intakes get a follower of their own."""

    steps: list[Step]
    token: str = ""  # the intake's case text marker
    follower: int | None = None


@dataclass
class Sent:
    """What happened to one message, from the sandbox's answer."""

    script: int
    step: Step
    follower: int
    openid: str = ""
    msg_id: str | None = None
    create_time: int = 0
    tries: int = 0
    ok: bool = False
    shown: str | None = None
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def dedup_key(self) -> str:
        """The bot's identity of the push (bot.router.InboundMessage.dedup_key)."""
        if self.msg_id:
            return f"m:{self.msg_id}"
        return f"e:{self.openid}:{self.create_time}:{self.step.event}"


def plan(count: int, rng: random.Random) -> list[Script]:
    """About ``count`` messages in scripts, drawn from the mix (seeded)."""
    kinds, weights = zip(*MIX.items(), strict=True)
    scripts: list[Script] = []
    total = 0
    while total < count:
        kind = rng.choices(kinds, weights)[0]
        if kind == "intake":
            if count - total < 4:
                continue
            token = f"混沌{len(scripts):05d}"
            steps = [
                Step("intake", text="留言"),
                Step("intake", text=str(rng.randint(1, 4))),
                Step("intake", text=f"{token}：小区门口路灯坏了一周，请尽快修理。"),
                Step("intake", text=rng.choice(("1", "2"))),
            ]
            scripts.append(Script(steps, token=token))
        elif kind == "keyword":
            scripts.append(Script([Step("keyword", text=rng.choice(list(KEYWORDS)))]))
        elif kind == "search":
            words = rng.sample(WORDS, 2)
            scripts.append(Script([Step("search", text=f"{words[0]}{words[1]}")]))
        elif kind == "click":
            key = rng.choice(("latest_releases", "my_cases", "press_conferences"))
            scripts.append(Script([Step("click", event="CLICK", event_key=key)]))
        else:
            scripts.append(Script([Step("subscribe", event="subscribe")]))
        total += len(scripts[-1].steps)
    return scripts


class Driver:
    """Concurrent citizens sending the scripts through the sandbox; kills web children."""

    def __init__(
        self, args: argparse.Namespace, sandbox_port: int, fleet: Fleet, port: int
    ) -> None:
        self.args = args
        self.url = f"http://127.0.0.1:{sandbox_port}/sandbox/wechat/_citizen/send"
        self.fleet = fleet
        self.port = port
        self.rng = random.Random(args.seed)
        self.scripts = plan(args.messages, self.rng)
        # Intakes each get a fresh follower after the citizens' own pools.
        self.pool = args.citizens * 8
        for n, script in enumerate(s for s in self.scripts if s.token):
            script.follower = self.pool + n
        self.followers_needed = self.pool + sum(1 for s in self.scripts if s.token) + 1
        self.sent: list[Sent] = []
        self.kill_log: list[tuple[float, int]] = []
        self.next_script = 0
        self.started = 0.0
        self.issued = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        """Send every script; kill web children meanwhile; return when all are sent."""
        self.started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=self.args.citizens + 4)
        async with aiohttp.ClientSession(connector=connector) as http:
            killer = asyncio.create_task(self.killer())
            try:
                await asyncio.gather(*(self.citizen(http, c) for c in range(self.args.citizens)))
            finally:
                self.done.set()
                await killer

    async def citizen(self, http: aiohttp.ClientSession, c: int) -> None:
        """One citizen loop: takes the next script and sends its steps one by one."""
        own = list(range(c, self.pool, self.args.citizens))
        last_event: dict[int, float] = {}
        turn = 0
        while self.next_script < len(self.scripts):
            index = self.next_script
            self.next_script += 1
            script = self.scripts[index]
            if script.follower is not None:
                follower = script.follower
            else:
                follower = own[turn % len(own)]
                turn += 1
            for step in script.steps:
                if step.event:
                    # An event's identity is sender + CreateTime (whole seconds): a second
                    # event from one follower within the same second would be the same push.
                    wait = last_event.get(follower, -10.0) + 1.2 - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    last_event[follower] = time.monotonic()
                await self.pace()
                self.sent.append(await self.send(http, index, step, follower))

    async def pace(self) -> None:
        """With ``--rate``, message n starts no sooner than n / rate after the start."""
        self.issued += 1
        if self.args.rate > 0:
            due = self.started + self.issued / self.args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def send(self, http: aiohttp.ClientSession, index: int, step: Step, f: int) -> Sent:
        """One message through the sandbox (which makes WeChat's tries)."""
        sent = Sent(script=index, step=step, follower=f)
        try:
            async with http.post(
                self.url, json=step.body(f), timeout=aiohttp.ClientTimeout(total=60)
            ) as response:
                data = await response.json(content_type=None)
                if response.status != 200:
                    sent.error = f"sandbox answered {response.status}: {data}"
                    return sent
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            sent.error = f"sandbox call failed: {type(exc).__name__} {exc}"
            return sent
        sent.openid = str(data["openid"])
        sent.msg_id = data["msg_id"]
        sent.create_time = int(data["create_time"])
        sent.tries = int(data["tries"])
        sent.ok = bool(data["ok"])
        sent.shown = data["shown"]
        sent.seconds = float(data["seconds"])
        sent.failures = list(data["failures"])
        return sent

    async def killer(self) -> None:
        """Every few seconds (jittered) SIGKILL one web child while another serves."""
        if self.args.kill_every <= 0:
            return
        while not self.done.is_set():
            pause = self.args.kill_every * self.rng.uniform(0.5, 1.5)
            try:
                await asyncio.wait_for(self.done.wait(), timeout=pause)
                return
            except TimeoutError:
                pass
            # Wait for the restarted child to serve again before the next kill.
            while not self.done.is_set():
                victim = self.fleet.kill_web_child("web", self.port, self.rng)
                if victim is not None:
                    at = time.monotonic() - self.started
                    self.kill_log.append((at, victim))
                    print(f"  {at:6.1f} s: SIGKILL web child {victim}", flush=True)
                    break
                await asyncio.sleep(0.2)


def reply_shown(xml: str) -> str | None:
    """What the citizen sees for a stored passive reply (as the sandbox shows it)."""
    if xml in ("", "success"):
        return None
    root = ET.fromstring(xml)
    kind = root.findtext("MsgType") or ""
    if kind == "text":
        return root.findtext("Content") or ""
    if kind == "news":
        titles = [
            f"{item.findtext('Title') or ''} {item.findtext('Url') or ''}".strip()
            for item in root.iter("item")
        ]
        return "[图文] " + "\n".join(titles)
    return f"[{kind}]"


async def prepare(url: str, corpus: int) -> None:
    """Keyword rules and a search corpus in the scratch database."""
    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    if corpus:
        await ensure_corpus(plain, corpus)
    conn = await asyncpg.connect(plain)
    try:
        for pattern, reply in KEYWORDS.items():
            await conn.execute(
                "INSERT INTO bot_keyword_rules (account, match, pattern, priority, reply_text,"
                " enabled, note, created_by, created_at, updated_at) VALUES ('', 'exact', $1,"
                " 10, $2, true, 'chaos', 'chaos', now(), now())",
                pattern,
                reply,
            )
    finally:
        await conn.close()


async def unsettled_replies(url: str) -> int:
    """Customer-service replies still to send (or being sent: a killed process's attempt
    is retried by the scheduler when its lease runs out), and pushes answered ``success``
    whose late reply is not recorded yet (a killed process's are handled again by the
    scheduler's orphan tick once they are ``ORPHAN_AGE`` old)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM bot_deferred_replies"
                " WHERE state IN ('pending', 'waiting_channel', 'sending')"
            )
        ) + int(await conn.fetchval("SELECT count(*) FROM bot_deferred_pushes"))
    finally:
        await conn.close()


async def verify(url: str, driver: Driver) -> tuple[list[str], dict[str, Any]]:
    """Check every message against the bot's records and the sandbox's own lists."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        inbound = {
            r["dedup_key"]: r
            for r in await conn.fetch(
                "SELECT dedup_key, openid, state, reply FROM bot_inbound WHERE account = $1",
                ACCOUNT,
            )
        }
        deferred = {
            r["dedup_key"]: r
            for r in await conn.fetch(
                "SELECT dedup_key, openid, state, via, attempts, last_error, reply::text AS reply"
                " FROM bot_deferred_replies"
                " WHERE account = $1",
                ACCOUNT,
            )
        }
        kept_pushes = int(await conn.fetchval("SELECT count(*) FROM bot_deferred_pushes"))
        custom_rows = await conn.fetch(
            "SELECT openid, content FROM sandbox_messages WHERE account = $1 AND kind = 'custom'",
            ACCOUNT,
        )
        custom = Counter(r["openid"] for r in custom_rows)
        pushes = Counter(
            (r["msg_id"], r["direction"])
            for r in await conn.fetch(
                "SELECT msg_id, direction FROM sandbox_messages"
                " WHERE account = $1 AND msg_id IS NOT NULL",
                ACCOUNT,
            )
        )
        cases = Counter(
            found.group(0)
            for r in await conn.fetch("SELECT text FROM cases WHERE text LIKE '%混沌%'")
            if (found := TOKEN_RE.search(str(r["text"])))
        )
    finally:
        await conn.close()

    problems: list[str] = []
    counts: Counter[str] = Counter()
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = defaultdict(list)
    causes: Counter[str] = Counter()
    sent_custom: Counter[str] = Counter()
    for row in deferred.values():
        if row["state"] == "sent":
            sent_custom[row["openid"]] += 1
    received_case: dict[int, bool] = defaultdict(bool)
    cut_short_failed: list[Any] = []
    for m in driver.sent:
        if m.error:
            counts["driver_errors"] += 1
            problems.append(f"script {m.script}: {m.error}")
            continue
        counts["tries"] += m.tries
        counts["retries"] += m.tries - 1
        causes.update(m.failures)
        record = inbound.get(m.dedup_key)
        late = deferred.get(m.dedup_key)
        late_sent = late is not None and late["state"] == "sent"
        what = f"{m.step.kind} {m.dedup_key} ({m.tries} tries, failures {m.failures})"
        if m.ok:
            latencies.append(m.seconds)
            by_kind[m.step.kind].append(m.seconds)
        if m.ok and m.shown is not None:
            counts["answered_in_reply"] += 1
            if late_sent:
                counts["duplicates"] += 1
                problems.append(f"{what}: a passive reply AND a customer-service message")
            if record is None:
                counts["apologies"] += 1  # the claim itself failed: the apology was sent
            elif record["state"] == "done" and reply_shown(record["reply"] or "") != m.shown:
                counts["duplicates"] += 1
                problems.append(f"{what}: the citizen saw a reply other than the stored one")
            if m.step.kind == "intake" and CASE_RECEIVED in m.shown:
                received_case[m.script] = True
        elif (m.ok or m.tries == 3) and late_sent:
            counts["acknowledged_then_sent" if m.ok else "unavailable_then_sent"] += 1
            if m.step.kind == "intake" and late is not None and late["reply"]:
                # The stored reply is JSON text, perhaps with \u escapes: decode it first.
                content = json.dumps(json.loads(late["reply"]), ensure_ascii=False)
                received_case[m.script] = CASE_RECEIVED in content
        elif (
            (m.ok or m.tries == 3)
            and late is not None
            and late["state"] == "failed"
            and (late["last_error"] or "").startswith(INTERRUPTED)
        ):
            # Delivered or not: settled below, per citizen, against the sandbox's list.
            cut_short_failed.append(m)
        else:
            counts["lost"] += 1
            state = record["state"] if record is not None else "no claim"
            extra = f", late reply {late['state']} {late['last_error']}" if late else ""
            seen = "success" if m.ok else "unavailable"
            problems.append(f"LOST {what}: the citizen got {seen}; claim {state}{extra}")
    # Customer-service messages: as many on the sandbox as the bot marked sent, per citizen.
    # An attempt cut short mid-send by a SIGKILL may have delivered its message (WeChat's
    # custom send has no idempotency key, so the bot sends again: at least once). The bot
    # says so on the row (INTERRUPTED); arrivals beyond "sent" are first put down to such
    # rows: a refused retry of one (then its message did arrive), then a resent one.
    cut_short: dict[str, Counter[str]] = defaultdict(Counter)
    refused_by: Counter[str] = Counter()
    for row in deferred.values():
        if (row["last_error"] or "").startswith(INTERRUPTED):
            cut_short[row["openid"]][row["state"]] += 1
    for openid in set(custom) | set(sent_custom):
        excess = custom[openid] - sent_custom[openid]
        refused = min(max(excess, 0), cut_short[openid]["failed"])
        counts["cut_short_then_refused"] += refused
        refused_by[openid] = refused
        excess -= refused
        resent = min(max(excess, 0), cut_short[openid]["sent"])
        counts["resent_after_cut_short"] += resent
        excess -= resent
        if excess > 0:
            counts["duplicates"] += excess
            # What the bot did with each of this citizen's late replies, and what arrived.
            tried = sorted(
                f"{r['state']}/{r['attempts']}/{(r['last_error'] or '')[:60]}"
                for r in deferred.values()
                if r["openid"] == openid
            )
            arrived = Counter(str(r["content"])[:24] for r in custom_rows if r["openid"] == openid)
            problems.append(
                f"{openid}: {custom[openid]} customer-service messages on the sandbox, "
                f"{sent_custom[openid]} sent by the bot; bot rows {tried}; arrived {dict(arrived)}"
            )
        elif excess < 0:
            counts["lost"] += sent_custom[openid] - custom[openid]
            problems.append(f"{openid}: customer-service messages marked sent never arrived")
    # A cut-short row whose retry was refused: delivered if its citizen got a message
    # more than the bot marked sent, lost otherwise.
    for m in cut_short_failed:
        late = deferred[m.dedup_key]
        if refused_by[late["openid"]] > 0:
            refused_by[late["openid"]] -= 1
            continue
        counts["lost"] += 1
        problems.append(
            f"LOST {m.step.kind} {m.dedup_key}: cut short mid-send, the retry failed"
            f" ({late['last_error']}), and nothing arrived"
        )
    # The sandbox's own list: one push and at most one shown outcome per MsgId.
    for (msg_id, direction), n in pushes.items():
        if n > 1:
            counts["duplicates"] += 1
            problems.append(f"sandbox lists MsgId {msg_id} {n} times ({direction})")
    # Cases: at most one per intake; exactly one where the citizen was told it was received.
    for index, script in enumerate(driver.scripts):
        if not script.token:
            continue
        n = cases.get(script.token, 0)
        if n > 1:
            counts["duplicates"] += n - 1
            problems.append(f"intake {script.token}: {n} cases")
        if received_case.get(index) and n == 0:
            counts["lost"] += 1
            problems.append(f"intake {script.token}: told received, but no case")
    counts["cases"] = sum(cases.values())
    stuck = [k for k, r in inbound.items() if r["state"] == "handling"]
    latencies.sort()
    figures: dict[str, Any] = {
        "messages": len(driver.sent),
        "tries": counts["tries"],
        "retries": counts["retries"],
        "retry_causes": dict(causes),
        "kills": driver.fleet.kills,
        "answered_in_reply": counts["answered_in_reply"],
        "acknowledged_then_sent": counts["acknowledged_then_sent"],
        "unavailable_then_sent": counts["unavailable_then_sent"],
        "apologies": counts["apologies"],
        "lost": counts["lost"],
        "duplicates": counts["duplicates"],
        "resent_after_cut_short": counts["resent_after_cut_short"],
        "cut_short_then_refused": counts["cut_short_then_refused"],
        "driver_errors": counts["driver_errors"],
        "cases": counts["cases"],
        "claims_left_handling": len(stuck),
        "claims_left_deferred": sum(1 for r in inbound.values() if r["state"] == "deferred"),
        "deferred_pushes_kept": kept_pushes,
        "kinds": dict(Counter(m.step.kind for m in driver.sent)),
        "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "max_ms": round(1000 * (latencies[-1] if latencies else 0.0), 1),
        "p50_p99_ms_by_kind": {
            kind: [round(1000 * percentile(sorted(v), q)) for q in (0.5, 0.99)]
            for kind, v in sorted(by_kind.items())
        },
    }
    if len(driver.sent) != sum(len(s.steps) for s in driver.scripts):
        problems.append("not every planned message was sent")
    return problems, figures


def problem_kind(problem: str) -> str:
    """A problem line without its identifiers, to count problems of one shape."""
    shape = re.sub(r"[me]:\S+|o[\w-]{27}|混沌\d+|MsgId \d+|rid: [\w-]+", "#", problem)
    return re.sub(r"\(\d+ tries, failures \[[^]]*\]\)", "(tries)", shape)[:200]


def log_messages(path: Path) -> Counter[str]:
    """How often each JSON log message appears in a process's log."""
    found: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                found[str(json.loads(line).get("msg", ""))] += 1
            except (ValueError, AttributeError):
                found[line[:80]] += 1
    return found


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank); 0 when empty."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


def run(args: argparse.Namespace) -> int:
    """Start the fleet, send the messages under kills, verify; 0 when all checks hold."""
    started = time.monotonic()
    with (
        scratch_database("postgresql", "chaosmsg") as url,
        tempfile.TemporaryDirectory(prefix="govcast-chaosmsg-") as tmp,
    ):
        folder = Path(tmp)
        port, sandbox_port = free_port(), free_port()
        probe = Driver(args, sandbox_port, Fleet(folder, folder, folder), port)
        sandbox_extra = f"followers = {probe.followers_needed}\n"
        bot = f"[bot]\nreply_budget_seconds = {args.reply_budget}\n"
        config = write_config(
            folder, url, port, sandbox_port, sandbox_extra=sandbox_extra, extra=bot
        )
        sandbox_config = write_config(
            folder,
            url,
            sandbox_port,
            sandbox_port,
            sandbox_extra=sandbox_extra + f'callback_base_url = "http://127.0.0.1:{port}"\n',
            extra=bot,
        )
        asyncio.run(prepare(url, args.corpus))
        fleet = Fleet(folder, config, sandbox_config)
        driver = Driver(args, sandbox_port, fleet, port)
        try:
            # Side by side: neither needs the other to start, and the wall time counts in CI.
            fleet.start("sandbox", "web", config=sandbox_config)
            fleet.start("web", "web", "--workers", "2")
            wait_ready(sandbox_port, timeout=180)
            wait_ready(port, timeout=180)
            deadline = time.monotonic() + 180
            while len(fleet.serving_children("web", port)) < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError("the two web children never both served")
                time.sleep(0.2)
            fleet.start("scheduler", "scheduler")
            print(
                f"fleet up after {time.monotonic() - started:.1f} s; sending "
                f"{sum(len(s.steps) for s in driver.scripts)} messages from "
                f"{args.citizens} citizens",
                flush=True,
            )
            sending = time.monotonic()
            try:
                asyncio.run(asyncio.wait_for(driver.run(), timeout=args.time_cap))
            except TimeoutError:
                print(f"  time cap of {args.time_cap:.0f} s reached while sending", flush=True)
            sent_in = time.monotonic() - sending
            # Late replies: the web processes send them at once, the scheduler retries.
            settle_until = time.monotonic() + args.settle_seconds
            time.sleep(2.0)  # a reply over the budget may still be on its way to the table
            while time.monotonic() < settle_until and asyncio.run(unsettled_replies(url)):
                time.sleep(1.0)
            problems, figures = asyncio.run(verify(url, driver))
        except BaseException:
            fleet.stop_all()
            print(fleet.tails(("sandbox", "web", "scheduler")))
            raise
        codes = fleet.stop_all()
        unclean = {n: c for n, c in codes.items() if c != 0}
        if unclean:
            problems.append(f"processes did not stop cleanly: {unclean}")
        figures["sent_in_s"] = round(sent_in, 1)
        figures["messages_per_s"] = round(len(driver.sent) / max(sent_in, 0.001), 1)
        figures["reply_budget_s"] = args.reply_budget
        print(
            f"chaos messages: {json.dumps(figures, ensure_ascii=False)}",
            flush=True,
        )
        if problems:
            print(f"FAILED ({len(problems)} problems):\n  " + "\n  ".join(problems[:40]))
            print("problems by kind:")
            for shape, n in Counter(map(problem_kind, problems)).most_common():
                print(f"  {n:5d}  {shape}")
            print("log messages by process:")
            for name in ("web", "sandbox", "scheduler"):
                for msg, n in log_messages(folder / f"{name}.log").most_common(8):
                    print(f"  {name}: {n:5d}  {msg}")
            return 1
        print("OK: every message answered or acknowledged; none handled twice")
        return 0


def main(argv: list[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--citizens", type=int, default=40, help="concurrent citizens")
    parser.add_argument("--kill-every", type=float, default=3.0, help="0: no kills")
    parser.add_argument("--reply-budget", type=float, default=4.5)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0: as fast")
    parser.add_argument("--corpus", type=int, default=20_000, help="search index items")
    parser.add_argument("--settle-seconds", type=float, default=90.0)
    parser.add_argument("--time-cap", type=float, default=900.0, help="for the sending")
    parser.add_argument("--seed", type=int, default=7)
    # SIGTERM (a CI time-out, an operator) unwinds through run()'s clean-up, which stops
    # the fleet and drops the database, instead of leaving processes behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
