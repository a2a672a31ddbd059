"""Export speed and memory per format, against plain loops over a plain SELECT in the same run.

    python -m bench.export [--rows 1000000] [--db PATH] [--formats csv,jsonl,...]

Builds an archive of N synthetic posts (or reuses the one at --db when it already holds N): real
texts, entities and reactions from the shared Desktop exports (../shared/data/exports; the test
fixtures when absent), spread over 20 channels, with 5 % edited twice, 1 % deleted and 2 % matching a
subscriber's query. Then every measurement runs in a fresh child process, so that its peak RSS
(`resource.getrusage`) is its own:

* `raw read`: the sqlite3 module iterating `SELECT <post columns> … ORDER BY date` (the export order);
* `plain csv` / `plain jsonl`: that loop writing each row with `csv.writer` / `json.dumps`;
* `tgmon <format>`: `core.exporters.run_export`, i.e. the real thing (typed records, enrichment
  with matched queries and edit history, hashing, manifest).

`vs read` is rows/s relative to the raw read; `vs plain` relative to the plain loop of the same kind
(the plain jsonl one for parquet and tdesktop). `RSS +` is the peak RSS above the RSS after imports.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXPORTS = ROOT.parent / "shared" / "data" / "exports"
FIXTURE_EXPORTS = ROOT / "tests" / "fixtures" / "tdesktop"
CHANNELS = 20
BATCH = 5000
KINDS = (
    "raw read", "plain csv", "plain jsonl", "tgmon csv", "tgmon jsonl", "tgmon jsonl.gz", "tgmon parquet",
    "tgmon tdesktop",
)  # fmt: skip
SELECT = (
    "SELECT p.channel_id, p.message_id, p.date, p.text, p.entities, p.lang, p.lang_confidence, p.views, "
    "p.forwards, p.replies, p.reactions, p.media_type, p.forwarded_from, p.reply_to, p.album_id, "
    "p.author, p.service_action, p.tags, p.permalink, p.edit_date, p.deleted_at, p.collected_at, "
    "p.content_hash, c.username, c.title, p.version, p.story_id "
    "FROM posts p JOIN channels c ON c.id = p.channel_id ORDER BY p.date, p.channel_id, p.message_id"
)


def rss_mb(key: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, in MB.

    /proc's values belong to this process image; `ru_maxrss` would carry the parent's peak over exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def source_posts() -> list[Any]:
    from collectors.tdesktop import read_export

    paths = sorted(SHARED_EXPORTS.glob("*.result.json")) or [
        FIXTURE_EXPORTS / "single_chat",
        FIXTURE_EXPORTS / "account.result.json",
    ]
    posts = [raw for path in paths for _, raws in read_export(path) for raw in raws if raw.text]
    print(f"texts: {len(posts)} posts from {', '.join(p.name for p in paths)}", file=sys.stderr)
    return posts


async def build(db: Path, rows: int) -> None:
    """`rows` synthetic posts written through the archive's own batched path."""
    from core.models import ProcessedPost, RawPost
    from core.pipeline import content_hash, extract_tags
    from core.storage.sqlite import SqliteArchive
    from core.storage.subscriptions import SubscriptionStore

    texts = source_posts()
    chance = random.Random(1)
    archive = await SqliteArchive.open(db)
    try:
        for n in range(CHANNELS):
            await archive.upsert_channel(
                2_000_000_000 + n, f"bench_{n}" if n % 2 else None, f"Канал {n}", watched=False
            )
        start = datetime(2023, 1, 1, tzinfo=UTC)
        started = time.perf_counter()
        edited: list[RawPost] = []
        deleted: dict[int, list[int]] = {}
        for first in range(0, rows, BATCH):
            batch = []
            for i in range(first, min(first + BATCH, rows)):
                model = texts[i % len(texts)]
                channel = 2_000_000_000 + i % CHANNELS
                raw = replace(
                    model,
                    channel_id=channel,
                    message_id=i // CHANNELS + 1,
                    date=start + timedelta(seconds=30 * i),
                    edit_date=None,
                    views=chance.randrange(100_000),
                    forwards=chance.randrange(100),
                    replies=chance.randrange(50) or None,
                )
                lang = "en" if raw.text.isascii() else "ru"
                batch.append(ProcessedPost(raw, lang, 0.9, extract_tags(raw), content_hash(raw)))
                if i % 20 == 7:
                    edit = replace(
                        raw, text=raw.text + "\n\nUPD: исправлено", edit_date=raw.date + timedelta(hours=1)
                    )
                    edited.append(edit)
                if i % 100 == 3:
                    deleted.setdefault(channel, []).append(raw.message_id)
            await archive.save_posts(batch)
            if first % (BATCH * 40) == 0:
                rate = (first + len(batch)) / (time.perf_counter() - started)
                print(f"  {first + len(batch)} posts stored ({rate:.0f}/s)", file=sys.stderr)
        for first in range(0, len(edited), BATCH):
            batch = [
                ProcessedPost(raw, "ru", 0.9, extract_tags(raw), content_hash(raw))
                for raw in edited[first : first + BATCH]
            ]
            await archive.save_posts(batch)
        for channel, ids in deleted.items():
            await archive.mark_deleted(channel, ids, datetime(2025, 1, 1, tzinfo=UTC))
        store = SubscriptionStore(archive)
        await store.upsert_subscriber(1, 1, "ru")
        query = await store.add_query(1, "новости OR news")
        async with archive._write() as conn:
            await conn.execute(
                "INSERT OR IGNORE INTO post_matches (post_id, query_id, matched_at) "
                "SELECT id, ?, 0 FROM posts WHERE id % 50 = 11",
                (query.id,),
            )
    finally:
        await archive.close()


