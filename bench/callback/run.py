"""Callback benchmark: govcast's bot against a bare wechatpy + aiohttp echo and WeRoBot.

Run (needs PostgreSQL, wrk, and the `bench` extra: werobot, gunicorn):
    .venv/bin/python bench/callback/run.py [--duration 8] [--rounds 3] [--connections 50]

One run starts, each as its own single process: govcast's real web application (bot
included, PostgreSQL, a 400,000-item search index built once by corpus.py), the same with
the search cache off, the minimal handler, and WeRoBot on gunicorn (1 sync worker). wrk
(1 thread, 50 connections, another process) POSTs pre-signed pushes, each with its own
MsgId, so every govcast message is claimed and its reply persisted (no retry shortcut).
Each scenario starts once the govcast processes are idle (a previous scenario's searches
and background cache refreshes finished); the cached search scenarios are preceded by an
unmeasured warm-up of every query, each round, as the cache lives 60 s.
Prints requests/s and p50/p99 per scenario (medians over rounds) and the target ratios.
"""

# ruff: noqa: E402, E501, S105, S310, B007

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg

from bench.callback.corpus import WORDS, ensure_corpus
from bot.wire import AESKey, signature

HERE = Path(__file__).resolve().parent
PY = sys.executable
TOKEN = "spamtest"
AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx2c2769f8efd9abc2"
KEYWORD = "医保缴费"
KEYWORD_REPLY = "医保缴费请登录市医保局网站或拨打12345咨询。"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 90) -> None:
    until = time.time() + timeout
    while time.time() < until:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


class Pushes:
    """Builds signed (and encrypted) pushes with unique MsgIds."""

    def __init__(self) -> None:
        self.key = AESKey(AES, APPID)
        self.msg_id = int(time.time() * 1000) * 1000

    def line(self, path: str, content: str, safe: bool) -> str:
        self.msg_id += 1
        ts = str(int(time.time()))
        nonce = str(random.randint(10**8, 10**9))
        xml = (
            "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
            f"<FromUserName><![CDATA[o_bench_{self.msg_id % 5000}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{self.msg_id}</MsgId></xml>"
        )
        query = f"timestamp={ts}&nonce={nonce}&signature={signature(TOKEN, ts, nonce)}"
        if not safe:
            return f"{path}?{query}\t{xml}"
        encrypt = self.key.encrypt(xml.encode())
        query += f"&encrypt_type=aes&msg_signature={signature(TOKEN, ts, nonce, encrypt)}"
        body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return f"{path}?{query}\t{body}"

    def file(self, path: str, contents: list[str], safe: bool, count: int) -> Path:
        fd, name = tempfile.mkstemp(prefix="callback-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            for i in range(count):
                fh.write(self.line(path, contents[i % len(contents)], safe) + "\n")
        return Path(name)


def wrk(port: int, requests: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "post.lua"),
            f"http://127.0.0.1:{port}",
            "--",
            str(requests),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, **data}


