"""The text layer of the query language: words, folded word forms, scripts and stems.

The matcher (posts) and the query compiler (query terms) both go through this module, so both sides see
identical word forms and stem keys.

Words (`tokenize`)
    * A word is a maximal run of Unicode letters, digits and combining marks that starts with a letter or
      digit. Everything else separates words: spaces, punctuation, emoji, symbols, URL punctuation (a URL
      yields its parts as words), underscores outside #/@ words.
    * Hyphens separate: ``Алма-Ата`` → ``алма``, ``ата`` (a query for the hyphenated form is a phrase).
    * Apostrophes (' ’ ʼ ‘) stay inside a word only between two Cyrillic letters, for Ukrainian and
      Belarusian (``м'ясо``, ``обов’язок``); all four fold to U+0027. Elsewhere they separate words
      (``don't`` → ``don``, ``t``; ``l'homme`` → ``l``, ``homme``).
    * Invisible characters (zero-width space/joiners, soft hyphen, BOM, word joiner, bidi marks) inside a
      word do not split it and are dropped by folding: про + U+200B + тест is ``протест``.
    * ``#tag`` and ``@name`` are words with ``_`` allowed inside (``#free_press``); the sigil is not part of
      `Token.norm` but is covered by `Token.start`. A sigil right after a letter or digit is not one
      (``mail@host`` → ``mail``, ``host``).
    * Han, Hiragana, Katakana (incl. half-width) and Thai are written without spaces: every character
      (with its combining marks) is its own token. Hangul syllable runs are ordinary words. A hashtag
      that starts with such a character is just its characters.

Folding (`fold_word`)
    NFKC, case folding, ё → е (and Cyrillic ѐ/ѝ → е/и), Latin and Greek letters lose their accents
    (``Zürich`` = ``zurich``, ``café`` = ``cafe``; also ł ø đ ħ ı → l o d h i), combining marks that remain
    are removed (Arabic harakat, Hebrew points, stress accents) except in Brahmic and South-East Asian
    scripts and Thaana, where they are vowel signs; Cyrillic precomposed letters are never decomposed
    (й stays й). Arabic: tatweel removed, أ إ آ ٱ → ا, ى → ي, Persian ی ک → Arabic ي ك (the Arabic
    stemmer needs the Arabic forms; the Persian one maps them itself). Invisible characters are removed.

Look-alikes (homoglyphs)
    A word that mixes Latin and Cyrillic letters has its minority-script letters replaced by their
    look-alikes in the majority script (a tie goes to Latin), decided on the NFKC text before case
    folding so that capitals count: ``Kаzakhstan`` → ``kazakhstan``, ``Прoтест`` → ``протест``,
    ``KАЗАХСТАН`` (Latin K) → ``казахстан``. A single-script word (e.g. Kazakh ``Қазақстан``) is never
    changed, nor are letters without a look-alike. Pairs (Cyrillic ⇄ Latin):

        lower case: а a, е e, о o, р p, с c, у y, х x, і i, ј j, ѕ s, һ h, ԁ d, ԛ q, ԝ w, ӏ l
        upper case: А A, В B, Е E, К K, М M, Н H, О O, Р P, С C, Т T, Х X, У Y, І I, Ј J, Ѕ S, Ԛ Q, Ԝ W,
                    and one way only Ү → Y, Ӏ → I

    (к/k, м/m, т/t, в/b, н/h differ in lower case and are only paired as capitals.) Greek look-alikes
    are not folded.

Stems
    `stem(lang, norm)` uses Snowball (PyStemmer) or `core.query.ukstem` for Ukrainian. A word's stems are
    exposed as keys ``"lang:stem"``; a post word W (post language L) and a query term Q match by
    morphology iff ``set(doc_stem_keys(W, L)) & query_stem_keys(Q)``. Posts get the stems of the
    languages usual for the word's script plus the post's language when it uses that script; a query
    term gets every language of its script, so it finds the word in a post of any of them. Words with
    digits, CJK/Thai/other-script or mixed-script words get no stem keys (exact form only), and a stem
    shorter than `MIN_STEM_LEN` gives no key (``на``, ``по`` would otherwise collide with everything).
    Norwegian codes nb/nn share the key prefix ``no``. Per script, post words get:

        latin       en + the post language if Latin-script (de, fr, es, it, pt, nl, pl, tr, sr, ...)
        cyrillic    ru, uk + sr when the post is Serbian (Snowball Serbian reads both alphabets)
        arabic      ar, fa
        greek el; armenian hy; devanagari hi (+ ne for Nepali posts); tamil ta; hebrew yi (Yiddish only)

    and query terms every language listed for their script (latin: all Latin-script stemmers).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable
from functools import lru_cache, partial
from itertools import compress, islice
from operator import add
from typing import Generic, NamedTuple, TypeVar

import Stemmer

from core.query import ukstem

__all__ = [
    "MIN_STEM_LEN",
    "NO_KEYS",
    "STEM_LANGS",
    "BoundedCache",
    "Token",
    "doc_stem_keys",
    "fold_word",
    "fold_words",
    "locate",
    "query_stem_keys",
    "scan",
    "script_of",
    "stem",
    "token_norms",
    "tokenize",
]

MIN_STEM_LEN = 3  # stems shorter than this (code points) produce no stem key
NO_KEYS: frozenset[str] = frozenset()  # shared: every empty frozenset is a new object of 216 bytes


class Token(NamedTuple):
    norm: str  # folded word form (see fold_word), without a leading # or @ sigil
    start: int  # offset in the original text of the first character (incl. the sigil)
    end: int  # offset just after the word


# --- character classes -------------------------------------------------------------------------------


def _class(cps: Iterable[int]) -> str:
    """Regex character-class body for the given code points, merged into ranges."""
    parts: list[str] = []
    run_start = prev = -2
    for cp in sorted(cps):
        if cp != prev + 1:
            if run_start >= 0:
                parts.append(_range(run_start, prev))
            run_start = cp
        prev = cp
    if run_start >= 0:
        parts.append(_range(run_start, prev))
    return "".join(parts)


def _range(lo: int, hi: int) -> str:
    return re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"


# Ranges skipped by the mark scan hold no combining marks (CJK ideographs, Hangul syllables, surrogates,
# private use, the CJK extension planes); tests/test_query_text.py checks this.
_MARK_SCAN = ((0x0300, 0x3400), (0xA000, 0xAC00), (0xF900, 0x20000), (0xE0100, 0xE01F0))
# Non-spacing marks that are vowel signs or viramas (Brahmic, South-East Asian scripts, Thaana): kept.
_KEEP_MN = (
    (0x0780, 0x07BF),
    (0x0900, 0x0DFF),
    (0x0E00, 0x109F),
    (0x1700, 0x1AAF),
    (0x1B00, 0x1C4F),
    (0x1CD0, 0x1CFF),
    (0xA800, 0xAAFF),
    (0xABC0, 0xABFF),
    (0x11000, 0x11FFF),
)


def _scan_marks() -> tuple[list[int], list[int]]:
    marks: list[int] = []
    dropped: list[int] = []
    category = unicodedata.category
    for lo, hi in _MARK_SCAN:
        for cp in range(lo, hi):
            cat = category(chr(cp))
            if cat[0] != "M":
                continue
            marks.append(cp)
            if cat == "Me" or (cat == "Mn" and not any(a <= cp <= b for a, b in _KEEP_MN)):
                dropped.append(cp)
    return marks, dropped


_MARKS, _DROPPED_MARKS = _scan_marks()

# Invisible format characters: joined over inside a word, removed by folding.
_INVISIBLE = "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_INVISIBLE_CPS = [
    0x00AD, 0x061C, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065),
    *range(0x2066, 0x2070), 0xFEFF, 0xE0001, *range(0xE0020, 0xE0080),
]  # fmt: skip
_APOSTROPHES = "'\u2019\u02bc\u2018"
# One character per token: Han, kana (incl. half-width), Bopomofo, ideographic marks, Thai.
_SINGLE = (
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u303c\u3041-\u30ff\u3100-\u312f\u31a0-\u31bf"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003ffff\u0e00-\u0e7f"
)
_CYRILLIC_LETTERS = "\u0400-\u0482\u048a-\u052f\u1c80-\u1c88\ua640-\ua66e\ua680-\ua69d"
_LATIN_LETTERS = (
    "a-z\u00aa\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff"
    "\uab30-\uab6f"
)

# The pattern is written for the speed of `re`: a class holding characters beyond U+FFFF checks those
# one range at a time after its bitmap, so the marks are split into a BMP class and an astral class
# behind a one-range guard; and each alternative consumes a character before any look-behind, so a
# position where no word starts fails on one class test.
_L = rf"[^\W_\u02bc{_SINGLE}]"  # letter or digit starting/continuing an ordinary word
_M = (
    f"(?:[{_class(cp for cp in _MARKS if cp <= 0xFFFF)}]"
    f"|(?![\x00-\uffff])[{_class(cp for cp in _MARKS if cp > 0xFFFF)}])"
)
_PART = rf"{_L}+(?:{_M}+{_L}*)*"
# invisible characters, or an apostrophe between two Cyrillic letters
_JOIN = rf"(?:[{_INVISIBLE}]+|[{_APOSTROPHES}](?<=[{_CYRILLIC_LETTERS}].)(?=[{_CYRILLIC_LETTERS}]))"
_CORE = rf"{_PART}(?:{_JOIN}{_PART})*"
_TOKEN_RE = re.compile(
    rf"{_CORE}"  # ordinary word
    rf"|[{_SINGLE}](?<=[^\W_]){_M}*"  # one CJK/Thai character
    rf"|[#@](?<![\w#@].)_*{_CORE}(?:_+{_CORE})*_*"  # hashtag / mention (not right after a word)
)

# --- folding ----------------------------------------------------------------------------------------


def _fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {cp: None for cp in _DROPPED_MARKS}
    table.update({cp: None for cp in _INVISIBLE_CPS})
    # Latin and Greek letters lose their accents (Cyrillic precomposed letters such as й are kept).
    for lo, hi in ((0x00C0, 0x0250), (0x1E00, 0x1F00), (0x0370, 0x0400), (0x1F00, 0x2000)):
        for cp in range(lo, hi):
            base = "".join(c for c in unicodedata.normalize("NFD", chr(cp)) if not unicodedata.combining(c))
            if base and base != chr(cp) and unicodedata.category(base[0]).startswith("L"):
                table[cp] = base
    table.update({ord(k): v for k, v in {"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i"}.items()})
    table.update({ord("ё"): "е", ord("ѐ"): "е", ord("ѝ"): "и"})
    table.update({ord(a): "'" for a in _APOSTROPHES[1:]})
    table[0x0640] = None  # Arabic tatweel
    table.update({ord(a): "ا" for a in "أإآٱٲٳ"})
    table.update({ord("ى"): "ي", ord("ی"): "ي", ord("ک"): "ك"})
    return table


_FOLD = _fold_table()

_CYR_TO_LAT_PAIRS = (
    "аa еe оo рp сc уy хx іi јj ѕs һh ԁd ԛq ԝw ӏl АA ВB ЕE КK МM НH ОO РP СC ТT ХX УY ІI ЈJ ЅS ԚQ ԜW"
)
_CYR_TO_LAT = {ord(p[0]): p[1] for p in _CYR_TO_LAT_PAIRS.split()} | {ord("Ү"): "Y", ord("Ӏ"): "I"}
_LAT_TO_CYR = {ord(p[1]): p[0] for p in _CYR_TO_LAT_PAIRS.split()}
_CYR_RE = re.compile(f"[{_CYRILLIC_LETTERS}]")
_LAT_RE = re.compile(f"[{_LATIN_LETTERS}]")


def _fold_once(word: str) -> str:
    text = unicodedata.normalize("NFKC", word)
    folded = text.casefold()
    if _CYR_RE.search(folded) and _LAT_RE.search(folded):
        latin, cyrillic = len(_LAT_RE.findall(folded)), len(_CYR_RE.findall(folded))
        folded = text.translate(_CYR_TO_LAT if latin >= cyrillic else _LAT_TO_CYR).casefold()
    return unicodedata.normalize("NFKC", folded).translate(_FOLD)


def _unchanged_by_folding() -> frozenset[str]:
    """Characters (up to U+2FFF) that folding leaves alone wherever they stand: NFKC- and case-fold-
    stable, not in the fold table, no mark (every second half of a canonical composition is a mark,
    tests/test_query_text.py checks it) nor Hangul jamo, not decomposing to a leading mark."""
    found = []
    for cp in range(0x3000):
        ch = chr(cp)
        if (
            unicodedata.category(ch)[0] != "M"
            and not 0x1100 <= cp <= 0x11FF
            and cp not in _FOLD
            and ch.casefold() == ch
            and unicodedata.normalize("NFKC", ch) == ch
            and not unicodedata.combining(unicodedata.normalize("NFKD", ch)[0])
        ):
            found.append(ch)
    return frozenset(found)


_STABLE = _unchanged_by_folding()


def _folded_already(word: str) -> bool:
    """Whether folding leaves `word` as it is: stable characters only, and not a Latin/Cyrillic mix."""
    return _STABLE.issuperset(word) and not (_CYR_RE.search(word) and _LAT_RE.search(word))


@lru_cache(maxsize=1 << 16)
def fold_word(word: str) -> str:
    """The folded form of one word (see the module docstring); idempotent."""
    return _fold_uncached(word)


def _fold_uncached(word: str) -> str:
    if word.isascii():
        return word.lower()
    if _folded_already(word):  # a shortcut: _fold_once would return it unchanged
        return word
    prev, cur = word, _fold_once(word)
    for _ in range(4):  # repeat until stable: removing a mark can enable a composition, etc.
        if cur == prev or _folded_already(cur):
            break
        prev, cur = cur, _fold_once(cur)
    return cur


# --- scripts ----------------------------------------------------------------------------------------

_SCRIPT_RANGES = sorted(
    [
        (0x00AA, 0x00AA, "latin"),
        (0x00BA, 0x00BA, "latin"),
        (0x00C0, 0x02FF, "latin"),
        (0x0370, 0x03FF, "greek"),
        (0x0400, 0x052F, "cyrillic"),
        (0x0530, 0x058F, "armenian"),
        (0x0590, 0x05FF, "hebrew"),
        (0x0600, 0x06FF, "arabic"),
        (0x0750, 0x077F, "arabic"),
        (0x0870, 0x08FF, "arabic"),
        (0x0900, 0x097F, "devanagari"),
        (0x0B80, 0x0BFF, "tamil"),
        (0x1100, 0x11FF, "cjk"),
        (0x1C80, 0x1C8F, "cyrillic"),
        (0x1D00, 0x1DBF, "latin"),
        (0x1E00, 0x1EFF, "latin"),
        (0x1F00, 0x1FFF, "greek"),
        (0x2C60, 0x2C7F, "latin"),
        (0x2DE0, 0x2DFF, "cyrillic"),
        (0x2E80, 0x2FDF, "cjk"),
        (0x3005, 0x3007, "cjk"),
        (0x3021, 0x303C, "cjk"),
        (0x3040, 0x31FF, "cjk"),
        (0x3400, 0x4DBF, "cjk"),
        (0x4E00, 0x9FFF, "cjk"),
        (0xA640, 0xA69F, "cyrillic"),
        (0xA720, 0xA7FF, "latin"),
        (0xA8E0, 0xA8FF, "devanagari"),
        (0xA960, 0xA97F, "cjk"),
        (0xAB30, 0xAB6F, "latin"),
        (0xAC00, 0xD7FF, "cjk"),
        (0xF900, 0xFAFF, "cjk"),
        (0xFB00, 0xFB06, "latin"),
        (0xFB13, 0xFB17, "armenian"),
        (0xFB1D, 0xFB4F, "hebrew"),
        (0xFB50, 0xFDFF, "arabic"),
        (0xFE70, 0xFEFF, "arabic"),
        (0xFF21, 0xFF3A, "latin"),
        (0xFF41, 0xFF5A, "latin"),
        (0xFF66, 0xFFDC, "cjk"),
        (0x20000, 0x3FFFF, "cjk"),
    ]
)
_SCRIPT_STARTS = [r[0] for r in _SCRIPT_RANGES]


def script_of(norm: str) -> str:
    """The script of a folded word's letters: "latin", "cyrillic", "greek", "armenian", "hebrew", "arabic",
    "devanagari", "tamil", "cjk" (Han, kana, Hangul, Bopomofo) or "other" (other scripts, Thai, words
    with no letters, words mixing scripts)."""
    if norm.isascii():
        return "latin" if any(c.isalpha() for c in norm) else "other"
    found = ""
    for ch in norm:
        if not ch.isalpha():
            continue
        cp = ord(ch)
        if cp < 0x80:
            script = "latin"
        else:
            i = bisect_right(_SCRIPT_STARTS, cp) - 1
            script = _SCRIPT_RANGES[i][2] if i >= 0 and cp <= _SCRIPT_RANGES[i][1] else "other"
        if not found:
            found = script
        elif script != found:
            return "other"
    return found or "other"


# --- stemming ---------------------------------------------------------------------------------------

_SNOWBALL = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech", "da": "danish",
    "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian", "fi": "finnish", "fr": "french",
    "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
    "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "fa": "persian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "st": "sesotho", "es": "spanish",
    "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}  # fmt: skip
_ALIASES = {"nb": "no", "nn": "no"}
STEM_LANGS: frozenset[str] = frozenset(_SNOWBALL) | frozenset(_ALIASES) | {"uk"}

# The scripts each stemmer language is written in (Serbian's Snowball stemmer takes both alphabets).
_LANG_SCRIPTS: dict[str, frozenset[str]] = {
    **{lang: frozenset({"latin"}) for lang in _SNOWBALL},
    "sr": frozenset({"latin", "cyrillic"}),
    "ru": frozenset({"cyrillic"}),
    "uk": frozenset({"cyrillic"}),
    "ar": frozenset({"arabic"}),
    "fa": frozenset({"arabic"}),
    "el": frozenset({"greek"}),
    "hy": frozenset({"armenian"}),
    "hi": frozenset({"devanagari"}),
    "ne": frozenset({"devanagari"}),
    "ta": frozenset({"tamil"}),
    "yi": frozenset({"hebrew"}),
}
# Stems every post word of a script gets, whatever the post's language.
_DOC_LANGS: dict[str, tuple[str, ...]] = {
    "latin": ("en",),
    "cyrillic": ("ru", "uk"),
    "arabic": ("ar", "fa"),
    "greek": ("el",),
    "armenian": ("hy",),
    "devanagari": ("hi",),
    "tamil": ("ta",),
    "hebrew": (),
}
# Stems a query term of a script gets: every language written in it.
_QUERY_LANGS: dict[str, tuple[str, ...]] = {
    script: tuple(sorted(lang for lang, scripts in _LANG_SCRIPTS.items() if script in scripts))
    for script in _DOC_LANGS
}

_STEMMERS: dict[str, Stemmer.Stemmer] = {}
for _code, _algorithm in _SNOWBALL.items():
    _STEMMERS[_code] = Stemmer.Stemmer(_algorithm)
    _STEMMERS[_code].maxCacheSize = 0  # `stem` caches; one cache is enough
_STEM_LOCK = threading.Lock()  # a Snowball stemmer object is not safe to share between threads
_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=1 << 14)  # callers cache whole words' keys: this one need not be large
def stem(lang: str, norm: str) -> str:
    """The stem of a folded word in a language of STEM_LANGS (ValueError for others); cached."""
    code = _ALIASES.get(lang, lang)
    if code == "uk":
        return ukstem.stem(norm)
    stemmer = _STEMMERS.get(code)
    if stemmer is None:
        raise ValueError(f"no stemmer for language {lang!r}")
    with _STEM_LOCK:
        result: str = stemmer.stemWord(norm)
    return result


def _stem_script(norm: str) -> str | None:
    if _DIGIT.search(norm):
        return None
    script = script_of(norm)
    return script if script in _DOC_LANGS else None


def _keys(norm: str, langs: Iterable[str]) -> list[str]:
    keys: list[str] = []
    for lang in langs:
        stemmed = stem(lang, norm)
        if len(stemmed) >= MIN_STEM_LEN:
            keys.append(f"{lang}:{stemmed}")
    return keys


@lru_cache(maxsize=1 << 16)
def doc_stem_keys(norm: str, post_lang: str | None) -> tuple[str, ...]:
    """Stem keys ("ru:протест") of a folded post word, given the post's language (ISO 639-1 or None)."""
    return _doc_stem_keys(norm, post_lang)