def count_posts(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def measure_plain(kind: str, db: Path, out: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    cursor = conn.execute(SELECT)
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


async def measure_tgmon(kind: str, db: Path, out: Path) -> tuple[int, int]:
    from core.exporters import ExportRequest, run_export
    from core.storage.sqlite import SqliteArchive

    fmt = kind.removeprefix("tgmon ")
    compress = fmt.endswith(".gz")
    fmt = fmt.removesuffix(".gz")
    target = out / ("td" if fmt == "tdesktop" else f"dump.{fmt}")
    archive = await SqliteArchive.open(db)
    try:
        result = await run_export(archive, ExportRequest(fmt, target, compress=compress))
    finally:
        await archive.close()
    return result.rows, sum(f.bytes for f in result.files)


def child(kind: str, db: Path) -> None:
    """One measurement; prints a JSON line for the parent."""
    if kind.startswith("tgmon"):  # imports are not part of the measurement
        modules = ["core.exporters", "core.storage.sqlite"]
        if "parquet" in kind:
            modules.append("pyarrow.parquet")
        for module in modules:
            importlib.import_module(module)
        if "parquet" in kind:  # page in Arrow's and Parquet's code (zstd included): not the export's data
            warm_up_parquet()
    base = rss_mb("VmRSS")
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        if kind.startswith("tgmon"):
            rows, size = asyncio.run(measure_tgmon(kind, db, out))
        else:
            rows = measure_plain(kind, db, out)
            size = sum(p.stat().st_size for p in out.iterdir())
        seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "peak": rss_mb(), "base": base, "bytes": size}))


def warm_up_parquet() -> None:
    import io

    from core.exporters.parquet import COMPRESSION, arrow_schema, load_pyarrow

    pa, pq = load_pyarrow()
    schema = arrow_schema(pa)
    table = pa.Table.from_pylist([], schema=schema)
    pq.write_table(table, io.BytesIO(), compression=COMPRESSION)


def run_child(kind: str, db: Path) -> dict[str, Any]:
    found = subprocess.run(
        [sys.executable, "-m", "bench.export", "--child", kind, "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{found.stderr}")
    result: dict[str, Any] = json.loads(found.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="archive to build or reuse (default: a temporary one)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated subset of: " + ", ".join(KINDS)
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        have = count_posts(db)
        if have < args.rows:
            if have:
                raise SystemExit(f"{db} holds {have} posts, fewer than --rows {args.rows}: give another --db")
            print(f"building {db} with {args.rows} posts …", file=sys.stderr)
            started = time.perf_counter()
            asyncio.run(build(db, args.rows))
            print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        else:
            print(f"reusing {db} ({have} posts)", file=sys.stderr)
        report(db, [k.strip() for k in args.kinds.split(",") if k.strip()])


def report(db: Path, kinds: list[str]) -> None:
    results: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        print(f"  measuring {kind} …", file=sys.stderr)
        results[kind] = run_child(kind, db)
    read = results.get("raw read")
    print(
        f"{'kind':<16}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'vs read':>9}{'vs plain':>9}"
        f"{'peak RSS':>10}{'RSS +':>8}{'output':>10}"
    )
    for kind, r in results.items():
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0.0
        vs_read = f"{rate / (read['rows'] / read['seconds']):.2f}" if read and read["seconds"] else "-"
        plain_kind = "plain csv" if "csv" in kind else "plain jsonl"
        plain = results.get(plain_kind)
        vs_plain = "-"
        if kind.startswith("tgmon") and plain and plain["seconds"]:
            vs_plain = f"{rate / (plain['rows'] / plain['seconds']):.2f}"
        print(
            f"{kind:<16}{r['rows']:>9}{r['seconds']:>9.1f}{rate:>10.0f}{vs_read:>9}{vs_plain:>9}"
            f"{r['peak']:>8.0f}MB{r['peak'] - r['base']:>6.0f}MB{r['bytes'] / 1e6:>8.0f}MB"
        )


if __name__ == "__main__":
    main()
