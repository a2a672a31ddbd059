"""Matching throughput against the number of active query terms: the index against the naive loop.

    python -m bench.matching [--posts N] [--sizes 10,1000,100000,1000000] [--quick]

Sizes count query *terms* (words in the queries, exclusions included); the queries hold one to three
words each, a tenth of them phrases, a tenth with an exclusion, so a million terms is about 530,000
queries. Their words are drawn from those of real posts (../shared/data, or the test fixtures when
absent) and from 1.5 invented words per term (a real word with a number, which no post contains), so
candidates behave as real subscriptions do: most queries miss most posts.

Every figure is posts/s end to end for one post: `Document.of` (tokenising, folding, stem keys) and
`QueryIndex.match`, with the word caches warm as in a running pipeline. Baseline (same run):
`Document.of` then every query's `match`, the way monitors that loop over subscriptions work; at
large sizes it runs on a few posts only (said in the note).
Times are this process's CPU time (`time.process_time`), steadier than wall time on a busy machine.
Also measured: the slowdown from the smallest to the largest size, the time to compile and index the
largest query set, and the resident memory that index takes.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

from bench.common import FIXTURES, SHARED_DATA, Figure, rss_mb, table
from collectors.tdesktop import read_export
from core.query.index import QueryIndex
from core.query.matcher import Document, Query, compile_query
from core.query.text import tokenize

# CPU time of this process: the work is single-threaded, and on a shared machine wall time mostly
# measures the neighbours
clock = time.process_time

SECTION = "matching"
SIZES = (10, 1_000, 100_000, 1_000_000)
QUICK_SIZES = (10, 1_000)
NAIVE_BUDGET = 600_000  # query evaluations the naive loop gets per size (at least MIN_NAIVE_POSTS posts)
MIN_NAIVE_POSTS = 3
SLOWDOWN_TARGET = 3.0  # posts/s at the smallest size over posts/s at the largest


def texts() -> list[str]:
    """Texts of real posts over 40 characters: the shared exports, or the fixtures when absent."""
    shared = SHARED_DATA / "exports"
    source = shared if shared.is_dir() else FIXTURES / "tdesktop"
    found = []
    for path in sorted(source.rglob("*.json")):
        if "bad_" in path.name:
            continue
        for _, posts in read_export(path):
            found += [p.text for p in posts if len(p.text) > 40]
    return found


def vocabulary(corpus: Sequence[str]) -> list[str]:
    return sorted({t.norm for text in corpus for t in tokenize(text) if len(t.norm) > 3})


def make_queries(real: Sequence[str], terms: int, rng: random.Random) -> Iterator[str]:
    """Query texts holding `terms` words in all: words of real posts plus invented ones (a real word
    with a number), which no post contains. Invented words are drawn by index, never stored."""
    invented = max(len(real), 3 * terms // 2)

    def word(j: int) -> str:
        return real[j] if j < len(real) else f"{real[j * 7919 % len(real)]}{j}"

    left, i = terms, 0
    while left > 0:
        words = [word(j) for j in rng.sample(range(len(real) + invented), rng.choice((1, 1, 2, 2, 3)))]
        if i % 10 == 0 and len(words) > 1:
            words = words[:2]
            text = '"' + " ".join(words) + '"'
        elif i % 10 == 1:
            words.append(word(rng.randrange(len(real) + invented)))
            text = " ".join(words[:-1]) + " -" + words[-1]
        else:
            text = " ".join(words)
        if len(words) > left:
            words = words[:left]
            text = " ".join(words)
        left -= len(words)
        i += 1
        yield text


@dataclass
class Size:
    terms: int
    queries: int
    build_s: float
    memory_mb: float  # resident memory the built index added
    rss_mb: tuple[float, float]  # RSS before and after the build
    peak_mb: float  # peak resident memory while building, above the start
    indexed: float  # posts/s
    match_only: float  # posts/s with the Document already built
    naive: float  # posts/s
    naive_posts: int
    matches_per_post: float
    agree: bool


def measure(real: Sequence[str], posts: Sequence[str], terms: int, rng: random.Random) -> Size:
    gc.collect()
    before = rss_mb("VmRSS")
    peak_before = rss_mb("VmHWM")
    started = clock()
    index = QueryIndex()
    index.add_many((i, compile_query(text)) for i, text in enumerate(make_queries(real, terms, rng)))
    build = clock() - started
    gc.collect()
    after = rss_mb("VmRSS")
    memory = after - before
    peak = max(0.0, rss_mb("VmHWM") - max(before, peak_before))

    started = clock()
    hits = sum(len(index.match(Document.of(text))) for text in posts)
    indexed = len(posts) / (clock() - started)
    docs = [Document.of(text) for text in posts]
    started = clock()
    for doc in docs:
        index.match(doc)
    match_only = len(docs) / (clock() - started)

    queries: list[tuple[Hashable, Query]] = list(index.items())
    sample = posts[: max(MIN_NAIVE_POSTS, min(len(posts), NAIVE_BUDGET // len(queries)))]
    started = clock()
    naive_ids = []
    for text in sample:
        doc = Document.of(text)
        naive_ids.append({i for i, q in queries if q.match(doc) is not None})
    naive = len(sample) / (clock() - started)
    agree = naive_ids == [{m.query_id for m in index.match(Document.of(t))} for t in sample]
    return Size(
        terms,
        len(queries),
        build,
        memory,
        (before, after),
        peak,
        indexed,
        match_only,
        naive,
        len(sample),
        hits / len(posts),
        agree,
    )


def figures(sizes: Sequence[Size], posts: int) -> list[Figure]:
    found = []
    for s in sizes:
        note = f"{s.queries:,} queries, {s.matches_per_post:.2f} matches/post; naive on {s.naive_posts} posts"
        if not s.agree:
            note += "; MISMATCH with the naive loop"
        found.append(
            Figure(SECTION, f"posts/s at {s.terms:,} terms", s.indexed, "posts/s", "naive loop", s.naive,
                   note=note)
        )  # fmt: skip
    small, large = sizes[0], sizes[-1]
    found.append(
        Figure(
            SECTION,
            f"slowdown {small.terms:,} → {large.terms:,} terms",
            small.indexed / large.indexed,
            "×",
            target=SLOWDOWN_TARGET,
            higher_is_better=False,
            note=f"posts/s {small.indexed:,.0f} / {large.indexed:,.0f}; {posts} posts, tokenising included",
        )
    )
    found.append(
        Figure(
            SECTION,
            f"match only at {large.terms:,} terms",
            large.match_only,
            "posts/s",
            "naive loop",
            large.naive,
            note="Documents built beforehand; offsets and word positions are still built on first match",
        )
    )
    found.append(
        Figure(
            SECTION,
            f"index build, {large.terms:,} terms",
            large.build_s,
            "s",
            higher_is_better=False,
            note=f"parse + compile + add {large.queries:,} queries, {large.queries / large.build_s:,.0f}/s",
        )
    )
    found.append(
        Figure(
            SECTION,
            f"index memory, {large.terms:,} terms",
            large.memory_mb,
            "MB",
            higher_is_better=False,
            note=f"RSS {large.rss_mb[0]:,.0f} → {large.rss_mb[1]:,.0f} MB over the build,"
            f" peak +{large.peak_mb:,.0f}",
        )
    )
    return found


def measure_all(sizes: Sequence[int], posts_wanted: int) -> tuple[list[Size], int]:
    rng = random.Random(7)
    corpus = texts()
    real = vocabulary(corpus)
    posts = (corpus * (posts_wanted // max(len(corpus), 1) + 1))[:posts_wanted]
    for text in posts:  # warm the word caches, as a running pipeline has them
        Document.of(text)
    return [measure(real, posts, terms, rng) for terms in sizes], len(posts)


def run(quick: bool) -> list[Figure]:
    sizes, posts = measure_all(QUICK_SIZES if quick else SIZES, 200 if quick else 2000)
    return figures(sizes, posts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--quick", action="store_true", help="10 and 1,000 terms on 200 posts")
    args = parser.parse_args()
    if args.quick:
        sizes, posts = measure_all(QUICK_SIZES, 200)
    else:
        sizes, posts = measure_all([int(s) for s in args.sizes.split(",")], args.posts)
    print(f"{posts} posts per size (tokenising each post is included)")
    print(
        f"{'terms':>9} {'queries':>8} {'index posts/s':>14} {'naive posts/s':>14} {'ratio':>8}"
        f" {'matches/post':>13} {'match only/s':>13} {'build s':>8} {'memory MB':>10}"
    )
    for s in sizes:
        print(
            f"{s.terms:>9,} {s.queries:>8,} {s.indexed:>14,.0f} {s.naive:>14,.0f}"
            f" {s.indexed / s.naive:>7.0f}x {s.matches_per_post:>13.2f} {s.match_only:>13,.0f}"
            f" {s.build_s:>8.1f} {s.memory_mb:>10,.0f}"
            + ("" if s.agree else "  MISMATCH with the naive loop")
        )
    print()
    print(table(figures(sizes, posts)))


if __name__ == "__main__":
    main()
