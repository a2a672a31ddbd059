"""Every benchmark in one run: `python -m bench [--quick] [--only ingest,search] [--write-results]`.

Each section runs in its own child process (so its peak memory is its own and one failure does not
hide the rest) and reports figures beside a baseline measured in the same run. `--quick` shrinks
every size so CI can check that the benchmarks still run; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from importlib import import_module
from pathlib import Path

from bench.common import ROOT, Figure, table

# section name → module; the order is the issue's
SECTIONS = {
    "ingest": "bench.ingest",
    "matching": "bench.matching",
    "langid": "bench.langid_eval",
    "delivery": "bench.delivery",
    "export": "bench.export",
    "search": "bench.search",
    "collector": "bench.collector_memory",
}


def child(section: str, quick: bool) -> None:
    figures: list[Figure] = import_module(SECTIONS[section]).run(quick)
    print(json.dumps([asdict(f) for f in figures]))


def run_section(section: str, quick: bool) -> tuple[list[Figure], float, str | None]:
    started = time.perf_counter()
    argv = [sys.executable, "-m", "bench", "--child", section] + (["--quick"] if quick else [])
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        return [], elapsed, f"exit {done.returncode}"
    lines = done.stdout.strip().splitlines()
    try:
        return [Figure(**item) for item in json.loads(lines[-1])], elapsed, None
    except (IndexError, ValueError, TypeError) as exc:
        return [], elapsed, f"unreadable output ({exc})"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every section runs")
    parser.add_argument("--only", help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--child", choices=SECTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.quick)
        return 0
    chosen = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    figures: list[Figure] = []
    failed: list[str] = []
    started = time.perf_counter()
    for section in chosen:
        print(f"== {section}", file=sys.stderr, flush=True)
        found, elapsed, error = run_section(section, args.quick)
        print(f"   {section}: {len(found)} figures in {elapsed:.0f} s", file=sys.stderr, flush=True)
        figures += found
        if error:
            failed.append(f"{section} ({error})")
    header = f"Machine: {machine()}. Total {time.perf_counter() - started:.0f} s" + (
        " (--quick: sizes too small for the figures to mean anything)" if args.quick else ""
    )
    text = f"{header}\n\n{table(figures)}\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