def _doc_stem_keys(norm: str, post_lang: str | None) -> tuple[str, ...]:
    script = _stem_script(norm)
    if script is None:
        return ()
    langs = list(_DOC_LANGS[script])
    if post_lang:
        lang = post_lang.lower().replace("_", "-").split("-", 1)[0]
        lang = _ALIASES.get(lang, lang)
        if lang not in langs and script in _LANG_SCRIPTS.get(lang, ()):
            langs.append(lang)
    return tuple(_keys(norm, langs))


# Folded words remembered with their stem keys (a quarter per extra language): as many as WORD_CACHE_SIZE's
# written forms, since every post word is looked up in both (at half of it, ~100,000 words of ru/uk news
# recomputed ~60 µs of keys per post)
DOC_KEYS_CACHE_SIZE = 1 << 17
_DOC_KEYS: dict[str | None, BoundedCache[str, tuple[str, ...]]] = {}


def doc_stem_keys_cache(post_lang: str | None) -> BoundedCache[str, tuple[str, ...]]:
    """`doc_stem_keys(norm, post_lang)` as a cache of folded word → keys for posts in that language."""
    cache = _DOC_KEYS.get(post_lang)
    if cache is None:
        lang = _ALIASES.get(code := (post_lang or "").lower().replace("_", "-").split("-", 1)[0], code)
        # a language adds keys only to scripts whose posts do not get its stems anyway (ru, uk, en, ar,
        # fa, ... add none): posts in all those share one cache
        adds = any(lang not in _DOC_LANGS.get(script, (lang,)) for script in _LANG_SCRIPTS.get(lang, ()))
        key = lang if adds else None
        cache = _DOC_KEYS.get(key)
        if cache is None:
            limit = DOC_KEYS_CACHE_SIZE if key is None else DOC_KEYS_CACHE_SIZE // 4
            cache = _DOC_KEYS.setdefault(key, BoundedCache(partial(_doc_stem_keys, post_lang=key), limit))
        if len(_DOC_KEYS) < 256:  # post_lang as given, for the next post (a bounded number of spellings)
            _DOC_KEYS.setdefault(post_lang, cache)
    return cache


