from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import stories
from core.pieces import EMAIL
from core.stories import (
    NUM_PERM,
    SIGNATURE_VERSION,
    WINDOW,
    StoryIndex,
    estimate_similarity,
    fingerprint_text,
    is_current_signature,
    is_judgeable,
    parse_forward_origin,
    signature,
    similarity,
    strip_signature,
)

T0 = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)

NEWS = (
    "Городской совет утвердил новый бюджет после долгих споров во вторник вечером. "
    "Мэр пообещал, что ремонт дорог в северных районах начнётся в мае, а на строительство "
    "двух школ выделят 1,2 млрд рублей. Оппозиция назвала документ нереалистичным и потребовала "
    "опубликовать расчёты до конца недели."
)
OTHER = (
    "Сильные дожди ожидаются в южных областях до конца недели, сообщили синоптики. Жителей "
    "просят не оставлять машины под деревьями и следить за предупреждениями экстренных служб, "
    "уровень воды в реках может подняться на полтора метра."
)
ENGLISH = (
    "The city council approved the new budget after a long debate on Tuesday evening, and the mayor "
    "said that road repairs will start in May."
)
CHINESE = "市议会周二晚上经过长时间辩论后批准了新的预算，市长表示北部地区的道路维修工作将于五月开始。"


# --- fingerprints -----------------------------------------------------------------------------------


def test_fingerprint_drops_links_mentions_hashtags_emoji_and_signature() -> None:
    text = (
        "🔥 #Срочно Городской совет утвердил бюджет, сообщает @city_news: https://example.com/a\n"
        "Список новых школ опубликован на bit.ly/abc и в [статье](https://example.com/b) 👇\n\n"
        "👉 Подписаться на @city_news | t.me/city_news"
    )
    assert fingerprint_text(text) == (
        "городской совет утвердил бюджет сообщает список новых школ опубликован на и в статье"
    )
    # a short last line that only points to a link is a signature too
    assert fingerprint_text("Городской совет утвердил бюджет.\nПодробнее: https://example.com/a") == (
        "городской совет утвердил бюджет"
    )


def test_fingerprint_folds_case_yo_and_persian_letter_variants() -> None:
    assert fingerprint_text("ЁЖИК Ёлка") == "ежик елка"
    assert fingerprint_text("هم‌اكنون علي ۳") == fingerprint_text("هم اکنون علی 3")


def test_signature_cut_is_conservative() -> None:
    body = "Первая строка новости.\nВторая строка, в которой тоже есть слова и @упоминание внутри текста."
    assert strip_signature(body) == body  # a long line with a mention is text, not a signature
    assert strip_signature("@only_a_mention") == "@only_a_mention"  # never the first line
    signed = "Текст новости здесь.\n\nکانال رسمی #شرق_نیوز\n@EastNewse"
    assert strip_signature(signed) == "Текст новости здесь."


def test_short_texts_are_not_judgeable() -> None:
    assert not is_judgeable("Взрыв в центре города, есть пострадавшие")  # 6 words
    assert is_judgeable(NEWS)
    assert not is_judgeable(CHINESE[:15])  # 15 characters count as 6 words
    assert is_judgeable(CHINESE)
    assert signature("Взрыв в центре города") == b""


def test_signature_is_compact_and_deterministic() -> None:
    blob = signature(ENGLISH)
    assert len(blob) == 1 + 4 * NUM_PERM and blob[0] == SIGNATURE_VERSION
    assert is_current_signature(blob) and is_current_signature(b"")
    assert not is_current_signature(b"\x00" + blob[1:]) and not is_current_signature(None)
    # Hard-coded once (version 2, equal to `reference_signature`): any change to folding, shingling or
    # hashing changes this and needs a new SIGNATURE_VERSION (stored signatures would no longer compare).
    assert blob[:17].hex() == "02fad97f016984d702e2daad05d8ff1005"


# --- MinHash against its definition ------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def reference_hash(shingle: str) -> int:
    """A shingle's 64-bit hash as documented: sum(ord(c_j) * BASE**j) mod 2**64, then fmix64."""
    x = sum(ord(c) * pow(0x9E3779B97F4A7C15, j, 1 << 64) for j, c in enumerate(shingle)) & MASK64
    x ^= x >> 33
    x = x * 0xFF51AFD7ED558CCD & MASK64
    x ^= x >> 33
    x = x * 0xC4CEB9FE1A85EC53 & MASK64
    return x ^ (x >> 33)


