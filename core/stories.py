"""Near-duplicate "stories": a forward or a copy of a post gets the story id of the first one seen.

A story is one piece of text as it travels between and within channels: the original post, its forwards,
and copies whose wording is (nearly) the same — other emoji, links, @mentions, #hashtags, a channel
signature, a few words changed. Independent reports of the same event in other words are *not* one story:
text overlap cannot tell them from different events, and precision comes first (a wrong merge hides a
post from a subscriber; a missed merge costs one extra alert).

How (docs/stories.md has the evaluation behind every number here):

* `fingerprint_text` reduces a text to what identifies it: a trailing channel signature is cut; URLs,
  e-mail addresses, @mentions and #hashtags are dropped; the rest is folded (NFKC, case, ё→е, Arabic and
  Persian letter variants, non-ASCII digits, combining marks) and split into word tokens, which drops emoji
  and punctuation. Numbers stay: on the labelled data, masking or dropping them merged more templates
  ("курс выше 14,50 / 15 руб.") than it saved edited copies.
* Shingles are overlapping runs of `SHINGLE_WORDS` (4) tokens; in CJK/Thai text, where every character is
  a token, of `SHINGLE_CHARS` (5) characters.
* MinHash with `NUM_PERM` (128) hash functions: each shingle gets one 64-bit hash (a polynomial hash of
  its code points mod 2**64, mixed by MurmurHash3's finaliser; computed by numpy for all the shingles of a
  text at once, from one prefix sum over the fingerprint), and value i is ((A_i·x + B_i) mod 2**64) >> 33,
  31 bits, with fixed odd multipliers A_i and addends B_i; the signature keeps the per-position minimum,
  taken by numpy over all the shingles at once. Stable across processes and platforms: no `hash()`, no
  seeds from the environment (A and B come from SHAKE-128 of a fixed label).
* `StoryIndex` keeps the signatures of the last `WINDOW` (72 h) of posts in LSH buckets (`BANDS` bands of
  `ROWS` values); candidates that share a bucket are confirmed by the estimated Jaccard similarity (the
  share of equal signature values) ≥ `THRESHOLD`. The buckets are one sorted numpy array of 64-bit band
  hashes with the entry each belongs to (16 bytes per band and post, against ~70 in a dict); a hash
  collision is ruled out by comparing the band itself.

Texts with fewer than `MIN_WORDS` words (a CJK/Thai character counts `CJK_WEIGHT` of a word) after
fingerprinting are never merged by content: their signature is `b""`. Nothing here does I/O; the archive
persists `signature()` bytes and rebuilds the index at start-up with `StoryIndex.add_existing`.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import re
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import count, repeat
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.pieces import LINK_HINT, drop_emails, sub_pieces

__all__ = [
    "BANDS",
    "MIN_WORDS",
    "NUM_PERM",
    "ROWS",
    "SAME_CHANNEL_THRESHOLD",
    "SIGNATURE_VERSION",
    "THRESHOLD",
    "WINDOW",
    "Key",
    "StoryIndex",
    "StoryMatch",
    "estimate_similarity",
    "fingerprint_text",
    "is_current_signature",
    "is_judgeable",
    "parse_forward_origin",
    "shingles",
    "signature",
    "similarity",
    "story_id_for",
    "strip_signature",
]

Key = tuple[int, int]  # (channel_id, message_id)
NumberPolicy = Literal["keep", "mask", "drop"]

WINDOW = timedelta(hours=72)
NUM_PERM = 128  # signature values; a stored signature is 1 + 4 * NUM_PERM bytes
BANDS = 16  # LSH bands of ROWS values each (BANDS * ROWS <= NUM_PERM): P(candidate) 99 % at J = 0.5
ROWS = 2
THRESHOLD = 0.5  # estimated Jaccard similarity from which two posts of different channels are one story
SAME_CHANNEL_THRESHOLD = 0.5  # the same for two posts of one channel; raise it for template-heavy channels
MIN_WORDS = 8  # fewer words than this after fingerprinting: too short to judge, never merged by content
CJK_WEIGHT = 0.4  # a CJK/Thai character counts as this much of a word (20 characters = MIN_WORDS)
SHINGLE_WORDS = 4
SHINGLE_CHARS = 5  # shingle width when most tokens are single CJK/Thai characters
NUMBERS: NumberPolicy = "keep"
# Bump when anything that changes signature values changes (hashing, shingling, fingerprinting, NUM_PERM):
# `StoryIndex.add_existing` refuses stored signatures of another version; recompute them from the text.
SIGNATURE_VERSION = 2  # 1: SHAKE-128 values per shingle

# --- fingerprinting ---------------------------------------------------------------------------------

_URL = re.compile(
    r"(?:\bhttps?://|\bwww\.|\b(?:t|telegram)\.me/|\btg://)\S*"  # schemes, www., t.me
    r"|(?<![\w.-])[\w.-]+\.[a-z]{2,12}/\S*",  # a bare domain with a path: bit.ly/x, vk.cc/abc
    re.IGNORECASE,
)
_MARKDOWN_LINK = re.compile(r"\]\((?:[^()\s]|\([^()\s]*\))*\)")  # the "(url)" of [text](url)
_TAG = re.compile(r"(?<![\w&])[#@＃＠]\w+")
# URLs and e-mail addresses are dropped only in the words that hold what each of them must (`core.pieces`).
# Patterns that start with a character class are scanned for in C: `_TAG_FAST` is `_TAG` so
# (tests/test_stories.py checks the fast paths against the plain patterns).
_TAG_FAST = re.compile(r"[#@＃＠](?<![\w&][#@＃＠])\w+")
_TOKEN = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")
# Han, kana, Thai: scripts written without spaces, where every character becomes a token.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff\u0e00-\u0e7f"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_TOKEN = re.compile(f"[^\\W_{_CJK}]+|(?=\\w)[{_CJK}]")  # a run of other letters, or one CJK letter
# Combining marks that survive NFKC: Latin/Cyrillic accents (stress marks), Hebrew points, Arabic harakat.
_MARKS = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u0610-\u061a"
    "\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed\u08d3-\u08ff"
    "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)
_FOLD = {
    "ё": "е",
    "ي": "ی",  # Arabic and Persian keyboards type these letters differently
    "ى": "ی",
    "ك": "ک",
    "ة": "ه",
    "ۀ": "ه",
    "أ": "ا",
    "إ": "ا",
    "آ": "ا",
    "\u0640": "",  # tatweel
    "\u200c": " ",  # zero-width non-joiner: one writer's "می‌رود" is another's "می رود"
    "\u200b": " ",
    "\u200d": "",
    "\u00ad": "",
    "\u2060": "",
    "\ufeff": "",
    **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
    **{chr(0x06F0 + d): str(d) for d in range(10)},  # Persian digits
}  # no replacement is itself folded, so replacing one character after the other is one translation
_FOLDED = re.compile("[" + re.escape("".join(_FOLD)) + "]")
_FOLDED_OR_MARK = re.compile(_FOLDED.pattern[:-1] + _MARKS.pattern[1:])

# A trailing line is a channel signature when it carries a link or asks the reader to subscribe/read
# more and has at most _SIGNATURE_WORDS other words ("Читать нас без VPN: bit.ly/…", "Задать вопрос: …"),
# or when it has at most _TAG_LINE_WORDS words besides @mentions and #hashtags and at least one of them
# ("@banksta", "کانال رسمی #شرق_نیوز"). At most _SIGNATURE_LINES lines are cut, never the first line.
_SIGNATURE_LINES = 3
_SIGNATURE_WORDS = 6
_TAG_LINE_WORDS = 2
_SIGNATURE_HINT = re.compile(
    r"подпис|subscribe|follow us|join us|канал|channel|کانال|قناة|підпис|читать нас|читайте нас"
    r"|прислать новость|предложить новость|наш сайт|our website",
    re.IGNORECASE,
)


def _drop_links(text: str) -> str:
    """`text` with URLs replaced by a space."""
    return sub_pieces(_URL, LINK_HINT, text)


def _drop_tags(text: str) -> str:
    """`text` with @mentions and #hashtags replaced by a space."""
    return _TAG_FAST.sub(" ", text)


