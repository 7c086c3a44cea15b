"""A tiny run of bench/website/run.py so that the benchmark keeps working (no timing is
asserted; the figures come from the full run documented in BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_script_runs_on_a_tiny_catalog(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "website" / "run.py"),
            "--items",
            "300",
            "--small",
            "60",
            "--db",
            "sqlite",
            "--rounds",
            "1",
            "--publishes",
            "2",
            "--cache",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for label in (
        "search 2-char",
        "search 3-char",
        "search 6-char",
        "publish (entry+index)",
        "incremental export",
        "full static export",
        "memory",
    ):
        assert label in result.stdout, result.stdout
    assert (tmp_path / "catalog-300.sqlite3").is_file()
