"""Content checks benchmark: one 20,000-character document against a 50,000-word list.

Run: .venv/bin/python bench/checks/run.py [--words 50000] [--chars 20000] [--runs 30]
Prints the automaton build time (once) and the check time (median and max of N runs).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from publisher.checks.lists import CheckLists, Leader
from publisher.checks.run import Checker, CheckSubject

# Common characters of official writing, so words and text share an alphabet.
ALPHABET = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产"
    "种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从"
    "业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又"
    "么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位"
    "入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放"
    "决西被干做必战先回则任取据处府研质信息公开市县镇街道办事处医保社保缴费通知公告规划财政预算审计"
)


def words(n: int, rng: random.Random) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(ALPHABET) for _ in range(rng.randint(2, 5))))
    return sorted(out)


def document(chars: int, vocabulary: list[str], rng: random.Random) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        if rng.random() < 0.02:
            piece = rng.choice(vocabulary)  # some listed words occur
        elif rng.random() < 0.01:
            piece = "联系电话0564-3371234，"
        else:
            piece = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(5, 30))) + rng.choice(
                "，。；、"
            )
        parts.append(piece)
        size += len(piece)
    text = "".join(parts)[:chars]
    # Paragraphs as the body HTML would hold them.
    return "".join(f"<p>{text[i : i + 400]}</p>" for i in range(0, len(text), 400))


def main() -> int:
    """Build once, then time repeated checks; print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--words", type=int, default=50_000)
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(20261128)
    vocabulary = words(args.words, rng)
    half = len(vocabulary) // 2
    lists = CheckLists(
        banned_words=tuple(vocabulary[:half]),
        sensitive_words=tuple(vocabulary[half:]),
        leaders=(Leader("张建国", "市长"), Leader("李红梅", "副市长")),
    )
    html = document(args.chars, vocabulary, rng)
    subject = CheckSubject(
        title="关于印发示例市2026年重点工作任务的通知",
        summary="示例摘要。",
        body_html=html,
        channels=("website", "wechat:main", "weibo:main"),
    )
    started = time.perf_counter()
    checker = Checker(lists)
    build_ms = (time.perf_counter() - started) * 1000
    timings = []
    findings = 0
    for _ in range(args.runs):
        started = time.perf_counter()
        findings = len(checker.check(subject))
        timings.append((time.perf_counter() - started) * 1000)
    print(f"words={args.words} document_chars={args.chars} runs={args.runs} findings={findings}")
    print(f"build_ms={build_ms:.1f}")
    print(f"check_ms_median={statistics.median(timings):.2f} check_ms_max={max(timings):.2f}")
    print("target: check < 50 ms -> " + ("PASS" if statistics.median(timings) < 50 else "FAIL"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
