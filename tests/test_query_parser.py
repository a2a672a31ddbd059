"""The query parser (core/query/parser.py): exact trees in several languages, precedence, every error
with its position and wording, and properties (never crashes, describe() round-trips, AND commutes)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.query import parser
from core.query.ast import (
    And,
    ChannelFilter,
    LangFilter,
    Node,
    Not,
    Or,
    Phrase,
    QuerySyntaxError,
    Regex,
    Term,
)
from core.query.parser import (
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    MAX_REGEX_CHARS,
    MAX_TERMS,
    describe,
    looks_for_something,
    parse,
    strip_positions,
)

JARGON = ("token", "eof", "exception", "parse", "syntax", "python", "traceback", "unexpected")
CATCH_ALL = "This query could not be understood."


def T(word: str, start: int, end: int, *, exact: bool = False, prefix: bool = False) -> Term:
    return Term(word, exact, prefix, start, end)


def P(words: str, start: int, end: int, *, exact: bool = False) -> Phrase:
    return Phrase(tuple(words.split()), exact, start, end)


def bare(query: str) -> Node:
    return strip_positions(parse(query))


def t(word: str, *, exact: bool = False, prefix: bool = False) -> Term:
    return Term(word, exact, prefix)


# --- exact trees ----------------------------------------------------------------------------------------

TREES: list[tuple[str, Node]] = [
    # English
    ("protest", T("protest", 0, 7)),
    ("protest Almaty", And((T("protest", 0, 7), T("Almaty", 8, 14)))),
    ("protest AND Almaty", And((T("protest", 0, 7), T("Almaty", 12, 18)))),
    ('"state of emergency"', P("state of emergency", 0, 20)),
    ('="state of emergency"', P("state of emergency", 0, 21, exact=True)),
    ('!"state of emergency"', P("state of emergency", 0, 21, exact=True)),
    ("protest*", T("protest", 0, 8, prefix=True)),
    ('="protest"', T("protest", 0, 10, exact=True)),
    ("!protest", T("protest", 0, 8, exact=True)),
    ("=protest", T("protest", 0, 8, exact=True)),
    ('"protest"', T("protest", 0, 9)),
    ("#protest @tengrinews", And((T("protest", 1, 8), T("tengrinews", 10, 20)))),
    ("Almaty, (Astana)", And((T("Almaty", 0, 6), T("Astana", 9, 15)))),
    ("Almaty - Astana", And((T("Almaty", 0, 6), T("Astana", 9, 15)))),
    ("or and not", And((T("or", 0, 2), T("and", 3, 6), T("not", 7, 10)))),
    ("COVID-19", T("COVID-19", 0, 8)),
    ("protest -riot", And((T("protest", 0, 7), Not(T("riot", 9, 13))))),
    ("protest NOT riot", And((T("protest", 0, 7), Not(T("riot", 12, 16))))),
    ('protest -"riot police"', And((T("protest", 0, 7), Not(P("riot police", 9, 22))))),
    (r"/\bprotest\w*/", Regex(r"\bprotest\w*", True, 0, 14)),
    ("/Tokayev/c", Regex("Tokayev", False, 0, 10)),
    ("/Tokayev/i", Regex("Tokayev", True, 0, 10)),
    (r"/a\/b/", Regex("a/b", True, 0, 6)),
    ("protest lang:EN", And((T("protest", 0, 7), LangFilter("en")))),
    ("protest channel:@TengriNews", And((T("protest", 0, 7), ChannelFilter("tengrinews")))),
    ("protest channel:tengrinews", And((T("protest", 0, 7), ChannelFilter("tengrinews")))),
    ("protest channel:https://t.me/tengrinews", And((T("protest", 0, 7), ChannelFilter("tengrinews")))),
    ("protest channel:-1001234567890", And((T("protest", 0, 7), ChannelFilter("1234567890")))),
    ("protest channel:1234567890", And((T("protest", 0, 7), ChannelFilter("1234567890")))),
    ("protest -lang:en", And((T("protest", 0, 7), Not(LangFilter("en"))))),
    ("protest, lang:ru.", And((T("protest", 0, 7), LangFilter("ru")))),
    # Russian
    ("протест Алматы", And((T("протест", 0, 7), T("Алматы", 8, 14)))),
    (
        '"чрезвычайное положение" OR "режим ЧП"',
        Or((P("чрезвычайное положение", 0, 24), P("режим ЧП", 28, 38))),
    ),
    ("Казахстан -Токаев", And((T("Казахстан", 0, 9), Not(T("Токаев", 11, 17))))),
    ("протест*", T("протест", 0, 8, prefix=True)),
    ('="протест"', T("протест", 0, 10, exact=True)),
    ("lang:ru протест", And((LangFilter("ru"), T("протест", 8, 15)))),
    ("channel:@tengrinews протест", And((ChannelFilter("tengrinews"), T("протест", 20, 27)))),
    (r"/\bКЗ-\d+/", Regex(r"\bКЗ-\d+", True, 0, 10)),
    ("«Мир 24» студия", And((P("Мир 24", 0, 8), T("студия", 9, 15)))),
    ("„Мир 24“ студия", And((P("Мир 24", 0, 8), T("студия", 9, 15)))),
    ("“Мир 24” студия", And((P("Мир 24", 0, 8), T("студия", 9, 15)))),
    ("протест ИЛИ митинг", And((T("протест", 0, 7), T("ИЛИ", 8, 11), T("митинг", 12, 18)))),
    # Ukrainian
    ("протести Київ", And((T("протести", 0, 8), T("Київ", 9, 13)))),
    ("м'ясо", T("м'ясо", 0, 5)),
    ("війна -Росія", And((T("війна", 0, 5), Not(T("Росія", 7, 12))))),
    ('"воєнний стан" lang:uk', And((P("воєнний стан", 0, 14), LangFilter("uk")))),
    # Kazakh
    ("Қазақстан наразылық", And((T("Қазақстан", 0, 9), T("наразылық", 10, 19)))),
    ("наразылық*", T("наразылық", 0, 10, prefix=True)),
    ('"төтенше жағдай" OR ереуіл', Or((P("төтенше жағдай", 0, 16), T("ереуіл", 20, 26)))),
    ("Қазақстан -Тоқаев lang:kk", And((T("Қазақстан", 0, 9), Not(T("Тоқаев", 11, 17)), LangFilter("kk")))),
    (
        "үкімет ұлттық ғимарат әкім һ",
        And((T("үкімет", 0, 6), T("ұлттық", 7, 13), T("ғимарат", 14, 21), T("әкім", 22, 26), T("һ", 27, 28))),
    ),
    # Arabic (with and without harakat: the marks stay in the word, folding is the matcher's job)
    ("احتجاج", T("احتجاج", 0, 6)),
    ("احتجاج كازاخستان", And((T("احتجاج", 0, 6), T("كازاخستان", 7, 16)))),
    ("احْتِجَاج -الشرطة", And((T("احْتِجَاج", 0, 9), Not(T("الشرطة", 11, 17))))),
    # Chinese: no spaces between words; a run of characters is one term
    ("抗议", T("抗议", 0, 2)),
    ("哈萨克斯坦 抗议", And((T("哈萨克斯坦", 0, 5), T("抗议", 6, 8)))),
    ("“紧急状态” OR 抗议", Or((T("紧急状态", 0, 6), T("抗议", 10, 12)))),
    (
        "抗议（阿拉木图 OR 努尔苏丹）",
        And((T("抗议", 0, 2), Or((T("阿拉木图", 3, 7), T("努尔苏丹", 11, 15))))),
    ),
]


@pytest.mark.parametrize(("query", "expected"), TREES, ids=[q for q, _ in TREES])
def test_exact_tree(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize("query", [q for q, _ in TREES])
def test_describe_round_trips(query: str) -> None:
    tree = parse(query)
    assert strip_positions(parse(describe(tree))) == strip_positions(tree)


def test_describe_canonical_text() -> None:
    assert describe(parse('(a OR b) -c "x y" lang:ru')) == '(a OR b) -c "x y" lang:ru'
    assert describe(parse('="протест" протест* #тег channel:@TengriNews')) == (
        "!протест протест* тег channel:tengrinews"
    )
    assert describe(parse("a AND (b OR c) NOT (d e)")) == "a (b OR c) -(d e)"
    assert describe(parse(r"/a\/b/c")) == r"/a\/b/c"
    assert describe(parse('"OR" "lang:ru" ="a(b"')) == '"OR" "lang:ru" ="a(b"'
    assert describe(parse('«12"3 x»')) == '«12"3 x»'


def test_strip_positions() -> None:
    assert strip_positions(parse("x -(a OR /b/)")) == And((t("x"), Not(Or((t("a"), Regex("b"))))))


def test_lang_codes() -> None:
    assert bare("x lang:RU") == And((t("x"), LangFilter("ru")))
    assert bare("x lang:und") == And((t("x"), LangFilter("und")))
    assert bare("x lang:yue") == And((t("x"), LangFilter("yue")))


# --- precedence and normal form -------------------------------------------------------------------------

PRECEDENCE: list[tuple[str, Node]] = [
    ("a b OR c d", Or((And((t("a"), t("b"))), And((t("c"), t("d")))))),
    ("a OR b c", Or((t("a"), And((t("b"), t("c")))))),
    ("a AND b OR c", Or((And((t("a"), t("b"))), t("c")))),
    ("a OR b AND c", Or((t("a"), And((t("b"), t("c")))))),
    ("-a b OR c", Or((And((Not(t("a")), t("b"))), t("c")))),
    ("NOT a b", And((Not(t("a")), t("b")))),
    ("a (b OR c)", And((t("a"), Or((t("b"), t("c")))))),
    ("-(a OR b) c", And((Not(Or((t("a"), t("b")))), t("c")))),
    ("NOT (a b) c", And((Not(And((t("a"), t("b")))), t("c")))),
    ("a OR (b OR c)", Or((t("a"), t("b"), t("c")))),
    ("(a OR b) OR c", Or((t("a"), t("b"), t("c")))),
    ("(a b) c", And((t("a"), t("b"), t("c")))),
    ("a (b (c d))", And((t("a"), t("b"), t("c"), t("d")))),
    ("((a))", t("a")),
    ("NOT NOT a", t("a")),
    ("NOT -a", t("a")),
    ("--a b", And((Not(t("a")), t("b")))),
    ("a -b OR c -d", Or((And((t("a"), Not(t("b")))), And((t("c"), Not(t("d"))))))),
    ("(a OR b) (c OR d)", And((Or((t("a"), t("b"))), Or((t("c"), t("d")))))),
    ("a -OR", And((t("a"), Not(t("OR"))))),
    # an OR side without a word is fine when the rest of the AND looks for something
    ("протест (lang:ru OR lang:kk)", And((t("протест"), Or((LangFilter("ru"), LangFilter("kk")))))),
    ("x (a OR -b)", And((t("x"), Or((t("a"), Not(t("b"))))))),
]


@pytest.mark.parametrize(("query", "expected"), PRECEDENCE, ids=[q for q, _ in PRECEDENCE])
def test_precedence(query: str, expected: Node) -> None:
    assert bare(query) == expected


# --- errors ---------------------------------------------------------------------------------------------

DEEP_OK = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
TOO_DEEP = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
MANY = " ".join(f"w{i}" for i in range(MAX_TERMS + 1))

ERRORS: list[tuple[str, int, str]] = [
    ("", 0, "The query is empty."),
    ("   ", 0, "The query is empty."),
    ("-spam", 0, "A query needs at least one word to look for; '-spam' only excludes."),
    ("NOT a", 0, "A query needs at least one word to look for; 'NOT a' only excludes."),
    ("-a -b", 0, "'-a -b' only excludes."),
    ("lang:ru", 0, "A query needs at least one word to look for; 'lang:ru' only limits the language"),
    ("channel:@tengrinews -реклама", 0, "only excludes and limits the language or channel."),
    ("a OR -b", 5, "Each side of 'OR' needs at least one word to look for; '-b' only excludes."),
    ("lang:ru OR протест", 0, "Each side of 'OR' needs at least one word to look for; 'lang:ru'"),
    ("lang:ru (a OR -b)", 14, "Each side of 'OR' needs at least one word to look for; '-b' only excludes."),
    ("(a OR -b) (c OR -d)", 6, "Each side of 'OR' needs at least one word to look for; '-b' only excludes."),
    ("a OR (lang:ru -x)", 5, "; '(lang:ru -x)' only excludes and limits the language or channel."),
    ("a OR (-x)", 5, "Each side of 'OR' needs at least one word to look for; '(-x)' only excludes."),
    ("-(a OR b)", 0, "'-(a OR b)' only excludes."),
    ("(ab", 0, "This '(' is never closed."),
    ("a (b (c) d", 2, "This '(' is never closed."),
    ("ab)", 2, "This ')' has no matching '('."),
    ("a) (b", 1, "This ')' has no matching '('."),
    ('"abc', 0, 'This quote is never closed: add a " after the phrase.'),
    ('a "b c', 2, 'This quote is never closed: add a " after the phrase.'),
    ("«абв", 0, "This quote is never closed: add a » after the phrase."),
    ('""', 0, "These quotes have no words inside."),
    ('x " , "', 2, "These quotes have no words inside."),
    ("OR a", 0, "'OR' needs a word on both sides."),
    ("a OR", 2, "'OR' needs a word on both sides."),
    ("a OR OR b", 5, "'OR' needs a word on both sides."),
    ("(OR a)", 1, "'OR' needs a word on both sides."),
    ("(a OR) b", 3, "'OR' needs a word on both sides."),
    ("AND a", 0, "'AND' needs a word on both sides."),
    ("a AND", 2, "'AND' needs a word on both sides."),
    ("a AND OR b", 2, "'AND' needs a word on both sides."),
    ("NOT", 0, "'NOT' needs a word right after it."),
    ("a NOT", 2, "'NOT' needs a word right after it."),
    ("a NOT OR b", 2, "'NOT' needs a word right after it."),
    ("*", 0, "A '*' needs at least 2 letters before it, like протест*."),
    ("a*", 1, "A '*' needs at least 2 letters before it"),
    ("x п*", 3, "A '*' needs at least 2 letters before it"),
    ("*protest", 0, "A '*' can only end a word, like протест*."),
    ("pro*test", 3, "A '*' can only end a word"),
    ('"протест*"', 8, "A '*' does not work inside quotes"),
    ("()", 0, "These brackets have nothing inside."),
    ("a ( , )", 2, "These brackets have nothing inside."),
    ("/(ab/", 0, "The regular expression /(ab/ is not valid: missing ), unterminated subpattern."),
    ("x /[a/", 2, "The regular expression /[a/ is not valid: unterminated character set."),
    ("x /a**/", 2, "The regular expression /a**/ is not valid: multiple repeat."),
    ("/((a{100}){100}){100}/", 0, "is not valid: it repeats too much, use smaller numbers in {…}."),
    ("/ab", 0, "This regular expression is never closed: add a / after it"),
    (r"/ab\/", 0, "This regular expression is never closed"),
    ("x //", 2, "This regular expression is empty"),
    ("/a/x", 3, "After a regular expression only i (any case, the default) or c (match case)"),
    ("/" + "a" * (MAX_REGEX_CHARS + 1) + "/", 0, f"at most {MAX_REGEX_CHARS} characters"),
    ("lang:xx протест", 0, "lang: needs a language code like ru, en, uk."),
    ("протест lang:russian", 8, "lang: needs a language code like ru, en, uk."),
    ("протест lang:rus", 8, "lang: needs a language code like ru, en, uk."),
    ("протест lang: ru", 8, "lang: needs a language code like ru, en, uk."),
    ("x channel:-5", 2, "channel: needs a channel name like @tengrinews or a number like -1001234567890."),
    ("x channel:", 2, "channel: needs a channel name"),
    ("x channel:@a", 2, "channel: needs a channel name"),
    ("!!! ,,, —", 0, "The query has no words to look for, only punctuation."),
    ("  ...", 2, "The query has no words to look for, only punctuation."),
    (
        "a" * (MAX_QUERY_CHARS + 1),
        MAX_QUERY_CHARS,
        f"at most {MAX_QUERY_CHARS} characters (this one has 501)",
    ),
    (MANY, MANY.index(f"w{MAX_TERMS}"), f"too many words: at most {MAX_TERMS} words, phrases"),
    (TOO_DEEP, MAX_DEPTH, f"Too many brackets inside one another: at most {MAX_DEPTH} levels."),
]


@pytest.mark.parametrize(("query", "position", "message"), ERRORS, ids=[q[:40] for q, _, _ in ERRORS])
def test_error(query: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    error = caught.value
    assert message in error.message
    assert error.position == position
    assert error.query == query
    assert str(error) == error.message
    assert not any(word in error.message.lower() for word in JARGON), error.message


def test_error_pointer() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse("протест OR")
    assert caught.value.pointer() == "протест OR\n        ^"


def test_limits_are_inclusive() -> None:
    assert bare(DEEP_OK) == t("a")
    assert len(parse(" ".join(f"w{i}" for i in range(MAX_TERMS))).items) == MAX_TERMS  # type: ignore[union-attr]
    assert parse("a" * MAX_QUERY_CHARS) == T("a" * MAX_QUERY_CHARS, 0, MAX_QUERY_CHARS)
    assert parse("/" + "a" * MAX_REGEX_CHARS + "/") == Regex(
        "a" * MAX_REGEX_CHARS, True, 0, MAX_REGEX_CHARS + 2
    )


def test_punctuation_only_words_are_ignored() -> None:
    assert bare("протест , — ! Алматы") == And((t("протест"), t("Алматы")))
    assert bare("-, протест") == t("протест")


# --- properties -----------------------------------------------------------------------------------------

SYNTAX = [*'ab яЖ қ中 -"()/*=!#@:\\.,«»“”„＂（）{}[]|?+', "OR", "AND", "NOT", "lang:", "channel:", "ru"]
ANY_TEXT = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(SYNTAX), max_size=30).map("".join))


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_parse_raises_only_query_errors_within_the_query(query: str) -> None:
    try:
        tree = parse(query)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(query)
        assert error.message != CATCH_ALL  # the guard against internal errors never fires
        assert not any(word in error.message.lower() for word in JARGON), error.message
    else:
        assert looks_for_something(tree)


FIXED_WORDS = [
    "protest", "Almaty", "or", "протест", "Алматы", "протести", "Київ", "м'ясо", "Қазақстан",
    "наразылық", "احتجاج", "抗议", "哈萨克斯坦", "COVID-19", "ё", "2022",
]  # fmt: skip
WORD = st.one_of(
    st.sampled_from(FIXED_WORDS),
    st.text(st.characters(categories=("Lu", "Ll", "Lo", "Nd")), min_size=1, max_size=8).filter(
        lambda w: w not in ("OR", "AND", "NOT")
    ),
)
LONG_WORD = WORD.filter(lambda w: len(w) >= 2)
REGEXES = st.sampled_from([r"/\bКЗ-\d+/", "/prot(e|é)st/c", r"/a\/b/", r"/\d{4}/i"])
FILTERS = st.sampled_from(["lang:ru", "lang:kk", "channel:@tengrinews", "channel:-1001234", "channel:42"])
POSITIVE_ATOM = st.one_of(
    WORD,
    LONG_WORD.map(lambda w: w + "*"),
    WORD.map(lambda w: "!" + w),
    WORD.map(lambda w: f'="{w}"'),
    WORD.map(lambda w: "#" + w),
    st.lists(WORD, min_size=2, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"'),
    st.lists(WORD, min_size=2, max_size=3).map(lambda ws: '="' + " ".join(ws) + '"'),
    REGEXES,
)


def query_text(depth: int) -> st.SearchStrategy[str]:
    """Valid query text: OR of AND-groups, each with at least one thing to look for."""
    positive = (
        POSITIVE_ATOM if depth == 0 else st.one_of(POSITIVE_ATOM, query_text(depth - 1).map("({})".format))
    )
    negative = st.one_of(
        positive.map(lambda a: "-" + a),
        positive.map(lambda a: "NOT " + a),
        FILTERS.map(lambda f: "-" + f),
    )
    extra = st.one_of(positive, negative, FILTERS)
    group = (
        st.tuples(positive, st.lists(extra, max_size=2))
        .flatmap(lambda pair: st.permutations([pair[0], *pair[1]]))
        .flatmap(lambda items: st.sampled_from([" ", " AND "]).map(lambda sep: sep.join(items)))
    )
    return st.lists(group, min_size=1, max_size=3).map(" OR ".join)


@settings(max_examples=300, deadline=None)
@given(query_text(1))
def test_generated_queries_round_trip(query: str) -> None:
    assume(len(query) <= MAX_QUERY_CHARS)
    tree = parse(query)
    text = describe(tree)
    assert strip_positions(parse(text)) == strip_positions(tree)
    assert describe(parse(text)) == text


UNARY = st.one_of(
    POSITIVE_ATOM,
    POSITIVE_ATOM.map(lambda a: "-" + a),
    FILTERS,
    query_text(0).map("({})".format),
)


@settings(max_examples=300, deadline=None)
@given(UNARY, UNARY)
def test_and_commutes(a: str, b: str) -> None:
    try:
        ab = parse(f"{a} {b}")
    except QuerySyntaxError:
        with pytest.raises(QuerySyntaxError):
            parse(f"{b} {a}")
        return
    ba = parse(f"{b} {a}")
    assert isinstance(ab, And)
    assert isinstance(ba, And)
    assert Counter(strip_positions(i) for i in ab.items) == Counter(strip_positions(i) for i in ba.items)


# the shortcut for queries of plain words (core.query.parser._parse_plain_words) builds the full parser's tree
PLAIN = st.lists(
    st.one_of(WORD, st.sampled_from(["OR", "AND", "NOT", "²", "x²", "ǅ", "Ⅻ", "ﬁ", "a\u0301"])),
    min_size=1,
    max_size=MAX_TERMS + 2,
)
SPACES = st.text(" \t\n\u3000\u00a0", min_size=1, max_size=2)


@settings(max_examples=500, deadline=None)
@given(PLAIN, st.data())
def test_plain_words_shortcut_builds_the_full_parsers_tree(words: list[str], data: st.DataObject) -> None:
    query = "".join(w + data.draw(SPACES) for w in words)
    assume(len(query) <= MAX_QUERY_CHARS)
    shortcut = parser._parse_plain_words(query)
    try:
        full = parser._parse_tokens(query)
    except QuerySyntaxError:
        assert shortcut is None
        return
    assert shortcut is None or shortcut == full
    if all(w.isalnum() and w not in ("OR", "AND", "NOT") for w in words) and len(words) <= MAX_TERMS:
        assert shortcut == full  # the shortcut is taken for every plain query