def check(port: int, path: str, line_of: Pushes, content: str, safe: bool, expect: str) -> None:
    line = line_of.line(path, content, safe)
    target, body = line.split("\t", 1)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{target}", data=body.encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    if safe and text != "success":
        encrypt = text.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
        text = AESKey(AES, APPID).decrypt(encrypt).decode()
    if expect not in text:
        raise SystemExit(f"unexpected reply on :{port}{path}: {text[:300]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (gunicorn's worker is the master's child)."""
    total = cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        total += sum(tree_cpu_seconds(int(c)) for c in children.read_text().split())
    return total


def equal_rate_cpu(
    pid: int, port: int, path: str, safe: bool, rate: float, seconds: float
) -> dict[str, float]:
    """Server CPU per message at a fixed offered rate (open loop, bench/load's generator).

    Closed-loop rates differ between scenarios, and govcast's group commits share their
    fixed cost over more messages at higher rates; at one offered rate both modes get the
    same batching, so the difference in CPU per message is safe mode's own cost.
    """
    proc = subprocess.Popen(
        [
            PY,
            str(ROOT / "bench" / "load" / "generate.py"),
            "--port",
            str(port),
            "--mode",
            "safe" if safe else "plain",
            "--path",
            path,
            "--rates",
            str(rate),
            "--step-seconds",
            str(seconds),
            "--warmup-seconds",
            "1",
            "--keyword-share",
            "1",
            "--keep-alive",
            "--p99-limit",
            "5",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    before = 0.0
    step: dict[str, float] = {}
    for line in proc.stdout:
        if line.startswith("BEGIN "):
            before = tree_cpu_seconds(pid)
        elif line.startswith("STEP "):
            cpu = tree_cpu_seconds(pid) - before
            step = json.loads(line[5:])
            step["cpu_us"] = round(1e6 * cpu / max(step["sent"], 1), 1)
    proc.wait(timeout=60)
    if not step or step["ok"] != step["sent"]:
        raise SystemExit(f"equal-rate run on :{port}{path} failed: {step}")
    return step


def settle(pids: list[int], idle: float = 0.05, timeout: float = 60.0) -> None:
    """Wait until the processes together use under ``idle`` of a core (0.5 s window)."""
    until = time.time() + timeout
    while time.time() < until:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(0.5)
        if sum(cpu_seconds(pid) for pid in pids) - before < idle * 0.5:
            return
    print("warning: govcast processes still busy after 60 s", flush=True)


async def prepare(admin: str, dbname: str, items: int) -> str:
    conn = await asyncpg.connect(admin)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()
    url = admin.rsplit("/", 1)[0] + "/" + dbname
    from govcast.migrate import upgrade

    await asyncio.to_thread(upgrade, url.replace("postgresql://", "postgresql+asyncpg://", 1))
    await ensure_corpus(url, items)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE bot_inbound, bot_keyword_rules")
        await conn.execute(
            "INSERT INTO bot_keyword_rules (account, match, pattern, priority, reply_text, enabled,"
            " note, created_by, created_at, updated_at) VALUES ('', 'exact', $1, 10, $2, true,"
            " 'bench', 'bench', now(), now())",
            KEYWORD,
            KEYWORD_REPLY,
        )
    finally:
        await conn.close()
    return url


async def count_records(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM bot_inbound WHERE state = 'done'"))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--pg",
        default=os.environ.get("GOVCAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--db", default="govcast_bench_callback")
    parser.add_argument("--items", type=int, default=400_000)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--equal-rate",
        type=float,
        default=800.0,
        help="offered msg/s for the safe-mode cost comparison (0: skip it)",
    )
    args = parser.parse_args()

    url = asyncio.run(prepare(args.pg, args.db, args.items))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GOVCAST_DATABASE__URL": url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "GOVCAST_SANDBOX__ENABLED": "false",
        "GOVCAST_SCHEDULER__ENABLED": "false",
        "GOVCAST_LOGGING__LEVEL": "WARNING",
        "GOVCAST_STORAGE__DATA_DIR": tempfile.mkdtemp(prefix="bench-callback-"),
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__APP_ID": APPID,
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__TOKEN": TOKEN,
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__ENCODING_AES_KEY": AES,
        "GOVCAST_WECHAT__ACCOUNTS__MAIN__MODE": "safe",
        "GOVCAST_WECHAT__ACCOUNTS__PLAIN__APP_ID": APPID,
        "GOVCAST_WECHAT__ACCOUNTS__PLAIN__TOKEN": TOKEN,
        "GOVCAST_WECHAT__ACCOUNTS__PLAIN__MODE": "plain",
    }
    ports = {name: free_port() for name in ("govcast", "nocache", "nocases", "minimal", "werobot")}
    procs = [
        subprocess.Popen([PY, str(HERE / "serve_govcast.py"), str(ports["govcast"])], env=env),
        subprocess.Popen(
            [PY, str(HERE / "serve_govcast.py"), str(ports["nocache"])],
            env={**env, "GOVCAST_BOT__SEARCH_CACHE_SECONDS": "0"},
        ),
        subprocess.Popen(
            [PY, str(HERE / "serve_govcast.py"), str(ports["nocases"])],
            env={**env, "BENCH_WITHOUT_CASES": "1"},
        ),
        subprocess.Popen([PY, str(HERE / "minimal.py"), str(ports["minimal"])], env=env),
        subprocess.Popen(
            [
                str(Path(PY).parent / "gunicorn"),
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{ports['werobot']}",
                "--chdir",
                str(HERE),
                "--log-level",
                "warning",
                "werobot_app:app",
            ],
            env=env,
        ),
    ]
    try:
        for port in ports.values():
            wait_port(port)
        pushes = Pushes()
        queries = list(WORDS)
        random.Random(1).shuffle(queries)
        scenarios = [
            # name, server, path, contents, safe, expect
            ("govcast keyword plain", "govcast", "/wechat/plain", [KEYWORD], False, KEYWORD_REPLY),
            ("govcast keyword safe", "govcast", "/wechat/main", [KEYWORD], True, KEYWORD_REPLY),
            (
                "diagnostic: keyword plain without cases router",
                "nocases",
                "/wechat/plain",
                [KEYWORD],
                False,
                KEYWORD_REPLY,
            ),
            ("govcast search plain", "govcast", "/wechat/plain", queries, False, "<ArticleCount>"),
            ("govcast search safe", "govcast", "/wechat/main", queries, True, "<ArticleCount>"),
            (
                "govcast search uncached plain",
                "nocache",
                "/wechat/plain",
                queries,
                False,
                "<ArticleCount>",
            ),
            ("minimal echo plain", "minimal", "/wechat", [KEYWORD], False, KEYWORD),
            ("minimal echo safe", "minimal", "/wechat", [KEYWORD], True, KEYWORD),
            ("werobot echo plain", "werobot", "/wechat", [KEYWORD], False, KEYWORD),
            ("werobot echo safe", "werobot", "/wechat", [KEYWORD], True, KEYWORD),
        ]
        for name, server, path, contents, safe, expect in scenarios:
            check(ports[server], path, pushes, contents[0], safe, expect)
        # Warm-up: every search query once (the cached server then answers from memory
        # until its 60 s cache expires, as it would in an emergency with repeated words).
        from concurrent.futures import ThreadPoolExecutor

        def warm(item: tuple[str, bool, int]) -> None:
            path, safe, part = item
            for query in queries[part::4]:
                check(ports["govcast"], path, pushes, query, safe, "")

        def warm_all() -> None:
            with ThreadPoolExecutor(8) as pool:
                jobs = [("/wechat/plain", False, i) for i in range(4)]
                jobs += [("/wechat/main", True, i) for i in range(4)]
                list(pool.map(warm, jobs))
            # A stale entry is answered at once and refreshed in the background: let
            # those refreshes finish too, so the cache is fresh for the next minute.
            settle(servers)

        servers = [procs[0].pid, procs[1].pid, procs[2].pid]
        by_server = {name: proc.pid for name, proc in zip(ports, procs, strict=True)}
        t0 = time.perf_counter()
        warm_all()
        print(
            f"warm-up of {len(queries)} queries per account: {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)
        results: dict[str, list[dict[str, float]]] = {s[0]: [] for s in scenarios}
        for rnd in range(args.rounds):
            for name, server, path, contents, safe, _ in scenarios:
                if name == "govcast search plain":
                    # The previous round outlived the 60 s cache: warm it again (unmeasured).
                    warm_all()
                # No scenario starts while another's leftovers (searches still running,
                # stale entries refreshing) load the govcast processes.
                settle(servers)
                count = (
                    15_000 * args.duration
                    if server in ("govcast", "nocache", "nocases")
                    else 20_000
                )
                requests = pushes.file(path, contents, safe, count)
                try:
                    before = asyncio.run(count_records(url)) if server == "govcast" else 0
                    cpu_before = tree_cpu_seconds(by_server[server])
                    result = wrk(ports[server], requests, args.duration, args.connections)
                    # The server's own CPU per answered request: what a message costs it,
                    # unlike the rate, hardly moved by what else the machine runs.
                    cpu = tree_cpu_seconds(by_server[server]) - cpu_before
                    result["cpu_us"] = round(1e6 * cpu / max(result["requests"], 1), 1)
                    if server == "govcast":
                        result["persisted"] = asyncio.run(count_records(url)) - before
                finally:
                    requests.unlink()
                if result["requests"] > count and server in ("govcast", "nocache", "nocases"):
                    print(f"warning: {name} reused pushes (retry path)", flush=True)
                results[name].append(result)
                print(f"round {rnd + 1} {name}: {json.dumps(result)}", flush=True)
        # Safe mode's own cost, at one offered rate for all four (see equal_rate_cpu).
        equal: dict[str, list[float]] = {}
        if args.equal_rate > 0:
            pairs = [
                ("govcast keyword", "govcast", "/wechat/plain", "/wechat/main"),
                ("minimal echo", "minimal", "/wechat", "/wechat"),
            ]
            for rnd in range(args.rounds):
                for label, server, plain_path, safe_path in pairs:
                    for mode, path in (("plain", plain_path), ("safe", safe_path)):
                        settle(servers)
                        step = equal_rate_cpu(
                            by_server[server],
                            ports[server],
                            path,
                            mode == "safe",
                            args.equal_rate,
                            args.duration,
                        )
                        equal.setdefault(f"{label} {mode}", []).append(step["cpu_us"])
                        print(
                            f"round {rnd + 1} equal rate {args.equal_rate:.0f}/s {label} {mode}:"
                            f" {step['cpu_us']} us/msg, p99 {1000 * step['p99']:.1f} ms",
                            flush=True,
                        )
        print(f"load average after: {Path('/proc/loadavg').read_text().strip()}", flush=True)
        med = {
            name: {
                k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "cpu_us")
            }
            for name, runs in results.items()
        }
        print(
            "\n| scenario | req/s | p50 ms | p99 ms | server CPU us/msg |\n|---|---:|---:|---:|---:|"
        )
        for name, m in med.items():
            print(
                f"| {name} | {m['rps']:,.0f} | {m['p50']:.1f} | {m['p99']:.1f} | {m['cpu_us']:.0f} |"
            )

        def overhead(server: str) -> float:
            # Extra wall microseconds per message that safe mode costs, from the two rates.
            return 1e6 / med[f"{server} safe"]["rps"] - 1e6 / med[f"{server} plain"]["rps"]

        def cpu_overhead(server: str) -> float:
            # Extra server CPU microseconds per message that safe mode costs.
            return med[f"{server} safe"]["cpu_us"] - med[f"{server} plain"]["cpu_us"]

        kw = med["govcast keyword plain"]["rps"]

        def paired(a: str, b: str) -> str:
            # Each round runs the scenarios back to back: a round's ratio compares the two
            # under the same conditions of this shared machine, which drift between rounds.
            ratios = [x["rps"] / y["rps"] for x, y in zip(results[a], results[b], strict=True)]
            listed = ", ".join(f"{r:.2f}" for r in ratios)
            return f"median of rounds {statistics.median(ratios):.2f}x ({listed})"

        print(
            f"\nper round: keyword plain / WeRoBot echo plain ="
            f" {paired('govcast keyword plain', 'werobot echo plain')};"
            f" / minimal echo plain = {paired('govcast keyword plain', 'minimal echo plain')}"
        )
        print(
            f"\nkeyword plain / WeRoBot echo plain = {kw / med['werobot echo plain']['rps']:.3f}x (ratio of medians; target >= 1.5)"
            f"\nkeyword plain / minimal echo plain = {kw / med['minimal echo plain']['rps']:.0%} (target >= 50 %)"
            f"\nkeyword safe / WeRoBot echo safe = {med['govcast keyword safe']['rps'] / med['werobot echo safe']['rps']:.2f}x"
            f"\nkeyword safe / minimal echo safe = {med['govcast keyword safe']['rps'] / med['minimal echo safe']['rps']:.0%}"
            f"\nsafe-mode overhead per message: govcast keyword {overhead('govcast keyword'):.0f} us,"
            f" minimal {overhead('minimal echo'):.0f} us (from the rates)"
            f"\nsafe-mode CPU per message: govcast keyword {cpu_overhead('govcast keyword'):.0f} us,"
            f" minimal {cpu_overhead('minimal echo'):.0f} us, WeRoBot"
            f" {cpu_overhead('werobot echo'):.0f} us (target: govcast <= minimal)"
            + (
                f"\nsafe-mode CPU per message at {args.equal_rate:.0f} msg/s offered to each:"
                f" govcast keyword {statistics.median(equal['govcast keyword safe']) - statistics.median(equal['govcast keyword plain']):.0f} us"
                f" ({statistics.median(equal['govcast keyword plain']):.0f} -> {statistics.median(equal['govcast keyword safe']):.0f}),"
                f" minimal {statistics.median(equal['minimal echo safe']) - statistics.median(equal['minimal echo plain']):.0f} us"
                f" ({statistics.median(equal['minimal echo plain']):.0f} -> {statistics.median(equal['minimal echo safe']):.0f})"
                " (target: govcast <= minimal)"
                if equal
                else ""
            )
            + f"\nsearch p99: plain {med['govcast search plain']['p99']:.1f} ms, safe"
            f" {med['govcast search safe']['p99']:.1f} ms, uncached"
            f" {med['govcast search uncached plain']['p99']:.1f} ms (target < 100 ms)"
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