def _is_signature_line(line: str) -> bool:
    unlinked = _drop_links(_MARKDOWN_LINK.sub("] ", line) if "](" in line else line)
    words = len(_TOKEN.findall(_drop_tags(unlinked)))
    if words > _SIGNATURE_WORDS:  # too long for either kind of signature line
        return False
    if unlinked != line or _SIGNATURE_HINT.search(line):
        return True
    return words <= _TAG_LINE_WORDS and bool(_TAG_FAST.search(line))


def strip_signature(text: str) -> str:
    """`text` without a trailing channel signature (up to three short link/mention lines); conservative."""
    lines = text.rstrip().split("\n")
    cut = 0
    end = len(lines)
    while end > 1 and cut < _SIGNATURE_LINES:
        line = lines[end - 1]
        if not line.strip():
            end -= 1
            continue
        if not _is_signature_line(line):
            break
        end -= 1
        cut += 1
    return "\n".join(lines[:end]) if cut else text


def _fold(text: str) -> str:
    if "\xa0" in text:  # NFKC gives " " anyway; without it, most texts pass normalize()'s quick check
        text = text.replace("\xa0", " ")
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii() or not _FOLDED_OR_MARK.search(folded):  # (one scan instead of two, for most texts)
        return folded
    # str.replace per folded character present: str.translate looks every character up in a dict (~20x)
    for char in set(_FOLDED.findall(folded)):
        folded = folded.replace(char, _FOLD[char])
    return _MARKS.sub("", folded)


def _words(folded: str) -> tuple[list[str], bool]:
    """The word tokens of a folded text (a CJK/Thai letter is a token by itself), and whether it has one."""
    if folded.isascii() or not _CJK_CHAR.search(folded):
        return _TOKEN.findall(folded), False
    return _CJK_TOKEN.findall(folded), True


