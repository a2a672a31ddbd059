"""Evaluate near-duplicate story assignment (`core/stories.py`) on the real posts in ../shared/data.

    .venv/bin/python -m bench.stories_eval                 # everything, ~90 s on 2 cores
    .venv/bin/python -m bench.stories_eval --skip-speed    # labelled pairs and replay only
    .venv/bin/python -m bench.stories_eval --propose 40    # print unlabelled candidate pairs to label
    .venv/bin/python -m bench.stories_eval --audit 40      # print merges the replay made, to label

Data: every text post of the dumps and exports (see ../shared/data/README.md), ~13,000 posts. Labels:
`bench/data/stories_labels.json`, pairs of post identifiers (file, channel, message id) decided by reading
both posts; no post text is stored in the repository. Label meanings:

* same — one text is a copy of the other: verbatim, or edited (emoji, links, signature, a few words or a
  number changed), or one carries the bulk of the other (a re-post of the same ad, the video and audio
  posts of one podcast episode, a short and a long version of one article).
* related — the same event or announcement written separately: a rewrite, an update or follow-up, an
  independent report, a digest that contains the other post among other items. Merging them is
  acceptable, not required: they count neither for nor against precision and recall.
* different — different content, including a template filled with other content (another date, bank,
  coin, rubric topic) and identical boilerplate under different media (weekly podcast posts).

Sections printed (Markdown): the labelled set, precision/recall/F1 of the similarity decision by
threshold, variants of the fingerprint (shingle width, numbers, signature cut, 64 vs 128 values), the
end-to-end replay of all dated posts through `StoryIndex` in date order, LSH candidate recall, throughput
of `assign()` and of `signature()` on 1 and 2 processes, and memory per indexed post.
"""

from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import json
import random
import statistics
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from collectors.tdesktop import read_export
from core import stories
from core.stories import (
    MIN_WORDS,
    NUM_PERM,
    THRESHOLD,
    WINDOW,
    StoryIndex,
    _agreement,
    _minhash,
    _shingle_set,
    _tokens,
    _weight,
    signature,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_LABELS = Path(__file__).resolve().parent / "data" / "stories_labels.json"
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9)

Ref = tuple[str, str, int]  # (file relative to the data directory, channel, message id)


@dataclass(frozen=True, slots=True)
class Item:
    ref: Ref
    key: tuple[int, int]
    date: datetime | None
    text: str