def reference_signature(text: str) -> bytes:
    """`signature()` by its definition, in plain Python: value i = min over shingles of (A_i·x + B_i) >> 33"""
    stream = hashlib.shake_128(b"tgmon stories minhash v2").digest(16 * NUM_PERM)
    words = [int.from_bytes(stream[k : k + 8], "little") for k in range(0, len(stream), 8)]
    hashes = [reference_hash(shingle) for shingle in stories.shingles(text)]
    pairs = zip(words[::2], words[1::2], strict=True)
    values = [min(((a | 1) * x + b) & MASK64 for x in hashes) >> 33 for a, b in pairs]
    return bytes([SIGNATURE_VERSION]) + b"".join(v.to_bytes(4, "little") for v in values)


def test_signature_is_the_documented_minhash() -> None:
    repeated = " ".join(["раз два три четыре"] * 5 + ["пять шесть"])  # repeated shingles
    for text in (NEWS, OTHER, ENGLISH, CHINESE, repeated, "ข่าว" * 30, "هم‌اكنون علي ۳ " * 4):
        assert is_judgeable(text)
        assert signature(text) == reference_signature(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=6), max_size=30))
def test_shingle_hashes_at_once_equal_each_shingle_hashed_alone(tokens: list[str]) -> None:
    for width in (1, 2, 4):
        shingle_set = stories._shingle_set(tokens, words=width, chars=width)
        found = stories._shingle_hashes(tokens, width)
        assert set(found.tolist()) == {reference_hash(shingle) for shingle in shingle_set}
        assert stories._minhash_of(found) == stories._minhash(shingle_set)


def test_long_texts_hash_like_short_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    words = [f"слово{n}" for n in range(12_000)]  # ~100,000 characters: powers beyond the cached table
    hashes = stories._shingle_hashes(words, 4)
    assert len(hashes) == len(words) - 3
    assert int(hashes[-1]) == reference_hash(" ".join(words[-4:]))
    whole = stories._minhash_of(hashes)
    monkeypatch.setattr(stories, "_CHUNK", 1000)  # the minimum taken block by block
    assert stories._minhash_of(hashes) == whole


# --- fingerprint fast paths against the plain definition --------------------------------------------


def plain_tokens(text: str) -> list[str]:
    """`_tokens` without its shortcuts: every regex run, str.translate, CJK characters split apart."""
    lines = text.rstrip().split("\n")
    cut, end = 0, len(lines)
    while end > 1 and cut < 3:
        line = lines[end - 1]
        if not line.strip():
            end -= 1
            continue
        unlinked = stories._URL.sub(" ", stories._MARKDOWN_LINK.sub("] ", line))
        words = len(stories._TOKEN.findall(stories._TAG.sub(" ", unlinked)))
        if unlinked != line or stories._SIGNATURE_HINT.search(line):
            signed = words <= 6
        else:
            signed = words <= 2 and bool(stories._TAG.search(line))
        if not signed:
            break
        end -= 1
        cut += 1
    body = "\n".join(lines[:end]) if cut else text
    body = EMAIL.sub(" ", stories._MARKDOWN_LINK.sub("] ", body))
    body = stories._TAG.sub(" ", stories._URL.sub(" ", body))
    folded = unicodedata.normalize("NFKC", body).casefold().translate(str.maketrans(stories._FOLD))
    folded = re.sub(f"([{stories._CJK}])", r" \1 ", stories._MARKS.sub("", folded))
    return stories._TOKEN.findall(folded)


TRICKY = (
    "ab Zw W@#＃＠/.:-_&+ \n\t[]()ёЁйИ İıſK 12,5 😀 ‌​‍­⁠﻿ـ يىكةۀأإآ ٠١٩ ۰۳۹ ً́…№ 中文字ー・゛ ไทย ั๏ฯ \U00020001"
    "\xa0\u2011\uff1a"
)
PIECES = st.sampled_from(
    [
        "https://t.me/x/1", "www.Example.com", "bit.ly/abc", "tg://resolve", "[статья](https://e.com/b)",
        "mail@example.com", "@channel", "#тег", "Подписаться", "subscribe", "канал", "کانال رسمی",
        "Читать нас", "новость", "市议会周二晚上", "слово", "word", "1/2", "км/ч", "a.b.c/d", "WWW.x",
        "a@b.c+d@e.f", "x@y", "@a#b", "&#x", "Telegram.Me/x", "wWw.",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet=TRICKY, max_size=8), PIECES), max_size=40))