def _tokens_cjk(text: str, numbers: NumberPolicy = NUMBERS, *, cut: bool = True) -> tuple[list[str], int]:
    """`_tokens(text)` and their `_cjk_count` (0 with no CJK/Thai letter in the text: not counted then)."""
    body = strip_signature(text) if cut else text
    if "](" in body:
        body = _MARKDOWN_LINK.sub("] ", body)
    if "@" in body:
        body = drop_emails(body)
    tokens, cjk = _words(_fold(_drop_tags(_drop_links(body))))
    if numbers == "drop":
        tokens = [t for t in tokens if not t.isdigit()]
    elif numbers == "mask":
        tokens = [_DIGITS.sub("0", t) for t in tokens]
    return tokens, _cjk_count(tokens) if cjk else 0


def _tokens(text: str, numbers: NumberPolicy = NUMBERS, *, cut: bool = True) -> list[str]:
    return _tokens_cjk(text, numbers, cut=cut)[0]


def fingerprint_text(text: str) -> str:
    """The text reduced to what identifies a story: its folded word tokens, space-separated.

    Cut: a trailing channel signature, URLs, e-mail addresses, @mentions, #hashtags, emoji, punctuation.
    Kept: words and numbers (in news a changed number is more often another report than a copy).
    """
    return " ".join(_tokens(text))


def _cjk_count(tokens: list[str]) -> int:
    """How many tokens are one CJK/Thai character."""
    singles = "".join([t for t in tokens if len(t) == 1])
    return 0 if singles.isascii() else len(_CJK_CHAR.findall(singles))


def _weight(tokens: list[str], cjk: int | None = None) -> float:
    if cjk is None:
        cjk = _cjk_count(tokens)
    return (len(tokens) - cjk) + CJK_WEIGHT * cjk


def is_judgeable(text: str) -> bool:
    """Whether `text` is long enough to be merged with another post by its content."""
    return _weight(*_tokens_cjk(text)) >= MIN_WORDS


def _width(tokens: list[str], cjk: int, words: int | None = None, chars: int | None = None) -> int:
    """Shingle width in tokens: characters when most tokens are CJK/Thai characters, else words."""
    if 2 * cjk > len(tokens):
        return SHINGLE_CHARS if chars is None else chars
    return SHINGLE_WORDS if words is None else words


def _shingle_set(tokens: list[str], words: int | None = None, chars: int | None = None) -> set[str]:
    if not tokens:
        return set()
    width = _width(tokens, _cjk_count(tokens), words, chars)
    if len(tokens) <= width:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + width]) for i in range(len(tokens) - width + 1)}


def shingles(text: str) -> set[str]:
    """The shingles of `text`'s fingerprint: runs of 4 tokens (CJK/Thai: of 5 characters)."""
    return _shingle_set(_tokens(text))


# --- MinHash ---------------------------------------------------------------------------------------
#
# A shingle's hash is the polynomial hash of its code points, sum(c_j * BASE**j) mod 2**64, mixed by
# MurmurHash3's 64-bit finaliser. All shingles of a text are hashed at once: they are substrings of the
# space-joined tokens, so one prefix sum of c_j * BASE**j over that string gives every shingle's value as
# (prefix[end] - prefix[start]) * BASE**-start (BASE is odd, so invertible mod 2**64).
# Value i of a shingle with hash x is ((A_i * x + B_i) mod 2**64) >> 33 (multiply-add-shift), with fixed
# odd A_i and B_i from SHAKE-128 of a fixed label; the signature keeps each value's minimum over the
# shingles. A signature is NUM_PERM little-endian uint32 values of 31 bits (bit 31 stays 0: the guard bit
# that the lane arithmetic of `_agreement` needs).

Hashes = npt.NDArray[np.uint64]
Codes = npt.NDArray[np.uint32]
Positions = npt.NDArray[np.intp]
_HEADER = bytes([SIGNATURE_VERSION])
_BASE = 0x9E3779B97F4A7C15  # odd
_FMIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_SHIFT = np.uint64(33)  # 64 - 31 value bits
_POWERS_CACHED = 1 << 16  # longer strings get their powers computed afresh
_CHUNK = 2048  # shingles per (shingles × NUM_PERM) block: bounds the memory a huge text takes


def _power_table(n: int, base: int) -> Hashes:
    """base**j mod 2**64 for j < n."""
    table = np.full(n, base, dtype=np.uint64)
    table[0] = 1
    return np.multiply.accumulate(table)


_powers_cache = (_power_table(4096, _BASE), _power_table(4096, pow(_BASE, -1, 1 << 64)))


def _powers(n: int) -> tuple[Hashes, Hashes]:
    """(BASE**j, BASE**-j) mod 2**64 for j < at least n."""
    global _powers_cache
    if len(_powers_cache[0]) >= n:
        return _powers_cache
    size = 1 << (n - 1).bit_length()
    powers = (_power_table(size, _BASE), _power_table(size, pow(_BASE, -1, 1 << 64)))
    if size <= _POWERS_CACHED:
        _powers_cache = powers
    return powers


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[Hashes, Hashes]:
    """(A, B): num_perm odd multipliers and num_perm addends; the first k are the same for every num_perm."""
    stream = hashlib.shake_128(b"tgmon stories minhash v2").digest(16 * num_perm)
    pairs = np.frombuffer(stream, dtype="<u8").astype(np.uint64).reshape(num_perm, 2)
    return pairs[:, 0] | np.uint64(1), pairs[:, 1].copy()