def _stable_id(name: str) -> int:
    """A positive int for channels the data names only by username."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")


def load_items(data: Path) -> list[Item]:
    """Every non-empty text post in the dumps and exports, with a stable reference and index key."""
    items: list[Item] = []
    for path in sorted((data / "dumps" / "ria_and_other_ru").glob("*_messages.json")):
        rel = str(path.relative_to(data))
        channel = "-" + path.name.split("_")[0]
        bare = int(path.name.split("_")[0].removeprefix("100"))
        for msg in json.loads(path.read_text(encoding="utf-8")):
            mid = int(msg["message_id"])
            items.append(
                Item((rel, channel, mid), (bare, mid), datetime.fromisoformat(msg["date"]), msg["text"])
            )
    path = data / "dumps" / "ru_official" / "tg_news.json"
    if path.exists():
        rel = str(path.relative_to(data))
        for url, msgs in json.loads(path.read_text(encoding="utf-8")).items():
            name = url.rstrip("/").rsplit("/", 1)[1]
            for index, msg in enumerate(msgs):  # no message ids in this dump: the list index stands in
                date = datetime.fromtimestamp(msg["date"], UTC)
                items.append(Item((rel, name, index), (_stable_id(name), index), date, msg["message"] or ""))
    path = data / "dumps" / "ukrainian" / "suspilne_news_verified.csv"
    if path.exists():
        rel = str(path.relative_to(data))
        with path.open(encoding="utf-8", newline="") as fh:
            for cells in list(csv.reader(fh))[1:]:  # no dates, no ids: the row index stands in
                items.append(Item((rel, "suspilne", int(cells[0])), (1, int(cells[0])), None, cells[1]))
    for path in sorted((data / "dumps" / "persian").glob("*.csv")):
        rel = str(path.relative_to(data))
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                date = datetime.strptime(f"{row['date']} {row['time']}", "%d/%m/%y %H:%M:%S").replace(
                    tzinfo=UTC
                )
                mid = int(row["message_id"])
                key = (int(row["sender_id"].removeprefix("channel")), mid)
                items.append(Item((rel, row["sender_id"], mid), key, date, row["raw_text"]))
    for path in sorted((data / "exports").glob("*.json")):
        rel = str(path.relative_to(data))
        for chat, posts in read_export(path):
            for post in posts:
                if post.service_action is None:
                    ref = (rel, str(chat.id), post.message_id)
                    items.append(Item(ref, (chat.id, post.message_id), post.date, post.text))
    for path in sorted((data / "dumps" / "telethon_to_dict").glob("*.jsonl")):
        rel = str(path.relative_to(data))
        for line in path.read_text(encoding="utf-8").splitlines():
            tl = json.loads(line)
            peer = int(tl["peer_id"]["channel_id"])
            date = datetime.fromisoformat(tl["date"]).replace(tzinfo=UTC)
            ref = (rel, str(peer), int(tl["id"]))
            items.append(Item(ref, (peer, int(tl["id"])), date, tl.get("message") or ""))
    return [item for item in items if item.text.strip()]


# --- labelled pairs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    a: Item
    b: Item
    label: str  # same | related | different
    reason: str
    stratum: str

    @property
    def hours(self) -> float | None:
        if self.a.date is None or self.b.date is None:
            return None
        return abs((self.a.date - self.b.date).total_seconds()) / 3600


def load_pairs(labels: Path, items: Sequence[Item]) -> list[Pair]:
    by_ref = {item.ref: item for item in items}
    pairs = []
    for entry in json.loads(labels.read_text(encoding="utf-8"))["pairs"]:
        a, b = (by_ref[(ref[0], ref[1], int(ref[2]))] for ref in (entry["a"], entry["b"]))
        pairs.append(Pair(a, b, entry["label"], entry["reason"], entry.get("stratum", "")))
    return pairs


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    words: int = stories.SHINGLE_WORDS
    numbers: stories.NumberPolicy = stories.NUMBERS
    cut_signature: bool = True


VARIANTS = (
    Variant("chosen: 4-word shingles, numbers kept, signature cut"),
    Variant("3-word shingles", words=3),
    Variant("5-word shingles", words=5),
    Variant("2-word shingles", words=2),
    Variant("numbers masked (every number = 0)", numbers="mask"),
    Variant("numbers dropped", numbers="drop"),
    Variant("no signature cut", cut_signature=False),
)


def _variant_tokens(text: str, variant: Variant) -> list[str]:
    return _tokens(text, variant.numbers, cut=variant.cut_signature)


def score(pair: Pair, variant: Variant, num_perm: int = NUM_PERM) -> float | None:
    """Estimated Jaccard as the index computes it, or None when either text is too short to judge."""
    ta, tb = _variant_tokens(pair.a.text, variant), _variant_tokens(pair.b.text, variant)
    if _weight(ta) < MIN_WORDS or _weight(tb) < MIN_WORDS:
        return None
    sa, sb = _shingle_set(ta, words=variant.words), _shingle_set(tb, words=variant.words)
    return _agreement(_minhash(sa)[: 4 * num_perm], _minhash(sb)[: 4 * num_perm])


def exact_jaccard(pair: Pair) -> float:
    sa, sb = _shingle_set(_tokens(pair.a.text)), _shingle_set(_tokens(pair.b.text))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    related_merged: int = 0
    related: int = 0

    def add(self, label: str, merged: bool) -> None:
        if label == "related":
            self.related += 1
            self.related_merged += merged
        elif label == "same":
            self.tp += merged
            self.fn += not merged
        else:
            self.fp += merged
            self.tn += not merged

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def row(self, head: str) -> str:
        return (
            f"| {head} | {self.tp} | {self.fp} | {self.fn} | {pct(self.precision)} | {pct(self.recall)} | "
            f"{pct(self.f1)} | {self.related_merged}/{self.related} |"
        )


CONFUSION_HEAD = "| TP | FP | FN | precision % | recall % | F1 % | related merged |"


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def above(scores: dict[int, float | None], threshold: float) -> Callable[[Pair], bool]:
    """Decision: merged when both texts are judgeable and the score reaches the threshold."""

    def decide(pair: Pair) -> bool:
        value = scores[id(pair)]
        return value is not None and value >= threshold

    return decide


def confusion(pairs: Iterable[Pair], decide: Callable[[Pair], bool]) -> Confusion:
    result = Confusion()
    for pair in pairs:
        result.add(pair.label, decide(pair))
    return result


def sampled(pairs: Iterable[Pair]) -> list[Pair]:
    """The stratified sample, without the audit of the replay's merges (which would inflate recall)."""
    return [p for p in pairs if not p.stratum.startswith("audit")]


