from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.query import text as qt
from core.query.text import (
    MIN_STEM_LEN,
    STEM_LANGS,
    BoundedCache,
    Token,
    doc_stem_keys,
    fold_word,
    locate,
    query_stem_keys,
    scan,
    script_of,
    stem,
    token_norms,
    tokenize,
)
from core.query.ukstem import stem as uk_stem


def words(text: str) -> list[tuple[str, str]]:
    """(norm, surface) per token, checking the offsets point at the surface."""
    out = []
    for t in tokenize(text):
        assert isinstance(t, Token)
        out.append((t.norm, text[t.start : t.end]))
    return out


# --- tokenize ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Привет, мир!", [("привет", "Привет"), ("мир", "мир")]),
        ("  Ёлка\nзелёная.", [("елка", "Ёлка"), ("зеленая", "зелёная")]),
        ("عَلَىٰ الطاولةِ", [("علي", "عَلَىٰ"), ("الطاولة", "الطاولةِ")]),
        ("我爱北京", [("我", "我"), ("爱", "爱"), ("北", "北"), ("京", "京")]),
        (
            "Tokyo東京タワー",
            [("tokyo", "Tokyo"), ("東", "東"), ("京", "京"), ("タ", "タ"), ("ワ", "ワ"), ("ー", "ー")],
        ),
        ("한국어 사랑", [("한국어", "한국어"), ("사랑", "사랑")]),
        ("ภาษา", [("ภ", "ภ"), ("า", "า"), ("ษ", "ษ"), ("า", "า")]),
        ("мир🙂🔥война👍🏽peace", [("мир", "мир"), ("война", "война"), ("peace", "peace")]),
        (
            "#Free_Press @durov_bot #протесты",
            [("free_press", "#Free_Press"), ("durov_bot", "@durov_bot"), ("протесты", "#протесты")],
        ),
        ("snake_case", [("snake", "snake"), ("case", "case")]),
        (
            "mail@host.com C# ##tag",
            [("mail", "mail"), ("host", "host"), ("com", "com"), ("c", "C"), ("tag", "tag")],
        ),
        ("М'ясо, обов’язок, сімʼя", [("м'ясо", "М'ясо"), ("обов'язок", "обов’язок"), ("сім'я", "сімʼя")]),
        ("'цитата' don't", [("цитата", "цитата"), ("don", "don"), ("t", "t")]),
        ("Алма-Ата — Нур-Султан", [("алма", "Алма"), ("ата", "Ата"), ("нур", "Нур"), ("султан", "Султан")]),
        ("про\u200bтест, по\u00adезд", [("протест", "про\u200bтест"), ("поезд", "по\u00adезд")]),
        (
            "https://t.me/news_kz/123",
            [("https", "https"), ("t", "t"), ("me", "me"), ("news", "news"), ("kz", "kz"), ("123", "123")],
        ),
        ("हिंदी நன்றி", [("हिंदी", "हिंदी"), ("நன்றி", "நன்றி")]),
        ("ـــ ...", []),
    ],
)
def test_tokenize(text: str, expected: list[tuple[str, str]]) -> None:
    assert words(text) == expected


def test_token_offsets_include_sigil() -> None:
    text = "см. #Казахстан"
    (_, tag) = tokenize(text)
    assert (tag.start, tag.end, tag.norm) == (4, 14, "казахстан")


# --- fold_word --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "folded"),
    [
        ("Ёлка", "елка"),
        ("Zürich", "zurich"),
        ("café", "cafe"),
        ("CAFÉ", "cafe"),
        ("Łódź", "lodz"),
        ("İstanbul", "istanbul"),
        ("Straße", "strasse"),
        ("Ελλάδα", "ελλαδα"),
        ("й", "й"),
        ("Їжак", "їжак"),
        ("моло\u0301ко", "молоко"),
        ("ＴＥＳＴ", "test"),
        ("ﬁre", "fire"),
        ("عَلَىٰ", "علي"),
        ("أحمد", "احمد"),
        ("إسلام", "اسلام"),
        ("آمن", "امن"),
        ("كـــتاب", "كتاب"),
        ("کتابی", "كتابي"),  # Persian keheh/yeh → Arabic kaf/yeh
        ("z\u200bw\u200cn\u200dj\ufeffb\u200e", "zwnjb"),
        ("обов’язок", "обов'язок"),
        ("обовʼязок", "обов'язок"),
        ("Kаzakhstan", "kazakhstan"),  # Cyrillic а in a Latin word
        ("Прoтест", "протест"),  # Latin o in a Cyrillic word
        ("KАЗАХСТАН", "казахстан"),  # Latin capital K in a Cyrillic word
        ("ПРОТЕCT", "протест"),  # Latin capitals C T in a Cyrillic word
        ("ПPOTECT", "пpotect"),  # 6 Latin letters against 1 Cyrillic: Latin wins, П has no look-alike
        ("Қазақстан", "қазақстан"),  # pure Kazakh stays intact
        ("Қазaқстан", "қазақстан"),  # Latin a in a Kazakh word
        ("smsка", "smsкa"),  # Latin majority; к has no lower-case look-alike and stays
    ],
)
def test_fold_word(word: str, folded: str) -> None:
    assert fold_word(word) == folded
    assert fold_word(folded) == folded