def _span_hashes(codes: Codes, starts: Positions, ends: Positions) -> Hashes:
    """The 64-bit hash of codes[start:end] for each (start, end) pair, as uint64."""
    n = len(codes)
    powers, inverses = _powers(n + 1)
    prefix = np.empty(n + 1, dtype=np.uint64)
    prefix[0] = 0
    np.multiply(codes, powers[:n], out=prefix[1:])
    prefix[1:].cumsum(out=prefix[1:])
    x: Hashes = prefix[ends]
    x -= prefix[starts]
    x *= inverses[starts]
    x ^= x >> _SHIFT  # MurmurHash3's fmix64
    x *= _FMIX[0]
    x ^= x >> _SHIFT
    x *= _FMIX[1]
    x ^= x >> _SHIFT
    return x


def _code_points(text: str) -> Codes:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _shingle_hashes(tokens: list[str], width: int) -> Hashes:
    """The hashes of the shingles of `width` tokens (a repeated shingle repeats its hash)."""
    if not tokens:
        return np.empty(0, dtype=np.uint64)
    codes = _code_points(f" {' '.join(tokens)} ")
    spaces = (codes == 32).nonzero()[0]  # around every token (a token has none): token k is between k, k+1
    count = max(len(tokens) - width + 1, 1)  # a text shorter than the width is one shingle
    return _span_hashes(codes, spaces[:count] + 1, spaces[min(width, len(tokens)) :])


def _string_hashes(strings: list[str]) -> Hashes:
    """The same hash as `_shingle_hashes` gives, of each string."""
    lengths = np.fromiter(map(len, strings), dtype=np.intp, count=len(strings))
    ends = np.cumsum(lengths)
    return _span_hashes(_code_points("".join(strings)), ends - lengths, ends)


def _minhash_of(hashes: Hashes, num_perm: int = NUM_PERM) -> bytes:
    """Per-position minimum of the shingle hashes' num_perm values, as 4 * num_perm little-endian bytes."""
    if not len(hashes):
        return b"\xff\xff\xff\x7f" * num_perm
    mult, add = _permutations(num_perm)
    low = _lowest(hashes[:_CHUNK], mult, add)
    for start in range(_CHUNK, len(hashes), _CHUNK):
        np.minimum(low, _lowest(hashes[start : start + _CHUNK], mult, add), out=low)
    low >>= _SHIFT  # the minimum of the top 31 bits is the top 31 bits of the minimum
    return low.astype("<u4").tobytes()


def _lowest(hashes: Hashes, mult: Hashes, add: Hashes) -> Hashes:
    """Per position i, the minimum over the hashes x of (mult[i] * x + add[i]) mod 2**64."""
    values = np.multiply.outer(hashes, mult)
    values += add
    lowest: Hashes = values.min(axis=0)
    return lowest


def _minhash(shingle_set: Iterable[str], num_perm: int = NUM_PERM) -> bytes:
    """`_minhash_of` the hashes of these shingles."""
    return _minhash_of(_string_hashes(list(shingle_set)), num_perm)


@lru_cache(maxsize=4)
def _lanes(n: int) -> tuple[int, int]:
    """(value mask, guard-bit mask) for n lanes of one big integer."""
    values = int.from_bytes(b"\xff\xff\xff\x7f" * n, "little")
    guards = int.from_bytes(b"\x00\x00\x00\x80" * n, "little")
    return values, guards


def _agreement(a: bytes, b: bytes) -> float:
    """Share of equal lanes of two headerless signatures of the same length."""
    n = len(a) // 4
    if n == 0 or len(b) != len(a):
        return 0.0
    return _agreement_with(int.from_bytes(a, "little"), b, n)


def _agreement_with(a: int, b: bytes, n: int) -> float:
    """`_agreement` of a signature given as its little-endian int `a` (n lanes) and another one."""
    values, guards = _lanes(n)
    diff = a ^ int.from_bytes(b, "little")
    unequal = ((diff + values) & guards).bit_count()  # a non-zero 31-bit lane carries into its guard bit
    return (n - unequal) / n


def _signature_of(tokens: list[str]) -> bytes:
    """The headerless signature of a non-empty token list."""
    return _minhash_of(_shingle_hashes(tokens, _width(tokens, _cjk_count(tokens))))


def signature(text: str) -> bytes:
    """The MinHash signature to persist: a version byte + NUM_PERM × uint32 LE; b"" for a too-short text."""
    tokens, cjk = _tokens_cjk(text)
    if _weight(tokens, cjk) < MIN_WORDS:
        return b""
    return _HEADER + _minhash_of(_shingle_hashes(tokens, _width(tokens, cjk)))


def is_current_signature(blob: bytes | None) -> bool:
    """Whether a stored signature can be used as is (b"", for a too-short text, is current too)."""
    if blob is None:
        return False
    return blob == b"" or (len(blob) == 1 + 4 * NUM_PERM and blob[0] == SIGNATURE_VERSION)


def estimate_similarity(sig_a: bytes, sig_b: bytes) -> float:
    """Estimated Jaccard similarity of two `signature()` values; 0.0 when either is empty or stale."""
    if not (sig_a and sig_b and is_current_signature(sig_a) and is_current_signature(sig_b)):
        return 0.0
    return _agreement(sig_a[1:], sig_b[1:])