def report_labels(all_pairs: list[Pair]) -> None:
    pairs = sampled(all_pairs)
    audited = Counter(p.label for p in all_pairs if p.stratum.startswith("audit"))
    print("## Labelled pairs\n")
    print(
        f"Audit of the replay's merges not in the sample: {sum(audited.values())} pairs "
        f"({audited['same']} same, {audited['related']} related, {audited['different']} different).\n"
    )
    print("Stratified sample:")
    counts = Counter(p.label for p in pairs)
    cross = Counter(p.label for p in pairs if p.a.ref[1] != p.b.ref[1])
    print(f"{len(pairs)} pairs: " + ", ".join(f"{counts[k]} {k}" for k in ("same", "related", "different")))
    print("; across channels: " + ", ".join(f"{cross[k]} {k}" for k in ("same", "related", "different")))
    window_h = WINDOW.total_seconds() / 3600
    inside = [p for p in pairs if p.hours is not None and p.hours <= window_h]
    print(f"; dated and within {window_h:.0f} h of each other: {len(inside)}.\n")
    print(f"| exact {stories.SHINGLE_WORDS}-shingle Jaccard | same | related | different |")
    print("|---|---|---|---|")
    bins: dict[str, Counter[str]] = defaultdict(Counter)
    for p in pairs:
        j = exact_jaccard(p)
        lo = min(int(j * 10), 9) / 10
        bins[f"{lo:.1f}-{lo + 0.1:.1f}"][p.label] += 1
    for name in sorted(bins):
        c = bins[name]
        print(f"| {name} | {c['same']} | {c['related']} | {c['different']} |")
    print()


def report_thresholds(all_pairs: list[Pair]) -> None:
    pairs = sampled(all_pairs)
    chosen = VARIANTS[0]
    scores = {id(p): score(p, chosen) for p in pairs}
    print("## Similarity decision by threshold (the sample, time ignored)\n")
    print("Merged = both texts judgeable and estimated Jaccard (128 MinHash values) >= threshold.\n")
    print(f"| threshold {CONFUSION_HEAD}")
    print("|---|---|---|---|---|---|---|---|")
    for t in THRESHOLDS:
        c = confusion(pairs, above(scores, t))
        print(c.row(f"{t:.2f}{' (chosen)' if t == THRESHOLD else ''}"))
    print()
    short = sum(1 for p in pairs if scores[id(p)] is None and p.label == "same")
    print(f"`same` pairs where a text is too short to judge (never merged by content): {short}.\n")