def test_fingerprint_shortcuts_change_nothing(parts: list[str]) -> None:
    text = "".join(parts)
    assert stories._tokens(text) == plain_tokens(text)


def test_folding_replacements_are_not_folded_again() -> None:
    """`_fold` replaces one folded character after the other: that is one translation only so."""
    assert not any(key in value for key in stories._FOLD for value in stories._FOLD.values())


def test_similarity_behaves() -> None:
    assert similarity(NEWS, NEWS) == 1.0
    assert similarity(NEWS, "🔥 " + NEWS + " https://t.me/x") == 1.0
    assert similarity(NEWS, OTHER) < 0.1
    assert 0.5 < similarity(NEWS, NEWS.replace("вторник", "среду")) < 1.0
    assert estimate_similarity(signature(NEWS), b"") == 0.0


def test_parse_forward_origin() -> None:
    assert parse_forward_origin("channel1101170442/271290") == (1101170442, 271290)
    assert parse_forward_origin(" channel5/6 ") == (5, 6)
    for value in (None, "", "Офіс Президента", "channel123", "user5/6", "chat5/6", "channel0/1", "unknown"):
        assert parse_forward_origin(value) is None


# --- the index --------------------------------------------------------------------------------------


def test_identical_text_joins_the_first_story() -> None:
    index = StoryIndex()
    first = index.assign((1, 10), NEWS, T0)
    assert first.is_new and first.story_id == "1:10" and first.first_key == (1, 10) and first.rule == "new"
    assert first.signature == signature(NEWS)
    copy = index.assign((2, 20), NEWS, T0 + timedelta(minutes=5))
    assert (copy.story_id, copy.is_new, copy.similarity, copy.first_key) == ("1:10", False, 1.0, (1, 10))
    assert copy.rule == "duplicate"


def test_copy_with_other_emoji_links_and_signature_joins() -> None:
    index = StoryIndex()
    index.assign((1, 10), "⚡️ " + NEWS + "\n\nЧитать нас без VPN: bit.ly/news", T0)
    copy = "❗️❗️" + NEWS.replace("вечером.", "вечером 🏛") + "\n\nhttps://t.me/other/5\n@other_channel"
    match = index.assign((2, 20), copy, T0 + timedelta(hours=1))
    assert match.story_id == "1:10" and match.similarity >= 0.9


def test_small_edit_joins() -> None:
    index = StoryIndex()
    index.assign((1, 10), NEWS, T0)
    edited = NEWS.replace("долгих споров", "долгих дебатов").replace("до конца недели", "в пятницу")
    match = index.assign((2, 20), edited, T0 + timedelta(hours=2))
    assert match.story_id == "1:10" and not match.is_new


def test_cjk_copy_joins_and_unrelated_cjk_does_not() -> None:
    index = StoryIndex()
    index.assign((1, 1), CHINESE, T0)
    assert index.assign((2, 2), "📢 " + CHINESE + " #新闻", T0).story_id == "1:1"
    other = "科学家在南极冰层下发现了一个巨大的淡水湖，湖水温度常年保持在零度以下，研究将持续三年。"
    assert index.assign((3, 3), other, T0).is_new


def test_unrelated_text_is_a_new_story() -> None:
    index = StoryIndex()
    index.assign((1, 10), NEWS, T0)
    match = index.assign((2, 20), OTHER, T0 + timedelta(minutes=1))
    assert match.is_new and match.story_id == "2:20" and match.similarity == 0.0


def test_short_texts_never_merge() -> None:
    index = StoryIndex()
    short = "Взрыв в центре города, есть пострадавшие"
    assert index.assign((1, 10), short, T0).rule == "short"
    again = index.assign((2, 20), short, T0 + timedelta(minutes=1))
    assert again.is_new and again.story_id == "2:20" and again.rule == "short" and again.signature == b""