def similarity(text_a: str, text_b: str) -> float:
    """Estimated Jaccard similarity of two texts' shingle sets, whatever their length.

    1.0 for equal fingerprints (also two empty ones); 0.0 when exactly one fingerprint is empty.
    """
    tokens_a, tokens_b = _tokens(text_a), _tokens(text_b)
    if tokens_a == tokens_b:
        return 1.0
    if not tokens_a or not tokens_b:
        return 0.0
    return _agreement(_signature_of(tokens_a), _signature_of(tokens_b))


# --- forwards ---------------------------------------------------------------------------------------

_FORWARD_ORIGIN = re.compile(r"channel(\d+)/(\d+)")


def parse_forward_origin(forwarded_from: str | None) -> Key | None:
    """(channel_id, message_id) of a forward's origin from the Telethon form "channel<ID>/<POST>".

    None for anything else: a Desktop export's channel *name*, a user or a hidden sender, a channel
    without a post id.
    """
    if not forwarded_from:
        return None
    match = _FORWARD_ORIGIN.fullmatch(forwarded_from.strip())
    if match is None:
        return None
    channel_id, message_id = int(match.group(1)), int(match.group(2))
    if channel_id <= 0 or message_id <= 0:
        return None
    return channel_id, message_id


# --- the index --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """Where `StoryIndex.assign` put a post.

    `first_key` is the post this one was matched to: the forward's origin, the earliest near-duplicate
    within the window, or the post itself for a new story. `rule` is "forward", "duplicate", "new",
    "short" (a new story because the text is too short to judge) or "known" (the key was indexed before).
    `signature` is what to persist for the post (b"" for a short text).
    """

    story_id: str
    is_new: bool
    similarity: float
    first_key: Key
    signature: bytes = b""
    rule: str = "new"


def story_id_for(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


class _Entry:
    __slots__ = ("key", "ref", "sig", "story_id", "ts")

    def __init__(self, key: Key, story_id: str, sig: bytes, ts: float) -> None:
        self.key = key
        self.story_id = story_id
        self.sig = sig  # headerless, b"" when too short to judge
        self.ts = ts
        self.ref = -1  # slot << 32 | generation in the bucket store (-1: not bucketed)


_VACANT = _Entry((0, 0), "", b"", 0.0)  # what a free slot holds: its ref (-1) matches no pair
Refs = npt.NDArray[np.int64]
BandHashes = tuple[Hashes, list[int]]  # a post's band hashes, as an array and as ints


class _Buckets:
    """LSH buckets: which entries have a given band value, in flat arrays.

    Each (band hash, ref) pair sits in sorted numpy arrays; a ref is slot << 32 | generation. New pairs
    wait in columns, and in a dict by hash for lookups, until there are enough to merge. A slot is an
    entry's number; freeing it bumps its generation, which makes every pair pointing at the old entry
    stale (skipped, and dropped at a merge). A lookup compares the band itself: no hash collision passes.
    """

    # Pending pairs (~60 bytes each, most in the dict) before a merge: MERGE_AT, or 1/GROWTH of the pairs
    # in the arrays when that is more, so that a merge's copy of the arrays costs O(GROWTH) per pair.
    MERGE_AT = 1 << 14
    GROWTH = 16

    def __init__(self, bands: int, rows: int) -> None:
        self.bands = bands
        self.rows = rows
        self.width = 4 * rows  # bytes per band
        rng = random.Random(0x5EED)  # fixed multipliers: the hashes need not be stable, only well mixed
        self._mult = np.uint64(rng.getrandbits(64) | 1)
        self._salts = np.array([rng.getrandbits(64) for _ in range(bands)], dtype=np.uint64)
        self._keys = np.empty(0, np.uint64)
        self._refs: Refs = np.empty(0, np.int64)
        # pending pairs: in columns for the merge (filled while the hashes are in the cache: building them
        # from the dict at the merge takes longer), and by hash, its newest ref (in `_more` the older ones)
        self._held = 0
        self._pending_keys = np.empty(self.MERGE_AT, np.uint64)
        self._pending_refs: Refs = np.empty(self.MERGE_AT, np.int64)
        self._pending: dict[int, int] = {}
        self._more: dict[int, list[int]] = {}
        self._stale = 0  # pairs of freed slots still in the arrays
        self.entries: list[_Entry] = []  # by slot
        self.generation = np.zeros(0, np.uint32)  # by slot
        self._free: list[int] = []

    def __len__(self) -> int:
        """Pairs held, stale ones included until the next merge."""
        return len(self._keys) + self._held

    def hashes(self, sig: bytes) -> BandHashes:
        """One 64-bit hash per band of a headerless signature: (the band's first 8 bytes, or 4 of a one-row
        band, as a little-endian int) * mult + salt, mod 2**64 (injective on bands of up to two rows)."""
        width, bands = self.width, self.bands
        low: Hashes
        if len(sig) < bands * width:  # not a whole signature: int.from_bytes pads what is missing
            starts = range(0, bands * width, width)
            low = np.array([int.from_bytes(sig[s : s + min(width, 8)], "little") for s in starts], np.uint64)
        elif width == 4:
            low = np.frombuffer(sig, "<u4", count=bands).astype(np.uint64)
        else:  # a strided view of the first 8 bytes of each band
            low = np.ndarray((bands,), "<u8", sig, 0, (width,))
        hashed: Hashes = low * self._mult + self._salts
        return hashed, hashed.tolist()

    def add(self, entry: _Entry, hashes: BandHashes) -> None:
        slot = self._free.pop() if self._free else self._grow()
        ref = slot << 32 | int(self.generation[slot])
        entry.ref = ref
        self.entries[slot] = entry
        array, values = hashes
        held, end = self._held, self._held + len(values)
        if end > len(self._pending_keys):
            self._pending_keys = np.concatenate((self._pending_keys, np.empty(end, np.uint64)))
            self._pending_refs = np.concatenate((self._pending_refs, np.empty(end, np.int64)))
        self._pending_keys[held:end] = array
        self._pending_refs[held:end] = ref
        self._held = end
        pending = self._pending
        if not pending.keys().isdisjoint(values):  # a hash pending already: its ref moves to `_more`
            for h in pending.keys() & values:
                self._more.setdefault(h, []).append(pending[h])
        pending.update(zip(values, repeat(ref)))
        if end >= self.MERGE_AT and end * self.GROWTH >= len(self._keys):
            self._merge()

    def discard(self, entry: _Entry) -> None:
        slot = entry.ref >> 32
        if entry.ref < 0 or self.entries[slot] is not entry:
            return
        self.entries[slot] = _VACANT
        self.generation[slot] += 1
        self._free.append(slot)
        self._stale += self.bands
        entry.ref = -1

    def candidates(self, sig: bytes, hashes: BandHashes) -> list[_Entry]:
        """Every live entry that shares at least one band (all `rows` values) with `sig`, once."""
        array, values = hashes
        bands: list[int] = []  # bands with pairs of the same hash, and those pairs' refs
        runs: list[list[int]] = []
        keys = self._keys
        if len(keys):
            lo = keys.searchsorted(array)  # methods: np.searchsorted() adds a Python call
            hit = (keys.take(lo, mode="clip") == array).nonzero()[0]  # a pair with the band's hash
            if len(hit):
                starts = lo[hit].tolist()
                ends = keys.searchsorted(array[hit], "right").tolist()  # the end of each run of equal keys
                refs = self._refs
                bands = hit.tolist()
                runs = [refs[start:end].tolist() for start, end in zip(starts, ends, strict=True)]
        pending = self._pending
        if pending and (shared := pending.keys() & values):
            more = self._more
            for band, h in enumerate(values):
                if h in shared:
                    bands.append(band)
                    runs.append([pending[h], *more.get(h, ())])
        found: dict[int, _Entry] = {}  # by ref
        entries, width = self.entries, self.width
        for band, run in zip(bands, runs, strict=True):
            start = band * width
            part = sig[start : start + width]
            for ref in run:
                if ref not in found:
                    entry = entries[ref >> 32]
                    if entry.ref == ref and entry.sig[start : start + width] == part:
                        found[ref] = entry
        return list(found.values())

    def _grow(self) -> int:
        slot = len(self.entries)
        self.entries.append(_VACANT)
        if slot >= len(self.generation):
            self.generation = np.concatenate([self.generation, np.zeros(max(1024, slot), np.uint32)])
        return slot

    def _merge(self) -> None:
        """Fold the pending pairs into the sorted arrays; drop the stale ones when they pile up."""
        order = np.argsort(self._pending_keys[: self._held])  # the order of equal keys does not matter
        keys, refs = self._pending_keys[order], self._pending_refs[order]
        at = self._keys.searchsorted(keys, "right")
        self._keys = np.insert(self._keys, at, keys)
        self._refs = np.insert(self._refs, at, refs)
        self._held = 0
        self._pending, self._more = {}, {}
        if self._stale > len(self._keys) // 4:
            live = self.generation[self._refs >> 32] == (self._refs & 0xFFFFFFFF)
            self._keys, self._refs = self._keys[live], self._refs[live]
            self._stale = 0


class _Alias:
    """A forward's origin that is not indexed itself: later forwards of it (or the origin) join `story_id`."""

    __slots__ = ("first_key", "story_id", "ts")

    def __init__(self, story_id: str, first_key: Key, ts: float) -> None:
        self.story_id = story_id
        self.first_key = first_key
        self.ts = ts


