"""Full-text search latency on the shared benchmark archive, against a naive LIKE scan in the same run.

    python -m bench.search [--rows 1000000] [--repeat 3] [--quick] [--show]

Every query goes through the real path, `core.search.search` (query language → FTS5 prefilter →
matcher → newest-first page of 20) on the archive of bench/archive.py (N real posts, built once and
cached). The query mix is drawn from the archive's own index (its fts5vocab document counts), so it
works on the shared data and on the fixtures alike: for each script (Cyrillic Russian, Ukrainian,
Latin, Arabic, Chinese) a rare word (≤ 0.01 % of posts), a medium one (~0.5 %) and a very common one
(≥ 5 %), then phrases, OR, exclusions, prefixes (`word*`) and a `lang:` filter made of them.

Baseline: `SELECT … WHERE text LIKE '%word%' ORDER BY date DESC LIMIT 20` (newest first, through the
date index, as a naive search would), on the single-word queries only, once each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.archive import ensure_archive
from bench.common import Figure, percentile, table

TARGET_P95_MS = 50.0
LIMIT = 20
SCRIPTS = {
    "ru": re.compile(r"^[а-яё]+$"),
    "uk": re.compile(r"^[а-яёіїєґ']*[іїєґ][а-яёіїєґ']*$"),
    "en": re.compile(r"^[a-z]+$"),
    "ar": re.compile(r"^[\u0621-\u064a]+$"),
    "zh": re.compile(r"^[\u4e00-\u9fff]$"),
}


@dataclass(frozen=True, slots=True)
class Case:
    kind: str  # rare, medium, common, phrase, or, not, prefix, filter
    lang: str
    text: str


def vocabulary(db: Path) -> dict[str, list[tuple[str, int]]]:
    """Indexed words with their document counts, by script; only words of 3+ letters (1 for Chinese)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with contextlib.closing(conn):
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, posts_fts, row)")
        found: dict[str, list[tuple[str, int]]] = {lang: [] for lang in SCRIPTS}
        for term, docs in conn.execute("SELECT term, doc FROM temp.vocab"):
            for lang, pattern in SCRIPTS.items():
                if pattern.match(term) and (len(term) >= 3 or lang == "zh"):
                    found[lang].append((term, docs))
                    break
    return found


def pick(words: list[tuple[str, int]], low: float, high: float, chance: random.Random) -> str | None:
    band = sorted(w for w, n in words if low <= n <= high)
    return chance.choice(band) if band else None


def phrase_of(db: Path, word: str, lang: str) -> str | None:
    """Two neighbouring words of a real post holding `word`, as a phrase query."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with contextlib.closing(conn):
        row = conn.execute(
            "SELECT body FROM posts_fts WHERE posts_fts MATCH ? LIMIT 1", (f'"{word}"',)
        ).fetchone()
    if row is None:
        return None
    words = row[0].split()
    for n, w in enumerate(words[:-1]):
        if w == word and SCRIPTS[lang].match(words[n + 1]):
            return f'"{w} {words[n + 1]}"'
    return None


def cases(db: Path, posts: int) -> list[Case]:
    chance = random.Random(11)
    vocab = vocabulary(db)
    found: list[Case] = []
    for lang, words in vocab.items():
        if not words:
            continue
        rare = pick(words, 1, max(2, posts * 0.0001), chance)
        medium = pick(words, posts * 0.002, posts * 0.01, chance)
        common = max(words, key=lambda w: w[1])[0] if words else None
        for kind, word in (("rare", rare), ("medium", medium), ("common", common)):
            if word:
                found.append(Case(kind, lang, word))
        if medium and lang != "zh":
            found.append(Case("prefix", lang, medium[: max(3, len(medium) - 3)] + "*"))
            phrase = phrase_of(db, medium, lang)
            if phrase:
                found.append(Case("phrase", lang, phrase))
        if rare and medium:
            found.append(Case("or", lang, f"{rare} OR {medium}"))
        if common and medium:
            found.append(Case("not", lang, f"{common} -{medium}"))
            found.append(Case("filter", lang, f"{medium} lang:{lang}"))
    return found


async def timed_search(db: Path, queries: list[Case], repeat: int) -> dict[Case, list[float]]:
    from core.search import search
    from core.storage.sqlite import SqliteArchive

    archive = await SqliteArchive.open(db)
    try:
        for case in queries:  # warm: the first query of a kind pays for page and stemmer loads
            await search(archive, case.text, limit=LIMIT)
        times: dict[Case, list[float]] = {case: [] for case in queries}
        for _ in range(repeat):
            for case in queries:
                started = time.perf_counter()
                await search(archive, case.text, limit=LIMIT)
                times[case].append((time.perf_counter() - started) * 1000)
    finally:
        await archive.close()
    return times


def like_scan(db: Path, words: list[str]) -> list[float]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    times = []
    with contextlib.closing(conn):
        for word in words:
            started = time.perf_counter()
            conn.execute(
                "SELECT p.* FROM posts p JOIN channels c ON c.id = p.channel_id WHERE p.text LIKE ? "
                "ORDER BY p.date DESC LIMIT ?",
                (f"%{word}%", LIMIT),
            ).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return times


def measure(rows: int, repeat: int, show: bool = False) -> list[Figure]:
    db = ensure_archive(rows)
    queries = cases(db, rows)
    times = asyncio.run(timed_search(db, queries, repeat))
    if show:
        for case, found in sorted(times.items(), key=lambda item: -max(item[1])):
            print(f"  {max(found):8.1f} ms  {case.kind:7} {case.lang}  {case.text}", file=sys.stderr)
    single = [c for c in queries if c.kind in ("rare", "medium", "common")]
    naive = like_scan(db, [c.text for c in single])
    everything = [t for found in times.values() for t in found]
    words = [t for c in single for t in times[c][:1]]
    slowest = max(times, key=lambda c: max(times[c]))
    kinds = sorted({c.kind for c in queries})
    worst = ", ".join(
        f"{kind} {percentile([t for c in queries if c.kind == kind for t in times[c]], 95):.0f}"
        for kind in kinds
    )
    note = f"{len(queries)} queries × {repeat}, {rows:,} posts"
    return [
        Figure("search", "p50 latency", percentile(everything, 50), "ms", note=note, higher_is_better=False),
        Figure(
            "search",
            "p95 latency",
            percentile(everything, 95),
            "ms",
            target=TARGET_P95_MS,
            higher_is_better=False,
            note=f"p95 ms by kind: {worst}; slowest {slowest.text!r} {max(times[slowest]):.0f} ms",
        ),
        Figure(
            "search",
            "single-word p50",
            percentile(words, 50),
            "ms",
            baseline_name="LIKE scan",
            baseline=percentile(naive, 50),
            higher_is_better=False,
            note=f"{len(single)} words",
        ),
        Figure(
            "search",
            "single-word p95",
            percentile(words, 95),
            "ms",
            baseline_name="LIKE scan",
            baseline=percentile(naive, 95),
            higher_is_better=False,
        ),
    ]


def run(quick: bool) -> list[Figure]:
    return measure(5_000 if quick else 1_000_000, 1 if quick else 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 rows: checks that it runs")
    parser.add_argument("--show", action="store_true", help="list every query with its slowest time")
    args = parser.parse_args()
    rows, repeat = (5_000, 1) if args.quick else (args.rows, args.repeat)
    print(table(measure(rows, repeat, show=args.show)))


if __name__ == "__main__":
    main()
