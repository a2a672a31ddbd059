"""Matching throughput against the number of active queries: the index against the naive loop.

    python -m bench.matching [--posts N] [--sizes 10,1000,100000]

Queries are drawn from the words of real posts (../shared/data, or the test fixtures when absent):
one to three words each, a tenth of them phrases, a tenth with an exclusion, so candidates behave as
real subscriptions do. Baseline (same run): evaluating every query against every post, the way
monitors that loop over subscriptions work; at large sizes it runs on fewer posts and is scaled.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from pathlib import Path

from collectors.tdesktop import read_export
from core.query.index import QueryIndex
from core.query.matcher import Document, Query, compile_query
from core.query.text import tokenize

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "exports"
FIXTURES = ROOT / "tests" / "fixtures" / "tdesktop"


def texts() -> list[str]:
    source = SHARED if SHARED.is_dir() else FIXTURES
    found = []
    for path in sorted(source.rglob("*.json")):
        if "bad_" in path.name:
            continue
        for _, posts in read_export(path):
            found += [p.text for p in posts if len(p.text) > 40]
    return found


def make_queries(corpus: list[str], count: int, rng: random.Random) -> Iterator[Query]:
    """Words of the real posts plus as many invented ones: most subscriptions miss most posts."""
    real = sorted({t.norm for text in corpus for t in tokenize(text) if len(t.norm) > 3})
    vocab = real + [f"{rng.choice(real)}{n}" for n in range(max(len(real), 3 * count))]
    for i in range(count):
        words = rng.sample(vocab, rng.choice((1, 1, 2, 2, 3)))
        if i % 10 == 0 and len(words) > 1:
            text = '"' + " ".join(words[:2]) + '"'
        elif i % 10 == 1:
            text = " ".join(words) + " -" + rng.choice(vocab)
        else:
            text = " ".join(words)
        yield compile_query(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--sizes", default="10,1000,100000")
    args = parser.parse_args()
    rng = random.Random(7)
    corpus = texts()
    posts = (corpus * (args.posts // max(len(corpus), 1) + 1))[: args.posts]
    docs = [Document.of(text) for text in posts]
    print(f"{len(corpus)} real texts, {len(posts)} posts per run (tokenising each post is included)")
    print(
        f"{'queries':>9} {'index posts/s':>14} {'naive posts/s':>14} {'ratio':>8} {'matches/post':>13}"
        f" {'match only/s':>13}"
    )
    first = None
    for size in (int(s) for s in args.sizes.split(",")):
        queries = list(make_queries(corpus, size, rng))
        index = QueryIndex()
        for i, query in enumerate(queries):
            index.add(i, query)
        started = time.perf_counter()
        hits = sum(len(index.match(Document.of(text))) for text in posts)
        indexed = len(posts) / (time.perf_counter() - started)
        started = time.perf_counter()
        for doc in docs:
            index.match(doc)
        match_only = len(docs) / (time.perf_counter() - started)
        sample = posts[: max(5, min(len(posts), 20_000_000 // (size * 50)))]
        started = time.perf_counter()
        naive_hits = 0
        for text in sample:
            doc = Document.of(text)
            naive_hits += sum(1 for q in queries if q.match(doc) is not None)
        naive = len(sample) / (time.perf_counter() - started)
        agree = naive_hits == sum(len(index.match(Document.of(text))) for text in sample)
        first = first or indexed
        row = (
            f"{size:>9} {indexed:>14,.0f} {naive:>14,.0f} {indexed / naive:>7.0f}x {hits / len(posts):>13.2f}"
        )
        row += f" {match_only:>13,.0f}"
        print(row + ("" if agree else "  MISMATCH with the naive loop"))
    print(f"index: throughput at the largest size is {first / indexed:.2f}x below the smallest")


if __name__ == "__main__":
    main()
