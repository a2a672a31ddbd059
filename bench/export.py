"""Export speed and memory per format, against plain loops over a plain SELECT in the same run.

    python -m bench.export [--rows 1000000] [--kinds "raw read,tgmon csv,..."] [--quick]

Reads the shared benchmark archive (bench/archive.py: N real posts, built once and cached). Every
measurement runs in a fresh child process, so that its peak RSS is its own:

* `raw read`: the sqlite3 module iterating `SELECT <post columns> … ORDER BY date` (the export order):
  no export can beat it, it is the limit;
* `plain csv` / `plain jsonl`: that loop writing each row with `csv.writer` / `json.dumps`: what a
  straightforward exporter does (the baseline of the ratios; plain jsonl for parquet and tdesktop);
* `tgmon <format>`: `core.exporters.run_export`, the real thing (every field, matched queries and edit
  history, hashing, manifest).

Memory is the peak RSS above the RSS after imports, for the whole archive and for its first quarter
(a date filter): flat memory means the same peak for both.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.archive import START, STEP, ensure_archive
from bench.common import ROOT, Figure, rss_mb, table

FORMATS = ("csv", "jsonl", "parquet", "tdesktop")
TARGETS = {"csv": 100_000, "jsonl": 100_000, "parquet": 150_000}
MEMORY_TARGET = 200  # MB above the baseline, whatever the row count
KINDS = ("raw read", "plain csv", "plain jsonl", *(f"tgmon {f}" for f in FORMATS))
SELECT = (
    "SELECT p.channel_id, p.message_id, p.date, p.text, p.entities, p.lang, p.lang_confidence, p.views, "
    "p.forwards, p.replies, p.reactions, p.media_type, p.forwarded_from, p.reply_to, p.album_id, "
    "p.author, p.service_action, p.tags, p.permalink, p.edit_date, p.deleted_at, p.collected_at, "
    "p.content_hash, c.username, c.title, p.version, p.story_id "
    "FROM posts p JOIN channels c ON c.id = p.channel_id WHERE p.date < ? "
    "ORDER BY p.date, p.channel_id, p.message_id"
)


def measure_plain(kind: str, db: Path, out: Path, until: int) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    cursor = conn.execute(SELECT, (until,))
    names = [d[0] for d in cursor.description]
    count = 0
    if kind == "raw read":
        for _ in cursor:
            count += 1
    elif kind == "plain csv":
        with (out / "plain.csv").open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(names)
            for row in cursor:
                writer.writerow(row)
                count += 1
    else:
        with (out / "plain.jsonl").open("w", encoding="utf-8") as file:
            for row in cursor:
                file.write(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False))
                file.write("\n")
                count += 1
    conn.close()
    return count


async def measure_tgmon(fmt: str, db: Path, out: Path, until: int) -> tuple[int, int]:
    from datetime import UTC, datetime

    from core.exporters import ExportRequest, run_export
    from core.models import PostFilter
    from core.storage.sqlite import SqliteArchive

    target = out / ("td" if fmt == "tdesktop" else f"dump.{fmt}")
    filters = PostFilter(until=datetime.fromtimestamp(until, UTC))
    archive = await SqliteArchive.open(db)
    try:
        result = await run_export(archive, ExportRequest(fmt, target, filters))
    finally:
        await archive.close()
    return result.rows, sum(f.bytes for f in result.files)


def child(kind: str, db: Path, until: int) -> None:
    """One measurement; prints a JSON line for the parent."""
    if kind.startswith("tgmon"):  # imports are not part of the measurement
        for module in ("core.exporters", "core.exporters.tdesktop", "core.storage.sqlite"):
            importlib.import_module(module)
        if "parquet" in kind:  # page in Arrow's and Parquet's code (zstd included): not the export's data
            warm_up_parquet()
    base = rss_mb("VmRSS")
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp:
        out = Path(tmp)
        started, cpu = time.perf_counter(), time.process_time()
        if kind.startswith("tgmon"):
            rows, size = asyncio.run(measure_tgmon(kind.removeprefix("tgmon "), db, out, until))
        else:
            rows = measure_plain(kind, db, out, until)
            size = sum(p.stat().st_size for p in out.iterdir())
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    found = {"rows": rows, "seconds": seconds, "cpu": cpu, "peak": rss_mb(), "base": base, "bytes": size}
    print(json.dumps(found))


def warm_up_parquet() -> None:
    import io

    from core.exporters.parquet import COMPRESSION, arrow_schema, load_pyarrow

    pa, pq = load_pyarrow()
    table = pa.Table.from_pylist([], schema=arrow_schema(pa))
    pq.write_table(table, io.BytesIO(), compression=COMPRESSION)


def run_child(kind: str, db: Path, until: int) -> dict[str, Any]:
    found = subprocess.run(
        [sys.executable, "-m", "bench.export", "--child", kind, "--db", str(db), "--until", str(until)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{found.stderr}")
    result: dict[str, Any] = json.loads(found.stdout.strip().splitlines()[-1])
    print(
        f"  {kind}: {result['rows']} rows in {result['seconds']:.1f} s (cpu {result['cpu']:.1f} s), "
        f"RSS +{result['peak'] - result['base']:.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    return result


def warm_cache(db: Path) -> None:
    """Read the file once, so that no measurement pays for the first read from disk."""
    with db.open("rb") as file:
        while file.read(16 << 20):
            pass


def measure(rows: int, kinds: list[str], *, quarter: bool = True) -> list[Figure]:
    """Every kind on the whole archive, the exports also on its first quarter (memory: `quarter`)."""
    db = ensure_archive(rows)
    warm_cache(db)
    whole = START + STEP * rows  # every post is older
    results = {kind: run_child(kind, db, whole) for kind in kinds}
    first = START + STEP * (rows // 4)
    small = {kind: run_child(kind, db, first) for kind in kinds if quarter and kind.startswith("tgmon")}
    return figures(rows, results, small)


def rate(result: dict[str, Any] | None) -> float | None:
    return result["rows"] / result["seconds"] if result and result["seconds"] else None


def figures(rows: int, results: dict[str, dict[str, Any]], small: dict[str, dict[str, Any]]) -> list[Figure]:
    found: list[Figure] = []
    read = rate(results.get("raw read"))
    if read is not None:
        found.append(Figure("export", "raw read (the limit)", read, "rows/s", note=f"{rows:,} posts"))
    for fmt in FORMATS:
        mine = results.get(f"tgmon {fmt}")
        if mine is None:
            continue
        plain = "plain csv" if fmt == "csv" else "plain jsonl"
        speed = rate(mine)
        assert speed is not None
        share = f"{speed / read:.2f} of raw read, " if read else ""
        found.append(
            Figure(
                "export",
                f"{fmt} rows/s",
                speed,
                "rows/s",
                baseline_name=plain if plain in results else "",
                baseline=rate(results.get(plain)),
                target=TARGETS.get(fmt),
                note=f"{share}cpu {mine['rows'] / mine['cpu']:,.0f} rows/cpu-s",
            )
        )
        quarter = small.get(f"tgmon {fmt}")
        found.append(
            Figure(
                "export",
                f"{fmt} peak RSS",
                mine["peak"] - mine["base"],
                "MB",
                baseline_name=f"{quarter['rows']:,} rows" if quarter else "",
                baseline=quarter["peak"] - quarter["base"] if quarter else None,
                target=MEMORY_TARGET,
                higher_is_better=False,
                note=f"above baseline, {mine['rows']:,} rows",
            )
        )
    return found


def run(quick: bool) -> list[Figure]:
    return measure(5_000 if quick else 1_000_000, list(KINDS), quarter=not quick)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="5,000 rows: checks that it runs")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated subset of: " + ", ".join(KINDS)
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.until)
        return
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    print(table(measure(5_000 if args.quick else args.rows, kinds, quarter=not args.quick)))


if __name__ == "__main__":
    main()