def test_forward_of_a_known_origin_gets_its_story() -> None:
    index = StoryIndex()
    index.assign((1, 10), NEWS, T0)
    fwd = index.assign((2, 20), "Коротко", T0 + timedelta(hours=1), forwarded_from=(1, 10))
    assert (fwd.story_id, fwd.rule, fwd.first_key, fwd.similarity) == ("1:10", "forward", (1, 10), 1.0)


def test_forwards_of_an_unknown_origin_share_one_story_and_the_origin_joins_it() -> None:
    index = StoryIndex()
    first = index.assign((2, 20), "Коротко", T0, forwarded_from=(9, 99))
    assert first.is_new
    second = index.assign((3, 30), "Тоже коротко", T0 + timedelta(minutes=3), forwarded_from=(9, 99))
    assert second.story_id == "2:20" and second.rule == "forward"
    origin = index.assign((9, 99), OTHER, T0 + timedelta(minutes=5))
    assert origin.story_id == "2:20" and index.story_of((9, 99)) == "2:20"


def test_outside_the_window_is_a_new_story() -> None:
    index = StoryIndex()
    index.assign((1, 10), NEWS, T0)
    late = index.assign((2, 20), NEWS, T0 + WINDOW + timedelta(hours=1))
    assert late.is_new and late.story_id == "2:20"
    # within the window on the other side (a late backfill of an older post) still matches
    index = StoryIndex()
    index.assign((1, 10), NEWS, T0)
    assert index.assign((2, 20), NEWS, T0 - timedelta(hours=5)).story_id == "1:10"


def test_posts_older_than_the_window_fold_in_an_index_of_their_own() -> None:
    index = StoryIndex()
    index.assign((9, 1), OTHER, T0)  # a live archive: the window is the 72 h before T0
    old = T0 - timedelta(days=30)  # an import of history
    assert index.is_past(old) and not index.is_past(T0 - WINDOW + timedelta(minutes=1))
    first = index.assign((1, 10), NEWS, old)
    copy = index.assign((2, 20), NEWS, old + timedelta(hours=1))
    forward = index.assign((3, 30), "short", old + timedelta(hours=2), forwarded_from=(1, 10))
    assert first.is_new and copy.story_id == forward.story_id == "1:10"
    assert index.past is not None and len(index.past) == 3 and len(index) == 4  # the live window kept
    assert (2, 20) in index and index.story_of((2, 20)) == "1:10"
    assert index.assign((1, 10), NEWS, old).rule == "known"
    assert index.remove((2, 20)) and (2, 20) not in index
    index.add_existing((2, 20), "1:10", signature(NEWS), old + timedelta(hours=1))  # an edit, re-indexed
    assert (2, 20) in index.past


def test_a_post_older_than_the_window_meets_the_live_posts_of_its_own_window() -> None:
    index = StoryIndex()
    index.assign((1, 10), NEWS, T0 - WINDOW + timedelta(hours=1))
    index.assign((9, 1), OTHER, T0)
    late = index.assign((2, 20), NEWS, T0 - WINDOW - timedelta(hours=1))  # a late backfill, 2 h earlier
    assert index.past is not None and (2, 20) in index.past and late.story_id == "1:10"
    # an older one in the past index comes first: the earliest match gives the story
    index.add_existing((3, 30), "3:30", signature(NEWS), T0 - WINDOW - timedelta(hours=3))
    assert index.assign((4, 40), NEWS, T0 - WINDOW - timedelta(hours=2)).story_id == "3:30"


def test_the_past_index_is_bounded_by_count() -> None:
    index = StoryIndex(max_past=20)
    index.assign((9, 1), OTHER, T0)
    for n in range(100):  # a year of history, a post a day
        index.assign((1, n), f"{NEWS} {n}", T0 - timedelta(days=400 - n))
    assert index.past is not None and len(index.past) == 20 and (1, 99) in index and (1, 0) not in index
    for n in range(5):  # then another channel's older posts: the first added go first, not the oldest
        index.assign((2, n), f"{OTHER} {n}", T0 - timedelta(days=700 - n), forwarded_from=(7, n))
    assert len(index.past) + len(index.past._aliases) == 20  # forward origins count too
    assert all((2, n) in index for n in range(5)) and (1, 89) not in index and (1, 95) in index