def test_arabic_alef_maqsura_and_persian_forms_agree() -> None:
    assert fold_word("على") == fold_word("علی") == fold_word("عَلَىٰ") == "علي"
    assert fold_word("كتاب") == fold_word("کتاب")


def test_homoglyph_ties_and_letters_without_look_alikes() -> None:
    assert fold_word("аb") == "ab"  # Cyrillic а + Latin b: a tie goes to Latin
    assert fold_word("bа") == "ba"
    assert fold_word("тest") == "тest"  # lower-case т has no look-alike
    assert fold_word("Тest") == "test"  # capital Т has one


@pytest.mark.parametrize("word", ["сосо", "рух", "хор", "coco", "pox", "ӘӨҮҰ", "Һәм", "Ўзбекистон"])
def test_pure_words_unchanged_by_homoglyph_folding(word: str) -> None:
    assert fold_word(word) == word.casefold()


def test_script_of() -> None:
    assert script_of("протест") == "cyrillic"
    assert script_of("protest") == "latin"
    assert script_of("zurich") == "latin"
    assert script_of("احتجاج") == "arabic"
    assert script_of("ελλαδα") == "greek"
    assert script_of("բողոք") == "armenian"
    assert script_of("हिंदी") == "devanagari"
    assert script_of("நன்றி") == "tamil"
    assert script_of("我") == script_of("한국어") == script_of("タ") == "cjk"
    assert script_of("ภ") == "other"
    assert script_of("123") == "other"
    assert script_of("smsкa") == "other"
    assert script_of("covid19") == "latin"


# --- stems ------------------------------------------------------------------------------------------


def test_stem_langs() -> None:
    assert {"en", "de", "fr", "es", "it", "pt", "nl", "pl", "tr", "sr", "nb", "nn"} <= STEM_LANGS
    assert {"ru", "uk", "ar", "fa", "el", "hy", "hi", "ne", "ta", "yi"} <= STEM_LANGS
    assert "zh" not in STEM_LANGS
    with pytest.raises(ValueError):
        stem("zh", "我")


def matches(post_word: str, query: str, post_lang: str | None) -> bool:
    return bool(set(doc_stem_keys(fold_word(post_word), post_lang)) & query_stem_keys(fold_word(query)))


@pytest.mark.parametrize("word", ["протест", "протестующие", "протестов", "протесты", "Протестом"])
def test_russian_morphology(word: str) -> None:
    assert matches(word, "протест", "ru")
    assert matches(word, "протест", None)
    assert matches(word, "протестам", "uk")


@pytest.mark.parametrize("word", ["protest", "protesters", "protests", "Protesting"])
def test_english_morphology(word: str) -> None:
    assert matches(word, "protest", "en")
    assert matches(word, "protest", None)


@pytest.mark.parametrize(
    ("forms", "lang"),
    [
        (["протест", "протести", "протестів", "протестом"], "uk"),
        (["Україна", "України", "Україні", "Україною", "Україну"], "uk"),
        (["війна", "війни", "війні", "війною"], "uk"),
    ],
)
def test_ukrainian_morphology(forms: list[str], lang: str) -> None:
    stems = {uk_stem(fold_word(f)) for f in forms}
    assert len(stems) == 1
    for form in forms:
        assert matches(form, forms[0], lang)
        assert matches(forms[0], form, None)


def test_ukrainian_stemmer_details() -> None:
    assert uk_stem("україна") == "україн"
    assert uk_stem("м'ясо") == uk_stem("мясо")
    assert uk_stem("") == ""
    assert uk_stem("ткп") == "ткп"  # no vowel: unchanged


def test_german_with_post_lang() -> None:
    assert matches("Proteste", "Protest", "de")
    assert "de:" + stem("de", "proteste") in doc_stem_keys("proteste", "de")
    assert not any(k.startswith("de:") for k in doc_stem_keys("proteste", None))
    assert not any(k.startswith("de:") for k in doc_stem_keys("proteste", "ru"))


def test_arabic() -> None:
    # Snowball Arabic keeps the plural's alef (احتجاجا); the Persian stemmer reduces both to احتجاج.
    assert doc_stem_keys("احتجاجات", None) == ("ar:احتجاجا", "fa:احتجاج")
    assert doc_stem_keys("احتجاج", None) == ("ar:احتجاج", "fa:احتجاج")
    assert matches("احتجاجات", "احتجاج", "ar")


