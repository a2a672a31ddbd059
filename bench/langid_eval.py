"""Evaluate the language-detection engines on the lingua-py gold data in ../shared/data/langid.

    .venv/bin/python -m bench.langid_eval [--data PATH] [--limit N] [--engines fasttext langdetect]

For each engine and each of the 24 languages: accuracy on sentences and on word pairs (an "und" answer
counts as wrong), overall accuracy on the languages the engine supports (with und excluded and with
und counted as wrong), the languages it cannot output at all, and the time per text through the full
`detect()` path (cleaning + letter threshold + model). A last table probes the MIN_LETTERS threshold
on sentence openings (first 1-4 words; zh: first 1-6 Han characters): raw engine accuracy by letter
count, with the threshold off.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import FIXTURES, SHARED_DATA, Figure
from core.langid import (
    ENGINES,
    MIN_CJK_LETTERS,
    MIN_LETTERS,
    UND,
    FastTextDetector,
    LangdetectDetector,
    clean_for_detection,
    letter_counts,
)

DEFAULT_DATA = SHARED_DATA / "langid"
FIXTURE_DATA = FIXTURES / "langid"  # a few sentences of our own, for a machine without ../shared
KINDS = ("sentences", "word-pairs")
LETTER_BUCKETS: tuple[tuple[int, int], ...] = (*((n, n) for n in range(1, 13)), (13, 15), (16, 20), (21, 99))
CJK_BUCKETS: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 6))
PROBE_LIMIT = 300
PROBE_CONF = 0.5
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")

Engine = FastTextDetector | LangdetectDetector


@dataclass
class Tally:
    total: int = 0
    correct: int = 0
    und: int = 0
    seconds: float = 0.0
    wrong: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.total += other.total
        self.correct += other.correct
        self.und += other.und
        self.seconds += other.seconds
        self.wrong.update(other.wrong)

    @property
    def acc(self) -> float:  # und counted as wrong
        return self.correct / self.total if self.total else 0.0

    @property
    def acc_decided(self) -> float:  # und left out
        decided = self.total - self.und
        return self.correct / decided if decided else 0.0


def load(data: Path, kind: str, lang: str, limit: int | None) -> list[str]:
    lines = [ln.strip() for ln in (data / kind / f"{lang}.txt").read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[:limit] if limit else lines


def make(engine: str) -> Engine:
    return FastTextDetector() if engine == "fasttext" else LangdetectDetector()


def evaluate(det: Engine, gold: str, texts: Iterable[str]) -> Tally:
    tally = Tally()
    clock = time.perf_counter
    for text in texts:
        t0 = clock()
        got = det.detect(text).lang
        tally.seconds += clock() - t0
        tally.total += 1
        if got == gold:
            tally.correct += 1
        else:
            tally.wrong[got] += 1
            if got == UND:
                tally.und += 1
    return tally


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def bucket_of(n: int, buckets: tuple[tuple[int, int], ...]) -> tuple[int, int] | None:
    return next((b for b in buckets if b[0] <= n <= b[1]), None)


def label(b: tuple[int, int]) -> str:
    lo, hi = b
    return str(lo) if lo == hi else (f"{lo}+" if hi >= 99 else f"{lo}-{hi}")


def threshold_probe(
    det: Engine, data: Path, langs: list[str], limit: int
) -> tuple[dict[tuple[int, int], list[int]], dict[tuple[int, int], list[int]]]:
    """Raw (threshold off) accuracy on short texts, by letter count (non-CJK) and by Han count (zh).

    The short texts are sentence openings: the first 1-4 words of each sentence (zh: the first 1-6 Han
    characters), the nearest thing in the data to a one-line post. Also tallies the answers with
    confidence >= PROBE_CONF, to see whether the confidence can stand in for a higher letter threshold.
    """
    plain: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    cjk: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for lang in langs:
        for sentence in load(data, "sentences", lang, limit):
            cleaned = clean_for_detection(sentence)
            if lang == "zh":
                han = "".join(_HAN.findall(cleaned))
                openings = [(han[:k], k) for k in range(1, 7) if k <= len(han)]
                table, buckets = cjk, CJK_BUCKETS
            else:
                words = cleaned.split()
                openings = [(" ".join(words[:k]), 0) for k in range(1, 5) if k <= len(words)]
                openings = [(t, letter_counts(t)[0]) for t, _ in openings]
                table, buckets = plain, LETTER_BUCKETS
            for text, n in openings:
                b = bucket_of(n, buckets)
                if b is not None:
                    got = det.classify(text)
                    row = table[b]  # n, correct, n with confidence >= PROBE_CONF, correct among those
                    row[0] += 1
                    row[1] += got.lang == lang
                    if got.confidence >= PROBE_CONF:
                        row[2] += 1
                        row[3] += got.lang == lang
    return plain, cjk


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"default: {DEFAULT_DATA}")
    ap.add_argument("--limit", type=int, default=None, help="at most N texts per language and kind")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    ap.add_argument("--no-probe", action="store_true", help="skip the short-text threshold probe")
    args = ap.parse_args(argv)
    data: Path = args.data
    if not (data / "sentences").is_dir():
        ap.error(f"no sentences/ under {data}")
    langs = sorted(p.stem for p in (data / "sentences").glob("*.txt"))

    results: dict[str, dict[str, dict[str, Tally]]] = {}  # engine -> kind -> lang -> tally
    supported: dict[str, frozenset[str]] = {}
    load_s: dict[str, float] = {}
    for engine in args.engines:
        det = make(engine)
        t0 = time.perf_counter()
        det.detect("warm-up text to load the model")
        load_s[engine] = time.perf_counter() - t0
        supported[engine] = det.languages()
        results[engine] = {
            kind: {lang: evaluate(det, lang, load(data, kind, lang, args.limit)) for lang in langs}
            for kind in KINDS
        }

    print(f"# Language identification: {', '.join(args.engines)}")
    print(f"\ndata: {data} ({len(langs)} languages); limit per file: {args.limit or 'none'}")
    print(
        f"MIN_LETTERS={MIN_LETTERS}, MIN_CJK_LETTERS={MIN_CJK_LETTERS}; accuracy in %, und counted as wrong"
    )

    print("\n## Per language\n")
    head = " | ".join(f"{e} {k}" for e in args.engines for k in ("sent", "pairs", "top error (sent)"))
    print(f"| lang | {head} |")
    print("|---" * (1 + 3 * len(args.engines)) + "|")
    for lang in langs:
        cells = []
        for e in args.engines:
            sent, pairs = results[e]["sentences"][lang], results[e]["word-pairs"][lang]
            mark = "" if lang in supported[e] else " ✗"
            top = ", ".join(f"{code} {n}" for code, n in sent.wrong.most_common(2)) or "-"
            cells += [pct(sent.acc) + mark, pct(pairs.acc) + mark, top]
        print(f"| {lang} | {' | '.join(cells)} |")
    print("\n✗ = the engine cannot output this language (every answer is wrong by construction)")

    common = sorted(set(langs).intersection(*(supported[e] for e in args.engines)))
    print("\n## Overall\n")
    print(
        "| engine | kind | langs | texts | acc (und wrong) | acc (und excluded) | und % "
        "| acc on common langs | µs/text | texts/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for e in args.engines:
        for kind in KINDS:
            sup, com, all_ = Tally(), Tally(), Tally()
            for lang, t in results[e][kind].items():
                all_.add(t)
                if lang in supported[e]:
                    sup.add(t)
                if lang in common:
                    com.add(t)
            n_sup = sum(lang in supported[e] for lang in langs)
            us = 1e6 * all_.seconds / all_.total if all_.total else 0.0
            rate = all_.total / all_.seconds if all_.seconds else 0.0
            und = sup.und / sup.total if sup.total else 0.0
            cells = [
                e,
                kind,
                f"{n_sup}/{len(langs)}",
                str(sup.total),
                pct(sup.acc),
                pct(sup.acc_decided),
                pct(und),
                f"{pct(com.acc)} ({len(common)})",
                f"{us:.0f}",
                f"{rate:,.0f}",
            ]
            print(f"| {' | '.join(cells)} |")
    print(f"\ncommon langs: {' '.join(common)}")
    for e in args.engines:
        missing = [lang for lang in langs if lang not in supported[e]]
        print(
            f"{e}: {len(supported[e])} output labels; not supported here: {' '.join(missing) or 'none'}; "
            f"first call (model load) {1000 * load_s[e]:.0f} ms"
        )
    sentences = [t for lang in langs for t in load(data, "sentences", lang, args.limit)]
    t0 = time.perf_counter()
    for text in sentences:
        clean_for_detection(text)
    per = 1e6 * (time.perf_counter() - t0) / max(1, len(sentences))
    print(f"clean_for_detection alone: {per:.0f} µs/sentence (included in the µs/text above)")

    if args.no_probe:
        return
    print("\n## Threshold probe: sentence openings, threshold off, raw accuracy %")
    probe_limit = min(args.limit or PROBE_LIMIT, PROBE_LIMIT)
    probes = {
        e: threshold_probe(make(e), data, [x for x in langs if x in supported[e]], probe_limit)
        for e in args.engines
    }
    for title, idx, buckets in (
        ("letters (non-CJK langs)", 0, LETTER_BUCKETS),
        ("Han chars (zh)", 1, CJK_BUCKETS),
    ):
        heads = [f"{e} acc (n) | {e} acc, conf≥{PROBE_CONF} (kept %)" for e in args.engines]
        print(f"\n| {title} | {' | '.join(heads)} |")
        print("|---" * (1 + 2 * len(args.engines)) + "|")
        for b in buckets:
            cells = []
            for e in args.engines:
                n, c, nc, cc = probes[e][idx].get(b, [0, 0, 0, 0])
                cells.append(f"{pct(c / n) if n else '-'} ({n})")
                cells.append(f"{pct(cc / nc) if nc else '-'} ({pct(nc / n) if n else '-'})")
            print(f"| {label(b)} | {' | '.join(cells)} |")


def run(quick: bool) -> list[Figure]:
    """Section "langid": texts/s and sentence accuracy per engine; langdetect is the baseline."""
    data = DEFAULT_DATA if (DEFAULT_DATA / "sentences").is_dir() else FIXTURE_DATA
    limit = 20 if quick else None
    langs = sorted(p.stem for p in (data / "sentences").glob("*.txt"))
    texts = {lang: load(data, "sentences", lang, limit) for lang in langs}
    per_lang: dict[str, dict[str, Tally]] = {}
    supported: dict[str, frozenset[str]] = {}
    for engine in ENGINES:
        det = make(engine)
        det.detect("warm-up text to load the model")
        supported[engine] = det.languages()
        per_lang[engine] = {lang: evaluate(det, lang, texts[lang]) for lang in langs}
    common = [lang for lang in langs if all(lang in supported[e] for e in ENGINES)]

    def total(engine: str, only: list[str]) -> Tally:
        tally = Tally()
        for lang in only:
            tally.add(per_lang[engine][lang])
        return tally

    fast, base = total("fasttext", langs), total("langdetect", langs)
    fast_common, base_common = total("fasttext", common), total("langdetect", common)
    where = f"{fast.total} sentences, {len(langs)} languages"
    if data == FIXTURE_DATA:
        where += " (fixtures)"
    return [
        Figure("langid", "fastText texts/s", fast.total / fast.seconds, "texts/s", "langdetect",
               base.total / base.seconds, note=where),
        Figure("langid", "fastText accuracy, all languages", 100 * fast.acc, "%", "langdetect",
               100 * base.acc, note="und and unsupported languages count as wrong"),
        Figure("langid", "fastText accuracy, languages both output", 100 * fast_common.acc, "%",
               "langdetect", 100 * base_common.acc, note=f"{len(common)} languages"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