def test_the_earliest_matching_post_gives_the_story() -> None:
    index = StoryIndex()
    index.add_existing((1, 1), "story-a", signature(NEWS), T0 + timedelta(hours=2))
    index.add_existing((2, 2), "story-b", signature(NEWS), T0)
    match = index.assign((3, 3), NEWS, T0 + timedelta(hours=3))
    assert match.story_id == "story-b" and match.first_key == (2, 2)


def test_same_channel_threshold_applies_to_posts_of_one_channel() -> None:
    edited = NEWS.replace("вторник", "среду").replace("мае", "июне").replace("двух", "трёх")
    score = similarity(NEWS, edited)
    strict = StoryIndex(same_channel_threshold=min(1.0, score + 0.05))
    strict.assign((1, 10), NEWS, T0)
    assert strict.assign((1, 11), edited, T0).is_new  # same channel: stricter
    assert strict.assign((2, 20), edited, T0).story_id == "1:10"  # other channel: default threshold


def test_eviction_keeps_memory_bounded() -> None:
    index = StoryIndex()
    index._buckets.MERGE_AT = 256  # merge often, so the bound below is tight
    posts_per_day = 48
    for n in range(10 * posts_per_day):  # 10 days, a distinct judgeable text every half hour
        date = T0 + timedelta(minutes=30 * n)
        index.assign((1, n), f"{NEWS} Выпуск номер {n} слово{n} ещё{n} текст{n}.", date)
    window_posts = 3 * posts_per_day + 1
    assert len(index) <= window_posts
    assert len(index._heap) <= 2 * window_posts + 1024
    assert (
        len(index._buckets) <= 16 * window_posts * 4 // 3 + 256
    )  # stale band hashes dropped as they pile up
    capped = StoryIndex(max_entries=50)
    for n in range(200):
        capped.assign((1, n), f"{OTHER} {n}", T0 + timedelta(seconds=n))
    assert len(capped) == 50 and (1, 199) in capped and (1, 0) not in capped


def test_remove_forgets_a_post() -> None:
    index = StoryIndex()
    index.assign((1, 10), NEWS, T0)
    assert index.remove((1, 10)) and not index.remove((1, 10))
    assert list(index._candidates(signature(NEWS)[1:])) == []  # its band hashes are stale
    assert index.assign((2, 20), NEWS, T0).is_new


def test_signature_round_trips_through_add_existing() -> None:
    index = StoryIndex()
    index.add_existing((1, 10), "1:10", signature(NEWS), T0)
    index.add_existing((1, 11), "1:11", b"", T0)  # a short post: forwards only
    index.add_existing((1, 12), "1:12", None, T0)
    assert len(index) == 3
    match = index.assign((2, 20), NEWS + " 🔥", T0 + timedelta(hours=1))
    assert match.story_id == "1:10" and match.similarity == 1.0
    assert index.assign((3, 30), "x", T0, forwarded_from=(1, 11)).story_id == "1:11"
    again = index.assign((2, 20), "anything", T0)  # a known key keeps its story
    assert again.rule == "known" and again.story_id == "1:10" and again.signature == signature(NEWS + " 🔥")
    with pytest.raises(ValueError, match="version"):
        index.add_existing((4, 40), "4:40", b"\x63" + signature(NEWS)[1:], T0)
    with pytest.raises(ValueError, match="timezone"):
        index.assign((5, 50), NEWS, datetime(2024, 1, 1))


def test_odd_text_does_not_break_anything() -> None:
    index = StoryIndex()
    for n, text in enumerate(["", " \n ", "\x00", "\ud83d lone surrogate " * 5, "🔥" * 50, "١٢٣ ۴۵۶ " * 10]):
        index.assign((1, n), text, T0)
        assert similarity(text, text) == 1.0