def test_doc_stem_keys_rules() -> None:
    assert doc_stem_keys("протест", None) == ("ru:протест", "uk:протест")
    assert doc_stem_keys("протест", "sr") == ("ru:протест", "uk:протест", "sr:protest")
    assert doc_stem_keys("protest", "sr") == ("en:protest", "sr:protest")
    assert doc_stem_keys("protest", "ru") == ("en:protest",)  # Russian is not a Latin-script stemmer
    assert doc_stem_keys("protest", "pt-BR") == ("en:protest", "pt:protest")
    assert doc_stem_keys("protest", "nb") == ("en:protest", "no:protest")
    assert doc_stem_keys("प्रदर्शनकारियों", None) == ("hi:प्रदर्शनकार",)
    assert [k[:3] for k in doc_stem_keys("प्रदर्शनकारियों", "ne")] == ["hi:", "ne:"]
    assert doc_stem_keys("ελλαδα", None)[0].startswith("el:")
    for word in ("我", "ภ", "covid19", "2024", "smsкa", "на", "по", ""):
        assert doc_stem_keys(word, "ru") == ()
        assert query_stem_keys(word) == frozenset()


def test_min_stem_len() -> None:
    assert MIN_STEM_LEN == 3
    assert all(len(k.split(":", 1)[1]) >= MIN_STEM_LEN for k in query_stem_keys("войнами"))
    assert query_stem_keys("ах") == frozenset()


def test_query_keys_cover_every_language_of_the_script() -> None:
    assert {k.split(":")[0] for k in query_stem_keys("протест")} == {"ru", "uk", "sr"}
    assert {k.split(":")[0] for k in query_stem_keys("احتجاج")} == {"ar", "fa"}
    latin = {k.split(":")[0] for k in query_stem_keys("protest")}
    assert {"en", "de", "fr", "es", "it", "pt", "nl", "pl", "tr", "sr"} <= latin
    assert "ru" not in latin


@pytest.mark.parametrize(("word", "lang"), [("protests", "fr"), ("протестами", "uk"), ("احتجاجات", "fa")])
def test_doc_keys_are_query_languages(word: str, lang: str) -> None:
    """Every doc key's language is one query_stem_keys covers for the same script."""
    query_langs = {k.split(":")[0] for k in query_stem_keys(word)}
    assert {k.split(":")[0] for k in doc_stem_keys(word, lang)} <= query_langs


def test_mark_scan_skips_only_markless_ranges() -> None:
    scanned = [range(lo, hi) for lo, hi in qt._MARK_SCAN]
    for cp in range(0x300, 0x30000, 7):  # a sample outside the scanned ranges is mark-free
        if not any(cp in r for r in scanned):
            assert unicodedata.category(chr(cp))[0] != "M", hex(cp)
    for lo, hi in ((0x3400, 0xA000), (0xAC00, 0xF900)):
        assert not any(unicodedata.category(chr(cp))[0] == "M" for cp in range(lo, hi))


# --- properties -------------------------------------------------------------------------------------

_INTERESTING = st.sampled_from(
    list("aeoupcxyKMTBHIJSQW_#@'’ʼ‘-") + list("аеорсухКМТВНІЈЅӀҮқәёйї") + list("عَلَىٰأإآةیکـ")
    + ["\u200b", "\u200c", "\u200d", "\u00ad", "\ufeff", "\u200e", "\u0301", "\u0308", "\u0306", "\u093c"]
    + list("我タｶﾀ한ภั ़ािकো") + [" ", "\n", "🙂", "İ", "ß", "ǰ", "ΐ", "ﷺ", "ﹰ", "²", "½"]
)  # fmt: skip
_TEXT = st.one_of(st.text(), st.text(alphabet=_INTERESTING))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_fold_word_idempotent(word: str) -> None:
    folded = fold_word(word)
    assert fold_word(folded) == folded


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_tokenize_properties(text: str) -> None:
    tokens = tokenize(text)
    prev_end = 0
    for t in tokens:
        assert 0 <= prev_end <= t.start < t.end <= len(text)
        prev_end = t.end
        surface = text[t.start : t.end]
        if surface[0] in "#@":
            surface = surface[1:]
        assert t.norm
        assert fold_word(surface) == t.norm
        doc_stem_keys(t.norm, "uk")
        query_stem_keys(t.norm)


# --- real data --------------------------------------------------------------------------------------