def report_variants(all_pairs: list[Pair]) -> None:
    pairs = sampled(all_pairs)
    print(
        "## Variants of the fingerprint (the sample, time ignored), at the best-F1 and the chosen threshold\n"
    )
    print(f"| variant | threshold {CONFUSION_HEAD}")
    print("|---|---|---|---|---|---|---|---|---|")
    runs: list[tuple[str, Variant, int]] = [(v.name, v, NUM_PERM) for v in VARIANTS]
    runs.append(("chosen, 64 MinHash values instead of 128", VARIANTS[0], 64))
    for name, variant, perms in runs:
        scores = {id(p): score(p, variant, perms) for p in pairs}

        def at(t: float, scores: dict[int, float | None] = scores) -> Confusion:
            return confusion(pairs, above(scores, t))

        best = max(THRESHOLDS, key=lambda t: (at(t).f1, t))
        print(f"| {name} " + at(best).row(f"{best:.2f} (best)"))
        if best != THRESHOLD:
            print(f"| {name} " + at(THRESHOLD).row(f"{THRESHOLD:.2f}"))
    print()


def estimate_error(pairs: list[Pair]) -> None:
    """MinHash estimate vs exact Jaccard on the labelled pairs."""
    diffs64: list[float] = []
    diffs128: list[float] = []
    for p in pairs:
        if score(p, VARIANTS[0]) is None:
            continue
        exact = exact_jaccard(p)
        diffs128.append(abs((score(p, VARIANTS[0]) or 0.0) - exact))
        diffs64.append(abs((score(p, VARIANTS[0], 64) or 0.0) - exact))
    print("## MinHash estimate vs exact Jaccard on the labelled pairs\n")
    for name, d in (("64 values", diffs64), ("128 values", diffs128)):
        d.sort()
        print(
            f"* {name}: mean |error| {statistics.mean(d):.3f}, 95th percentile {d[int(0.95 * len(d))]:.3f}, "
            f"max {d[-1]:.3f}"
        )
    print()


# --- replay -----------------------------------------------------------------------------------------


def dated(items: Sequence[Item]) -> list[Item]:
    return sorted((i for i in items if i.date is not None), key=lambda i: (i.date, i.key))


def replay(items: Sequence[Item], index: StoryIndex) -> tuple[dict[Ref, str], list[tuple[Item, Ref, float]]]:
    """Assign every dated post in date order; return story ids and the content merges made."""
    story: dict[Ref, str] = {}
    by_key: dict[tuple[int, int], Ref] = {}
    merges: list[tuple[Item, Ref, float]] = []
    for item in dated(items):
        assert item.date is not None
        match = index.assign(item.key, item.text, item.date)
        story[item.ref] = match.story_id
        by_key[item.key] = item.ref
        if match.rule == "duplicate":
            merges.append((item, by_key[match.first_key], match.similarity))
    return story, merges


# (threshold for other channels, for the same channel, shingle width)
SETTINGS: tuple[tuple[float, float, int], ...] = (
    (0.3, 0.3, 4),
    (0.4, 0.4, 4),
    (0.45, 0.45, 4),
    (0.5, 0.5, 4),
    (0.55, 0.55, 4),
    (0.6, 0.6, 4),
    (0.7, 0.7, 4),
    (0.8, 0.8, 4),
    (0.4, 0.5, 4),
    (0.5, 0.7, 4),
    (0.5, 0.5, 3),
    (0.5, 0.5, 5),
    (0.4, 0.4, 3),
    (0.6, 0.6, 3),
)


def same_story(story: dict[Ref, str]) -> Callable[[Pair], bool]:
    return lambda p: story[p.a.ref] == story[p.b.ref]