def test_index_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        StoryIndex(bands=100, rows=2)
    with pytest.raises(ValueError):
        StoryIndex(threshold=0.0)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_assign_never_raises_and_self_similarity_is_one(text: str, other: str) -> None:
    index = StoryIndex()
    first = index.assign((1, 1), text, T0)
    second = index.assign((2, 2), text, T0)
    assert first.is_new
    assert second.story_id == ("1:1" if first.signature else "2:2")
    index.assign((3, 3), other, T0, forwarded_from=(4, 4))
    assert similarity(text, text) == 1.0
    assert 0.0 <= similarity(text, other) <= 1.0
    assert fingerprint_text(text) == fingerprint_text(text)


# --- real data (optional) ---------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_cross_channel_copy_merges_and_a_template_does_not(shared_data: Path) -> None:
    folder = shared_data / "dumps" / "ria_and_other_ru"
    ria = {m["message_id"]: m for m in json.loads((folder / "1001101170442_messages.json").read_text())}
    banksta = {m["message_id"]: m for m in json.loads((folder / "1001136626166_messages.json").read_text())}
    index = StoryIndex()

    def put(channel: int, post: dict[str, object]) -> str:
        date = datetime.fromisoformat(str(post["date"]))
        return index.assign((channel, int(str(post["message_id"]))), str(post["text"]), date).story_id

    # RIA's post on the Druzhba pipeline and Banksta's copy of it, signed "@banksta", 40 minutes later
    assert put(1101170442, ria[271290]) == put(1136626166, banksta[61615])
    # the same phrasing about another milestone a day later ("выше 15 рублей" vs "выше 14,50 руб.")
    assert put(1101170442, ria[270746]) != put(1136626166, banksta[61297])


@pytest.mark.parametrize(("bands", "rows"), [(16, 2), (24, 1), (42, 3)])
def test_buckets_find_exactly_the_posts_sharing_a_band(bands: int, rows: int) -> None:
    """The flat bucket store against a brute-force scan, through merges, removals and re-use of slots."""
    rng = random.Random(3)
    vocab = [f"слово{n}" for n in range(40)]  # a small vocabulary: many posts share bands
    index = StoryIndex(window=timedelta(days=3650), bands=bands, rows=rows)
    index._buckets.MERGE_AT = 64
    width = 4 * index.rows
    for n in range(400):
        text = " ".join(rng.choice(vocab) for _ in range(12))
        index.assign((1 + n % 3, n), text, T0 + timedelta(minutes=n))
        if n % 5 == 0:
            index.remove((1 + (n // 2) % 3, n // 2))
        sig = signature(text)[1:]
        expected = {
            key
            for key, entry in index._entries.items()
            if entry.sig
            and any(
                entry.sig[b * width : (b + 1) * width] == sig[b * width : (b + 1) * width]
                for b in range(bands)
            )
        }
        assert {entry.key for entry in index._candidates(sig)} == expected


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_band_hashes_are_the_band_as_an_int_mixed(rows: int) -> None:
    """numpy's band hashes are (the band's first 8 bytes as an int) * mult + salt mod 2**64, also for a
    signature too short to fill every band."""
    buckets = StoryIndex(bands=8, rows=rows)._buckets
    mult, salts = int(buckets._mult), [int(salt) for salt in buckets._salts]
    width = 4 * rows
    for sig in (signature(NEWS)[1:], signature(OTHER)[1:], signature(NEWS)[1:10]):
        array, values = buckets.hashes(sig)
        expected = [
            (int.from_bytes(sig[b * width : b * width + width], "little") * mult + salts[b]) % 2**64
            for b in range(8)
        ]
        assert values == array.tolist() == expected


def test_posts_sharing_every_band_are_all_found_before_and_after_a_merge() -> None:
    index = StoryIndex()
    for n in range(6):
        index.add_existing((n + 1, n), f"story-{n}", signature(NEWS), T0)
    index.remove((3, 2))
    index.add_existing((7, 6), "story-6", signature(NEWS), T0)  # re-uses the freed slot
    expected = {(1, 0), (2, 1), (4, 3), (5, 4), (6, 5), (7, 6)}
    sig = signature(NEWS)[1:]
    assert {entry.key for entry in index._candidates(sig)} == expected  # all pending
    index._buckets._merge()
    assert {entry.key for entry in index._candidates(sig)} == expected
    index.remove((1, 0))
    index.add_existing((1, 0), "story-0", signature(OTHER), T0)  # its slot again, other bands
    assert {entry.key for entry in index._candidates(sig)} == expected - {(1, 0)}