def _timestamp(date: datetime) -> float:
    if date.tzinfo is None:
        raise ValueError("story dates must be timezone-aware")
    return date.timestamp()


class StoryIndex:
    """Recent posts' signatures, for story assignment. Not thread-safe: one writer (the pipeline's lock).

    Memory is bounded by time and count: entries older than `window` before the newest date seen are
    evicted, and beyond `max_entries` the oldest go first.

    Posts older than that (a backfill of old posts, an import of history into an archive kept up to date)
    go to a second index of their own, `past`, bounded by count only (`max_past` entries and forward
    origins, the first added go first): they fold into each other's stories, and into those of the indexed
    posts within their window.
    """

    def __init__(
        self,
        *,
        window: timedelta = WINDOW,
        threshold: float = THRESHOLD,
        same_channel_threshold: float = SAME_CHANNEL_THRESHOLD,
        bands: int = BANDS,
        rows: int = ROWS,
        max_entries: int = 200_000,
        max_past: int = 50_000,
    ) -> None:
        if bands * rows > NUM_PERM or bands < 1 or rows < 1:
            raise ValueError(f"bands * rows must be between 1 and {NUM_PERM}")
        if not (0.0 < threshold <= 1.0 and 0.0 < same_channel_threshold <= 1.0):
            raise ValueError("thresholds must be in (0, 1]")
        self.window = window
        self.threshold = threshold
        self.same_channel_threshold = same_channel_threshold
        self.bands = bands
        self.rows = rows
        self.max_entries = max_entries
        self.max_past = max_past
        self._window_s = window.total_seconds()
        self._entries: dict[Key, _Entry] = {}
        self._aliases: dict[Key, _Alias] = {}
        self._buckets = _Buckets(bands, rows)
        self._heap: list[tuple[float, int, Key]] = []  # (ts, seq, key) of entries and aliases, lazily cleaned
        self._seq = count()
        self._newest = float("-inf")
        self._past: StoryIndex | None = None
        # `past` only: what was added, first added first; evicted by count, not by date
        self._added: deque[tuple[Key, _Entry | _Alias]] | None = None

    # public API

    def __len__(self) -> int:
        return len(self._entries) + (len(self._past) if self._past is not None else 0)

    def __contains__(self, key: object) -> bool:
        return key in self._entries or (self._past is not None and key in self._past)

    @property
    def past(self) -> StoryIndex | None:
        """The index of posts older than the window (None until one came)."""
        return self._past

    def is_past(self, date: datetime) -> bool:
        """Whether a post of this date is older than the window before the newest date seen (it goes to
        `past`)."""
        return self._is_past(_timestamp(date))

    def story_of(self, key: Key) -> str | None:
        """The story id of an indexed post (or of a forward origin seen through its forwards)."""
        entry = self._entries.get(key)
        if entry is not None:
            return entry.story_id
        alias = self._aliases.get(key)
        if alias is not None:
            return alias.story_id
        return self._past.story_of(key) if self._past is not None else None

    @staticmethod
    def signature(text: str) -> bytes:
        return signature(text)

    def assign(
        self,
        key: Key,
        text: str,
        date: datetime,
        forwarded_from: Key | None = None,
        *,
        blob: bytes | None = None,
    ) -> StoryMatch:
        """Give a new post its story and index it.

        1. A forward whose origin is indexed (or was forwarded before) gets the origin's story.
        2. Else the earliest indexed post within ±window whose estimated similarity is ≥ threshold gives
           its story (never for texts too short to judge).
        3. Else a new story, `"<channel_id>:<message_id>"`.

        `blob`: `signature(text)` when the caller computed it already (e.g. in another process).
        """
        ts = _timestamp(date)
        past = self._past_index() if self._is_past(ts) else None
        for index in (self, self._past):
            known = index._entries.get(key) if index is not None else None
            if known is not None:
                return StoryMatch(known.story_id, False, 1.0, key, self._with_header(known.sig), "known")
        if blob is None:
            blob = signature(text)
        sig = blob[1:]
        hashes = self._buckets.hashes(sig) if sig else None
        # a past post's earlier posts are all in `past`: it is asked first (the earliest match wins)
        searched = (self,) if past is None else (past, self)
        match = next(filter(None, (index._by_forward(key, forwarded_from, blob) for index in searched)), None)
        if match is None and hashes is not None:
            found = (index._by_content(key[0], sig, ts, blob, hashes) for index in searched)
            match = next(filter(None, found), None)
        if match is None:
            match = StoryMatch(story_id_for(key), True, 0.0, key, blob, "new" if sig else "short")
        (self if past is None else past)._put(key, match.story_id, sig, ts, forwarded_from, hashes)
        return match

    def add_existing(
        self,
        key: Key,
        story_id: str,
        signature_bytes: bytes | None,
        date: datetime,
        forwarded_from: Key | None = None,
    ) -> None:
        """Index a stored post with its stored story (start-up rebuild, or re-indexing an edited post).

        `signature_bytes` is what `signature()` gave (b"" or None: match by forwards only). A signature of
        another `SIGNATURE_VERSION` raises ValueError: recompute it from the text.
        """
        blob = signature_bytes or b""
        if not is_current_signature(blob):
            raise ValueError(f"signature of {key} is not of version {SIGNATURE_VERSION}: recompute it")
        ts = _timestamp(date)
        self.remove(key)
        (self._past_index() if self._is_past(ts) else self)._put(key, story_id, blob[1:], ts, forwarded_from)

    def remove(self, key: Key) -> bool:
        """Forget a post (deleted, or about to be re-added after an edit); False if it was not indexed."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return self._past is not None and self._past.remove(key)
        self._buckets.discard(entry)
        return True

    # internals

    def _is_past(self, ts: float) -> bool:
        return self._added is None and ts < self._newest - self._window_s

    def _put(
        self,
        key: Key,
        story_id: str,
        sig: bytes,
        ts: float,
        origin: Key | None,
        hashes: BandHashes | None = None,
    ) -> None:
        """Index a post in this index (not `past`'s), with its forward's origin, then evict what is due."""
        self._add(key, story_id, sig, ts, hashes)
        self._alias(origin, key, story_id, ts)
        self._evict()

    def _past_index(self) -> StoryIndex:
        if self._past is None:
            self._past = StoryIndex(
                window=self.window, threshold=self.threshold,
                same_channel_threshold=self.same_channel_threshold, bands=self.bands, rows=self.rows,
                max_entries=self.max_past,
            )  # fmt: skip
            self._past._added = deque()
        return self._past

    def _by_forward(self, key: Key, origin: Key | None, blob: bytes) -> StoryMatch | None:
        for probe in (origin, key):  # key: an earlier forward named this very post as its origin
            if probe is None:
                continue
            entry = self._entries.get(probe)
            if entry is not None:
                return StoryMatch(entry.story_id, False, 1.0, probe, blob, "forward")
            alias = self._aliases.get(probe)
            if alias is not None:
                return StoryMatch(alias.story_id, False, 1.0, alias.first_key, blob, "forward")
        return None

    def _by_content(
        self, channel_id: int, sig: bytes, ts: float, blob: bytes, hashes: BandHashes
    ) -> StoryMatch | None:
        lanes = len(sig) // 4
        if not lanes:  # `_agreement` is 0 for everything
            return None
        best: tuple[float, Key, float, str] | None = None  # (ts, key, similarity, story)
        mine = int.from_bytes(sig, "little")
        window, same_channel, other_channel = self._window_s, self.same_channel_threshold, self.threshold
        for entry in self._buckets.candidates(sig, hashes):
            if abs(entry.ts - ts) > window or (best is not None and (entry.ts, entry.key) > best[:2]):
                continue  # out of the window, or later than a match found already
            score = _agreement_with(mine, entry.sig, lanes) if len(entry.sig) == len(sig) else 0.0
            if score >= (same_channel if entry.key[0] == channel_id else other_channel):
                best = (entry.ts, entry.key, score, entry.story_id)
        if best is None:
            return None
        return StoryMatch(best[3], False, best[2], best[1], blob, "duplicate")

    def _candidates(self, sig: bytes) -> list[_Entry]:
        """Indexed entries that share at least one band (all `rows` values) with `sig`."""
        return self._buckets.candidates(sig, self._buckets.hashes(sig)) if sig else []

    def _add(self, key: Key, story_id: str, sig: bytes, ts: float, hashes: BandHashes | None = None) -> None:
        entry = _Entry(key, story_id, sig, ts)
        self._entries[key] = entry
        if self._added is not None:
            self._added.append((key, entry))
        else:
            heapq.heappush(self._heap, (ts, next(self._seq), key))
        if ts > self._newest:
            self._newest = ts
        if sig:
            self._buckets.add(entry, self._buckets.hashes(sig) if hashes is None else hashes)

    def _alias(self, origin: Key | None, key: Key, story_id: str, ts: float) -> None:
        """Remember a forward's origin that is not indexed, so its other forwards join the same story."""
        if origin is None or origin == key or origin in self._entries or origin in self._aliases:
            return
        alias = self._aliases[origin] = _Alias(story_id, key, ts)
        if self._added is not None:
            self._added.append((origin, alias))
        else:
            heapq.heappush(self._heap, (ts, next(self._seq), origin))

    def _evict(self) -> None:
        if self._added is not None:
            self._evict_first_added(self._added)
            return
        horizon = self._newest - self._window_s
        heap = self._heap
        while heap and (heap[0][0] < horizon or len(self._entries) > self.max_entries):
            ts, _, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry.ts == ts:
                self.remove(key)
            alias = self._aliases.get(key)
            if alias is not None and alias.ts == ts:
                del self._aliases[key]
        # Removed and re-added keys leave stale heap items; rebuild when they outnumber the live ones.
        if len(heap) > 2 * (len(self._entries) + len(self._aliases)) + 1024:
            live = [item for item in heap if self._is_live(item)]
            heapq.heapify(live)
            self._heap = live

    def _evict_first_added(self, added: deque[tuple[Key, _Entry | _Alias]]) -> None:
        entries, aliases = self._entries, self._aliases
        while added and len(entries) + len(aliases) > self.max_entries:
            key, item = added.popleft()
            if entries.get(key) is item:
                self.remove(key)
            elif aliases.get(key) is item:
                del aliases[key]
        if len(added) > 2 * (len(entries) + len(aliases)) + 1024:  # removed and re-added keys: drop stale
            self._added = deque(
                (key, item) for key, item in added if entries.get(key) is item or aliases.get(key) is item
            )

    def _is_live(self, item: tuple[float, int, Key]) -> bool:
        ts, _, key = item
        entry = self._entries.get(key)
        alias = self._aliases.get(key)
        return (entry is not None and entry.ts == ts) or (alias is not None and alias.ts == ts)

    @staticmethod
    def _with_header(sig: bytes) -> bytes:
        return _HEADER + sig if sig else b""