def report_replay(items: list[Item], pairs: list[Pair]) -> None:
    """Replay all dated posts through StoryIndex per threshold setting; judge every merge it makes."""
    labels = {(p.a.ref, p.b.ref): p.label for p in pairs} | {(p.b.ref, p.a.ref): p.label for p in pairs}
    window_h = WINDOW.total_seconds() / 3600
    inside = [p for p in sampled(pairs) if p.hours is not None and p.hours <= window_h]
    print("## End-to-end replay through StoryIndex (all dated posts in date order, 72 h window)\n")
    print(
        "Merges: posts the index gave an earlier post's story by content. Each merge (post, matched post) is "
        "looked up in the labels (sample + audit); merge precision = same / (same + different). Sample "
        f"P/R: the {len(inside)} sampled pairs within {window_h:.0f} h, decided by equal story ids.\n"
    )
    print(
        "| threshold (other channel / same channel) | shingle | merges | same | related | different "
        "| unlabelled | merge precision % | sample precision % | sample recall % | sample F1 % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    default_words = stories.SHINGLE_WORDS
    for cross, own, words in SETTINGS:
        stories.SHINGLE_WORDS = words
        try:
            story, merges = replay(items, StoryIndex(threshold=cross, same_channel_threshold=own))
        finally:
            stories.SHINGLE_WORDS = default_words
        judged = Counter(labels.get((item.ref, ref), "?") for item, ref, _ in merges)
        precision = judged["same"] / max(1, judged["same"] + judged["different"])
        c = confusion(inside, same_story(story))
        defaults = (THRESHOLD, stories.SAME_CHANNEL_THRESHOLD, default_words)
        chosen = " (chosen)" if (cross, own, words) == defaults else ""
        print(
            f"| {cross:.2f} / {own:.2f}{chosen} | {words} words | {len(merges)} | {judged['same']} | "
            f"{judged['related']} | "
            f"{judged['different']} | {judged['?']} | {pct(precision)} | {pct(c.precision)} | "
            f"{pct(c.recall)} | {pct(c.f1)} |"
        )
    story, merges = replay(items, StoryIndex())
    sizes = Counter(story.values())
    multi = {s for s, k in sizes.items() if k > 1}
    channels: dict[str, set[str]] = defaultdict(set)
    for ref, s in story.items():
        channels[s].add(ref[1])
    cross_stories = sum(1 for s in multi if len(channels[s]) > 1)
    print(
        f"\nWith the defaults: {len(story):,} posts → {len(sizes):,} stories; {len(multi)} have more "
        f"than one post ({sum(sizes[s] for s in multi)} posts), {cross_stories} span channels; largest: "
        f"{max(sizes.values())} posts.\n"
    )


# --- synthetic edits --------------------------------------------------------------------------------

_FILLER = "Об этом сообщили в пресс-службе ведомства в понедельник вечером, уточнив подробности."


def _edit_word(text: str, rng: random.Random, n: int) -> str:
    words = text.split(" ")
    for _ in range(n):
        k = rng.randrange(len(words))
        words[k] = "заменено" + str(rng.randrange(100))
    return " ".join(words)


EDITS: tuple[tuple[str, Callable[[str, random.Random], str]], ...] = (
    ("emoji added at start and end", lambda t, r: "🔥⚡️ " + t + " 👇🇷🇺"),
    ("links replaced / added", lambda t, r: t + "\n\nhttps://t.me/other_channel/12345 bit.ly/3xYz"),
    ("signature line appended", lambda t, r: t + "\n\n👉 Подписаться на @other_news | t.me/other_news"),
    ("two signature lines appended", lambda t, r: t + "\n\nПодписывайтесь на канал\n@other_news"),
    ("formatting: bold, extra line breaks", lambda t, r: "**" + t.replace(". ", ".\n\n") + "**"),
    ("one word changed", lambda t, r: _edit_word(t, r, 1)),
    ("three words changed", lambda t, r: _edit_word(t, r, 3)),
    ("one sentence appended", lambda t, r: t + " " + _FILLER),
    ("last fifth cut", lambda t, r: t[: int(len(t) * 0.8)]),
    ("emoji + signature + one word changed", lambda t, r: "⚡️ " + _edit_word(t, r, 1) + "\n\n@other_news"),
)


def report_synthetic(items: list[Item], n: int = 400, seed: int = 7) -> None:
    """Edited copies of real posts: how often does the copy still reach the threshold?"""
    rng = random.Random(seed)
    pool = [i for i in items if 25 <= len(_tokens(i.text)) <= 120]
    picked = rng.sample(pool, min(n, len(pool)))
    print(f"## Synthetic copies: {len(picked)} real posts of 25-120 words, each edited one way\n")
    print("| edit | median similarity | copies ≥ threshold % |")
    print("|---|---|---|")
    for name, edit in EDITS:
        sims = []
        for item in picked:
            a, b = signature(item.text), signature(edit(item.text, rng))
            sims.append(stories.estimate_similarity(a, b))
        hit = sum(s >= THRESHOLD for s in sims) / len(sims)
        print(f"| {name} | {statistics.median(sims):.2f} | {pct(hit)} |")
    short = [i for i in items if 8 <= len(_tokens(i.text)) < 25]
    picked = rng.sample(short, min(n, len(short)))
    sims = [
        stories.estimate_similarity(signature(i.text), signature(_edit_word(i.text, rng, 1))) for i in picked
    ]
    print(
        f"| one word changed, posts of 8-24 words ({len(picked)}) | {statistics.median(sims):.2f} | "
        f"{pct(sum(s >= THRESHOLD for s in sims) / len(sims))} |"
    )
    print()


def _share_band(a: bytes, b: bytes, bands: int, rows: int) -> bool:
    width = 4 * rows
    return any(a[i * width : (i + 1) * width] == b[i * width : (i + 1) * width] for i in range(bands))


def report_lsh(items: list[Item], pairs: list[Pair]) -> None:
    """Share of labelled `same` pairs that share an LSH bucket, per banding, and candidate load."""
    sigs = {}
    for p in pairs:
        for item in (p.a, p.b):
            sigs[item.ref] = signature(item.text)[1:]
    positives = [p for p in pairs if p.label == "same" and sigs[p.a.ref] and sigs[p.b.ref]]
    print("## LSH banding: candidate recall on `same` pairs above the threshold, candidates per post\n")
    print(
        "| bands × rows | P(candidate) at J=0.5 (theory) | `same` pairs ≥ threshold found | candidates/post |"
    )
    print("|---|---|---|---|")
    above = [p for p in positives if _agreement(sigs[p.a.ref], sigs[p.b.ref]) >= THRESHOLD]
    sample = dated(items)[:5000]
    for bands, rows in ((12, 2), (16, 2), (24, 2), (16, 4), (32, 4), (42, 3)):
        if bands * rows > NUM_PERM:
            continue
        index = StoryIndex(bands=bands, rows=rows, window=timedelta(days=36500))
        found = sum(1 for p in above if _share_band(sigs[p.a.ref], sigs[p.b.ref], bands, rows))
        loads = []
        for item in sample:
            assert item.date is not None
            sig = signature(item.text)[1:]
            loads.append(len({entry.key for entry in index._candidates(sig)}))
            index.assign(item.key, item.text, item.date)
        theory = 1 - (1 - 0.5**rows) ** bands
        mark = " (chosen)" if (bands, rows) == (stories.BANDS, stories.ROWS) else ""
        print(
            f"| {bands} × {rows}{mark} | {pct(theory)} % | {found}/{len(above)} | "
            f"{statistics.mean(loads):.2f} |"
        )
    print("\n(candidates/post: posts sharing a bucket, over the first 5,000 dated posts, window off)\n")


# --- speed and memory -------------------------------------------------------------------------------


def _signatures(texts: list[str]) -> int:
    return sum(len(signature(t)) for t in texts)


def report_speed(items: list[Item]) -> None:
    stream = dated(items)[:10_000]
    chars = statistics.mean(len(i.text) for i in stream)
    index = StoryIndex()
    started = time.perf_counter()
    for item in stream:
        assert item.date is not None
        index.assign(item.key, item.text, item.date)
    elapsed = time.perf_counter() - started
    print("## Throughput (one CPU core unless stated)\n")
    print(
        f"* `assign()` on {len(stream):,} real posts in date order (mean {chars:.0f} characters): "
        f"{len(stream) / elapsed:,.0f} posts/s ({1e3 * elapsed / len(stream):.2f} ms/post)"
    )
    long = [i.text[:500] for i in items if len(i.text) >= 500]
    long = (long * (1 + 4000 // max(1, len(long))))[:4000]
    started = time.perf_counter()
    _signatures(long)
    one = len(long) / (time.perf_counter() - started)
    chunks = [long[k::8] for k in range(8)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_signatures, [chunks[0][:10]] * 2))  # start both workers
        started = time.perf_counter()
        list(pool.map(_signatures, chunks))
        two = len(long) / (time.perf_counter() - started)
    print(
        f"* `signature()` of 500-character posts: {one:,.0f} posts/s on 1 process, {two:,.0f} on 2 processes"
    )
    tokens = [_tokens(text) for text in long[:1000]]
    started = time.perf_counter()
    for text in long[:1000]:
        _tokens(text)
    fp = 1000 / (time.perf_counter() - started)
    started = time.perf_counter()
    for words in tokens:
        stories._signature_of(words)
    mh = 1000 / (time.perf_counter() - started)
    print(f"  (of which fingerprinting alone: {fp:,.0f}/s; shingle hashes + MinHash alone: {mh:,.0f}/s)")
    sets = [_shingle_set(words) for words in tokens[:300]]
    print(f"* MinHash of the shingle strings, {NUM_PERM} values, {len(sets)} posts (CPU µs/post):", end="")
    methods: tuple[tuple[str, Callable[[set[str]], object]], ...] = (
        ("(a·x+b) mod p over blake2b-64, pure Python", _minhash_affine),
        ("SHAKE-128 + numpy min (signature version 1)", _minhash_shake),
        ("blake2b-64 per shingle + numpy multiply-add-shift", _minhash_blake2b),
        ("polynomial hashes at once + numpy multiply-add-shift (used)", _minhash),
    )
    for name, fn in methods:
        started = time.process_time()
        for s in sets:
            fn(s)
        print(f" {name} {1e6 * (time.process_time() - started) / len(sets):,.0f};", end="")
    print("\n")


_MERSENNE = (1 << 61) - 1
_AFFINE = [
    (
        1
        + int.from_bytes(hashlib.blake2b(f"a{k}".encode(), digest_size=8).digest(), "little")
        % (_MERSENNE - 1),
        int.from_bytes(hashlib.blake2b(f"b{k}".encode(), digest_size=8).digest(), "little") % _MERSENNE,
    )
    for k in range(NUM_PERM)
]


def _minhash_affine(shingle_set: set[str]) -> list[int]:
    """The textbook alternative: one 64-bit hash per shingle, NUM_PERM (a·x+b) mod p permutations."""
    hashes = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in shingle_set
    ]
    return [min([(a * x + b) % _MERSENNE for x in hashes]) & 0xFFFFFFFF for a, b in _AFFINE]


def _minhash_shake(shingle_set: set[str]) -> bytes:
    """Signature version 1: each shingle hashed by SHAKE-128 into NUM_PERM 31-bit values, numpy minimum."""
    digests = b"".join([hashlib.shake_128(s.encode()).digest(4 * NUM_PERM) for s in shingle_set])
    values = np.frombuffer(digests, dtype="<u4").reshape(-1, NUM_PERM) & np.uint32(0x7FFFFFFF)
    return bytes(values.min(axis=0).astype("<u4").data)


def _minhash_blake2b(shingle_set: set[str]) -> bytes:
    """The used multiply-add-shift values over one blake2b-64 hash per shingle, computed one by one."""
    digests = b"".join([hashlib.blake2b(s.encode(), digest_size=8).digest() for s in shingle_set])
    return stories._minhash_of(np.frombuffer(digests, dtype="<u8").astype(np.uint64))


def report_memory(items: list[Item]) -> None:
    stream = dated(items)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    index = StoryIndex(window=timedelta(days=36500))
    for item in stream:
        assert item.date is not None
        index.assign(item.key, item.text, item.date)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    judged = sum(1 for e in index._entries.values() if e.sig)
    print("## Memory\n")
    print(
        f"* {len(index):,} posts indexed ({judged:,} judgeable, with LSH buckets): {used / 1e6:.1f} MB, "
        f"{used / len(index):,.0f} bytes per post (tracemalloc, signatures + buckets + heap + ids)"
    )
    print(f"* stored signature: {1 + 4 * NUM_PERM} bytes per judgeable post, 0 for a too-short one\n")


# --- labelling helpers ------------------------------------------------------------------------------


def _show(pair_items: tuple[Item, Item], head: str, width: int = 400) -> None:
    a, b = pair_items
    print(head)
    for item in (a, b):
        print(f"  {list(item.ref)} {item.date}")
        print("    " + item.text[:width].replace("\n", " ⏎ "))


def propose(items: list[Item], pairs: list[Pair], n: int, seed: int) -> None:
    """Print unlabelled candidate pairs (3-shingle Jaccard >= 0.05), stratified by similarity."""
    labelled = {(p.a.ref, p.b.ref) for p in pairs} | {(p.b.ref, p.a.ref) for p in pairs}
    sets = [_shingle_set(_tokens(i.text)) if _weight(_tokens(i.text)) >= MIN_WORDS else set() for i in items]
    postings: dict[str, list[int]] = defaultdict(list)
    for k, s in enumerate(sets):
        for g in s:
            postings[g].append(k)
    shared: Counter[tuple[int, int]] = Counter()
    for members in postings.values():
        if len(members) <= 300:
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    shared[(members[x], members[y])] += 1
    strata: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
    for (x, y), c in shared.items():
        j = c / len(sets[x] | sets[y])
        if j >= 0.05 and (items[x].ref, items[y].ref) not in labelled:
            strata[min(int(j * 10), 9)].append((j, x, y))
    rng = random.Random(seed)
    for b in sorted(strata):
        for j, x, y in rng.sample(strata[b], min(n // 10 + 1, len(strata[b]))):
            _show((items[x], items[y]), f"## J3={j:.3f}")


def audit(
    items: list[Item], pairs: list[Pair], merges: list[tuple[Item, Ref, float]], n: int, seed: int
) -> None:
    """Print a sample of the replay's content merges that are not labelled yet."""
    by_ref = {i.ref: i for i in items}
    labelled = {(p.a.ref, p.b.ref) for p in pairs} | {(p.b.ref, p.a.ref) for p in pairs}
    todo = [(i, by_ref[r], s) for i, r, s in merges if (i.ref, r) not in labelled]
    rng = random.Random(seed)
    for item, other, sim in rng.sample(todo, min(n, len(todo))):
        _show((other, item), f"## merged, similarity {sim:.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    ap.add_argument("--skip-speed", action="store_true", help="no throughput and memory sections")
    ap.add_argument("--propose", type=int, metavar="N", help="print N unlabelled candidate pairs and stop")
    ap.add_argument("--audit", type=int, metavar="N", help="print N unlabelled merges of the replay and stop")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    items = load_items(args.data)
    keys = Counter(i.key for i in items)
    assert max(keys.values()) == 1, "duplicate index keys in the data"
    pairs = load_pairs(args.labels, items) if args.labels.exists() else []
    if args.propose:
        propose(items, pairs, args.propose, args.seed)
        return
    if args.audit:
        _, merges = replay(items, StoryIndex())
        audit(items, pairs, merges, args.audit, args.seed)
        return
    print(f"# Story evaluation ({len(items):,} text posts from {args.data})\n")
    report_labels(pairs)
    report_thresholds(pairs)
    report_variants(pairs)
    estimate_error(pairs)
    report_replay(items, pairs)
    report_synthetic(items)
    report_lsh(items, pairs)
    if not args.skip_speed:
        report_speed(items)
        report_memory(items)


if __name__ == "__main__":
    main()