def test_seed_post_matches_protest(shared_data: Path) -> None:
    path = shared_data / "seed" / "kazakhstan_post.txt"
    if not path.is_file():
        pytest.skip("seed/kazakhstan_post.txt is absent")
    text = path.read_text(encoding="utf-8")
    tokens = tokenize(text)
    query = query_stem_keys("protest")
    assert {key for t in tokens for key in doc_stem_keys(t.norm, "en")} & query
    hits = {text[t.start : t.end] for t in tokens if set(doc_stem_keys(t.norm, "en")) & query}
    assert {"protests", "protesters", "Protesters"} <= hits
    assert all(hit.lower().startswith("protest") for hit in hits)


# --- the fast paths agree with the plain definitions ---------------------------------------------------


def _fold_by_definition(word: str) -> str:
    """fold_word without its shortcuts: _fold_once until stable."""
    if word.isascii():
        return word.lower()
    prev, cur = word, qt._fold_once(word)
    while cur != prev:
        prev, cur = cur, qt._fold_once(cur)
    return cur


_STABLE_SAMPLE = st.sampled_from(sorted(qt._STABLE)[::5])


@settings(max_examples=500, deadline=None)
@given(st.one_of(_TEXT, st.text(st.one_of(_STABLE_SAMPLE, _INTERESTING), max_size=8)))
def test_fold_word_shortcut_agrees_with_the_definition(word: str) -> None:
    assert qt._fold_uncached(word) == _fold_by_definition(word)


def test_characters_left_alone_by_folding() -> None:
    for ch in qt._STABLE:
        for word in (ch, ch + ch, "a" + ch, "я" + ch, ch + "ё", "Ж" + ch):
            assert qt._fold_uncached(word) == _fold_by_definition(word), repr(word)


def test_composition_second_halves_are_marks() -> None:
    """What the folding shortcut relies on: a character that is not a mark never joins the one before."""
    for cp in range(0x110000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            assert unicodedata.category(chr(int(parts[1], 16)))[0] == "M", hex(cp)


def _tokens_by_definition(text: str) -> list[Token]:
    found = []
    for match in qt._TOKEN_RE.finditer(text):
        word = match.group()
        norm = fold_word(word[1:] if word[0] in "#@" else word)
        if norm:
            found.append(Token(norm, match.start(), match.end()))
    return found


@settings(max_examples=500, deadline=None)
@given(_TEXT)
def test_scan_and_locate_agree_with_tokenize(text: str) -> None:
    expected = _tokens_by_definition(text)
    assert tokenize(text) == expected
    assert tokenize(text) == expected  # again, from the word cache
    words, norms = scan(text)
    starts = locate(text, words)
    assert [Token(n, s, s + len(w)) for w, n, s in zip(words, norms, starts, strict=True) if n] == expected
    assert token_norms(text) == [t.norm for t in expected]


def test_bounded_cache_forgets_its_oldest_half() -> None:
    calls: list[int] = []

    def square(n: int) -> int:
        calls.append(n)
        return n * n

    cache: BoundedCache[int, int] = BoundedCache(square, 4)
    assert [cache(n) for n in (1, 2, 3, 4, 1)] == [1, 4, 9, 16, 1]
    assert calls == [1, 2, 3, 4] and len(cache) == 4
    assert cache(5) == 25 and len(cache) == 3  # 1 and 2 forgotten
    assert cache(1) == 1 and calls[-1] == 1  # computed again
    assert cache.get(3) == 9 and cache.get(2) is None
    for n in range(100):
        assert cache(n) == n * n
        assert len(cache) <= 4


def test_word_cache_is_bounded_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    small: BoundedCache[str, str] = BoundedCache(qt._fold_token, 8)
    monkeypatch.setattr(qt, "_NORMS", small)
    text = "Протестующие вышли на площадь #Almaty, @durov_bot ـــ Ёлка Kаzakhstan 東京 " * 3
    expected = _tokens_by_definition(text)
    for _ in range(3):
        assert tokenize(text) == expected
        assert token_norms(text) == [t.norm for t in expected]
        assert len(small) <= 8


def test_doc_stem_keys_cache_per_language() -> None:
    for lang in (None, "ru", "RU", "de-AT", "nb", "xx", "uk", "sr", "ne", "yi", "fa"):
        cache = qt.doc_stem_keys_cache(lang)
        for word in ("протести", "protesters", "häuser", "війни", "123", "नेपाल", "ייִדיש", "احتجاجات"):
            assert cache(word) == doc_stem_keys(word, lang)
    for lang in ("xx", "ru", "uk", "en", "ar", "fa"):  # their stems are every post's already
        assert qt.doc_stem_keys_cache(lang) is qt.doc_stem_keys_cache(None)
    assert qt.doc_stem_keys_cache("de") is not qt.doc_stem_keys_cache(None)
    assert qt.doc_stem_keys_cache("sr") is not qt.doc_stem_keys_cache(None)