@lru_cache(maxsize=1 << 14)
def query_stem_keys(norm: str) -> frozenset[str]:
    """Stem keys of a folded query term in every stemmer language of its script."""
    script = _stem_script(norm)
    keys = _keys(norm, _QUERY_LANGS[script]) if script is not None else ()
    return frozenset(keys) if keys else NO_KEYS


# --- words ------------------------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """`compute(key)` remembered for up to `limit` keys; when full, the oldest half is forgotten.

    A hit is one dict look-up (`get` is the bound `dict.get`, for `map`); a miss computes the value
    and stores it under a lock, so threads may share the cache.
    """

    def __init__(self, compute: Callable[[K], V], limit: int) -> None:
        self.compute = compute
        self.limit = limit
        self.data: dict[K, V] = {}
        self.get = self.data.get
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.data)

    def __call__(self, key: K) -> V:
        try:
            return self.data[key]
        except KeyError:
            return self.add(key)

    def add(self, key: K) -> V:
        value = self.compute(key)
        with self._lock:
            data = self.data
            if len(data) >= self.limit:
                for old in list(islice(data, max(1, len(data) // 2))):
                    del data[old]
            data[key] = value
        return value


WORD_CACHE_SIZE = 1 << 17  # distinct words (as written) remembered with their folded forms


def _fold_token(word: str) -> str:
    # not through fold_word's cache: post words have their own cache, query words are compiled once
    return _fold_uncached(word[1:] if word[0] in "#@" else word)


# a token as written (sigil included) → its folded form, "" for a word that folds to nothing
_NORMS: BoundedCache[str, str] = BoundedCache(_fold_token, WORD_CACHE_SIZE)
_new_token = partial(tuple.__new__, Token)


def _complete(words: list[str], norms: list[str | None]) -> list[str]:
    """`norms` (cache hits, None for a miss) with the misses folded."""
    return [_NORMS.add(word) if norm is None else norm for word, norm in zip(words, norms, strict=True)]


def tokenize(text: str) -> list[Token]:
    """The words of a text with their folded forms and their offsets in it (see the module docstring)."""
    words, norms = scan(text)
    starts = locate(text, words)
    found = zip(norms, starts, map(add, starts, map(len, words)), strict=True)
    if all(norms):  # no word folds to nothing: no Python loop but locate's
        return list(map(_new_token, found))
    return list(map(_new_token, compress(found, norms)))


def scan(text: str) -> tuple[list[str], list[str]]:
    """The tokens of `text` as written (sigils included) and their folded forms, "" for the words
    that fold to nothing (which `tokenize` drops): no offsets, no Token objects, so faster."""
    words = _TOKEN_RE.findall(text)
    norms = list(map(_NORMS.get, words))
    return words, norms if all(norms) else _complete(words, norms)  # type: ignore[return-value]


def locate(text: str, words: list[str]) -> list[int]:
    """Where each of `scan(text)`'s words starts in `text`. Each is the first occurrence of itself at or
    after the end of the previous word: an earlier one would start with a letter, digit or sigil that the
    token pattern would have matched there (tests/test_query_text.py checks this agrees with
    `tokenize`)."""
    starts: list[int] = []
    append, find = starts.append, text.find
    end = 0
    for word in words:
        end = find(word, end)
        append(end)
        end += len(word)
    return starts


def fold_words(text: str) -> list[str]:
    """`[t.norm for t in tokenize(text)]` for a query's word: folded without the cache of post words
    (a large query set would crowd those out)."""
    return [norm for norm in map(_fold_token, _TOKEN_RE.findall(text)) if norm]


def token_norms(text: str) -> list[str]:
    """`[t.norm for t in tokenize(text)]`, faster."""
    norms = scan(text)[1]
    return norms if all(norms) else [norm for norm in norms if norm]
