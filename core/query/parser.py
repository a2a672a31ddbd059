"""Turn a subscriber's query text into the syntax tree of `core.query.ast`, and a tree back into text.

`parse(text)` either returns a normalised tree or raises `QuerySyntaxError` with a message written for
someone who has never seen a programming language, and the 0-based position it is about. No other
exception escapes it, whatever the input. docs/query.md is the user-facing reference.

Syntax, loosest binding first:
    a OR b          either side (upper-case OR only; "or" is a word)
    a b, a AND b    both (upper-case AND only, and optional)
    -a, NOT a       not (binds tightest); -"a b", -(a OR b), -lang:ru, -/re/ work too
    ( … )           grouping, at most MAX_DEPTH levels

Atoms:
    word            Term; punctuation at its edges is dropped (`Almaty,` → Almaty, `#tag` → tag)
    word*           Term(prefix=True), at least MIN_PREFIX_CHARS characters before the `*`
    !word, =word    Term(exact=True)
    "a b"           Phrase(("a", "b")); with one word inside it is just Term("a")
    ="a b", !"a b"  Phrase(exact=True); `="a"` → Term("a", exact=True)
    /re/, /re/i     Regex(ignore_case=True); /re/c → ignore_case=False; `\\/` is a slash inside
    lang:ru         LangFilter("ru"): an ISO 639-1 code, a lid.176 three-letter code, or "und"
    channel:@name   ChannelFilter("name"); also channel:name, channel:t.me/name, channel:-100123 → "123"

Typographic quotes (“…”, „…“, «…», ＂…＂) and full-width brackets （…） work like their ASCII forms.

Normal form of the tree: nested And/Or of the same kind are flattened, a one-item And/Or is its item,
NOT NOT x is x. Every OR branch, and the query as a whole, must contain something to look for (a term,
phrase or regex outside any NOT); filters and exclusions only narrow.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Final, Literal

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

__all__ = [
    "LANG_CODES",
    "MAX_DEPTH",
    "MAX_QUERY_CHARS",
    "MAX_REGEX_CHARS",
    "MAX_REGEX_REPEAT",
    "MAX_TERMS",
    "MIN_PREFIX_CHARS",
    "OPERATORS",
    "QuerySyntaxError",
    "describe",
    "looks_for_something",
    "parse",
    "strip_positions",
]

MAX_QUERY_CHARS: Final = 500
MAX_TERMS: Final = 50  # words, phrases, regexes and filters together
MAX_DEPTH: Final = 10  # brackets inside brackets
MAX_REGEX_CHARS: Final = 200
MIN_PREFIX_CHARS: Final = 2
# The `regex` engine (the matcher's) unrolls the minimum count of every counted repeat at compile time:
# (?:a{100}){100}{100}{100} takes gigabytes. A pattern's size with its repeats unrolled is capped here
# (about 3 MB of compiled pattern at the cap).
MAX_REGEX_REPEAT: Final = 10_000

OPERATORS: Final = frozenset({"OR", "AND", "NOT"})

# ISO 639-1 (with the retired bh and sh, which lid.176 still outputs), lid.176's three-letter labels for
# languages without a two-letter code, and "und" (too little text to tell).
_LANG_CODES_TEXT = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da "
    "de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz "
    "ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln "
    "lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi "
    "pl ps pt qu rm rn ro ru rw sa sc sd se sg sh si sk sl sm sn so sq sr ss st su sv sw ta te tg th "
    "ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu "
    "als arz ast azb bar bcl bpy bxr cbk ceb ckb diq dsb dty eml frr gom hif hsb ilo jbo krc lez lmo "
    "lrc mai mhr min mrj mwl myv mzn nah nap nds new pam pfl pms pnb rue sah scn sco tyv vec vep vls "
    "war wuu xal xmf yue und"
)
LANG_CODES: Final = frozenset(_LANG_CODES_TEXT.split())

# opening quote → the characters that close it
_QUOTES: Final = {
    '"': '"“”＂',
    "“": '"“”＂',
    "„": '"“”＂',
    "＂": '"“”＂',
    "«": "»",
}
_OPEN: Final = "(（"
_CLOSE: Final = ")）"
_EXACT_MARKS: Final = "=!"
_FILTER = re.compile(r"(lang|channel):", re.IGNORECASE | re.ASCII)
_LANG_CODE = re.compile(r"[A-Za-z]{2,3}", re.ASCII)
_CHANNEL_NAME = re.compile(
    r"(?:(?:https?://)?(?:www\.)?(?:t|telegram)\.me/|@)?([A-Za-z][A-Za-z0-9_]{2,31})(?:/[0-9]+)?",
    re.IGNORECASE | re.ASCII,
)
_CHANNEL_ID = re.compile(r"(?:-100)?([0-9]{1,20})", re.ASCII)
_QUOTE_CHARS: Final = '"“”＂'

_EXCLUDES_ONLY = "only excludes"
_FILTERS_ONLY = "only limits the language or channel"
_BOTH_ONLY = "only excludes and limits the language or channel"

try:
    _REGEX_ENGINE: ModuleType | None = importlib.import_module("regex")
except ImportError:  # pragma: no cover - the matcher's engine; validation falls back to `re` alone
    _REGEX_ENGINE = None


# --- tokens -------------------------------------------------------------------------------------------

_Kind = Literal["atom", "(", ")", "OR", "AND", "NOT", "-"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    start: int
    end: int
    node: Node | None = None


@dataclass(frozen=True, slots=True)
class _Blame:
    """The part of the query to point at when a (sub)tree does not look for anything."""

    node: Node
    start: int
    end: int
    or_side: bool  # a side of an OR, rather than the query as a whole


@dataclass(frozen=True, slots=True)
class _Parsed:
    node: Node
    start: int
    end: int
    blame: _Blame | None  # None: every post it matches contains something looked for


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch)[0] == "M"


def _rstrip_value(value: str) -> str:
    """A filter value without punctuation after it (`lang:ru,` → ru)."""
    end = len(value)
    while end and not (value[end - 1].isalnum() or value[end - 1] == "_"):
        end -= 1
    return value[:end]


class _Lexer:
    def __init__(self, query: str) -> None:
        self.q = query
        self.tokens: list[_Token] = []
        self.atoms = 0
        self.minus: int | None = None  # position of a '-' waiting for what it negates

    def fail(self, message: str, position: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, position, self.q)

    def run(self) -> list[_Token]:
        q, n = self.q, len(self.q)
        i = 0
        while i < n:
            c = q[i]
            if c.isspace():
                i += 1
            elif c in _OPEN:
                self.emit(_Token("(", i, i + 1))
                i += 1
            elif c in _CLOSE:
                self.emit(_Token(")", i, i + 1))
                i += 1
            elif c == "-" and self.minus is None:
                j = i
                while j < n and q[j] == "-":
                    j += 1
                if j < n and not q[j].isspace() and q[j] not in _CLOSE:
                    self.minus = i  # a run of dashes glued to what follows is one minus
                i = j  # otherwise a dash standing alone is punctuation
            elif c in _QUOTES:
                i = self.phrase(i, i)
            elif c in _EXACT_MARKS and i + 1 < n and q[i + 1] in _QUOTES:
                i = self.phrase(i + 1, i)
            elif c == "/":
                i = self.regex(i)
            else:
                j = i
                while j < n and not (q[j].isspace() or q[j] in _OPEN or q[j] in _CLOSE or q[j] in _QUOTES):
                    j += 1
                self.emit(self.bare(i, j))
                i = j
        return self.tokens

    def emit(self, token: _Token | None) -> None:
        if self.minus is not None:
            if token is not None:  # never ")" or a space: a minus is only pending before something else
                self.tokens.append(_Token("-", self.minus, self.minus + 1))
            self.minus = None
        if token is None:
            return
        if token.kind == "atom":
            self.atoms += 1
            if self.atoms > MAX_TERMS:
                raise self.fail(
                    f"The query has too many words: at most {MAX_TERMS} words, phrases, regular expressions "
                    "and filters.",
                    token.start,
                )
        self.tokens.append(token)

    # a run of characters up to a space, bracket or quote
    def bare(self, start: int, end: int) -> _Token | None:
        raw = self.q[start:end]
        if raw in OPERATORS and self.minus is None:
            kind: _Kind = "OR" if raw == "OR" else "AND" if raw == "AND" else "NOT"
            return _Token(kind, start, end)
        exact = raw[0] in _EXACT_MARKS
        offset = start + 1 if exact else start
        body = raw[1:] if exact else raw
        word_at = [k for k, ch in enumerate(body) if _is_word_char(ch)]
        if not word_at:
            star = body.find("*")
            if star >= 0:
                raise self.fail(self._short_prefix_message(), offset + star)
            return None  # only punctuation: ignored
        a, b = word_at[0], word_at[-1]
        if not exact:
            match = _FILTER.match(body, a)
            if match:
                return self.filter(
                    match.group(1).lower(), body[match.end() :], offset + a, offset + len(body)
                )
        lead, core, trail = body[:a], body[a : b + 1], body[b + 1 :]
        star = (lead + core).find("*")
        if star >= 0:
            raise self.fail("A '*' can only end a word, like протест*.", offset + star)
        prefix = "*" in trail
        if prefix and len(core) < MIN_PREFIX_CHARS:
            raise self.fail(self._short_prefix_message(), offset + b + 1 + trail.index("*"))
        term_start = start if exact else offset + a
        term_end = offset + b + 2 + trail.rindex("*") if prefix else offset + b + 1
        return _Token("atom", term_start, term_end, Term(core, exact, prefix, term_start, term_end))

    @staticmethod
    def _short_prefix_message() -> str:
        return f"A '*' needs at least {MIN_PREFIX_CHARS} letters before it, like протест*."

    def filter(self, key: str, value: str, start: int, end: int) -> _Token:
        value = _rstrip_value(value)
        if key == "lang":
            if _LANG_CODE.fullmatch(value) and value.lower() in LANG_CODES:
                return _Token("atom", start, end, LangFilter(value.lower()))
            raise self.fail("lang: needs a language code like ru, en, uk.", start)
        name = _CHANNEL_NAME.fullmatch(value)
        if name:
            return _Token("atom", start, end, ChannelFilter(name.group(1).lower()))
        number = _CHANNEL_ID.fullmatch(value)
        if number and int(number.group(1)) > 0:
            return _Token("atom", start, end, ChannelFilter(str(int(number.group(1)))))
        raise self.fail(
            "channel: needs a channel name like @tengrinews or a number like -1001234567890.", start
        )

    def phrase(self, quote: int, start: int) -> int:
        """A quoted phrase opening at `quote` (`start` is its `=`/`!` mark if any); returns where it ends."""
        q = self.q
        opener = q[quote]
        closers = _QUOTES[opener]
        close = next((k for k in range(quote + 1, len(q)) if q[k] in closers), -1)
        if close < 0:
            raise self.fail(f"This quote is never closed: add a {closers[0]} after the phrase.", quote)
        star = q.find("*", quote + 1, close)
        if star >= 0:
            raise self.fail(
                "A '*' does not work inside quotes: write the word without quotes, like протест*.", star
            )
        words = []
        for piece in q[quote + 1 : close].split():
            word_at = [k for k, ch in enumerate(piece) if _is_word_char(ch)]
            if word_at:
                words.append(piece[word_at[0] : word_at[-1] + 1])
        if not words:
            raise self.fail("These quotes have no words inside.", quote)
        exact = start != quote
        node: Node
        if len(words) == 1:
            node = Term(words[0], exact, False, start, close + 1)
        else:
            node = Phrase(tuple(words), exact, start, close + 1)
        self.emit(_Token("atom", start, close + 1, node))
        return close + 1

    def regex(self, start: int) -> int:
        q, n = self.q, len(self.q)
        chars: list[str] = []
        i = start + 1
        while i < n and q[i] != "/":
            if q[i] == "\\" and i + 1 < n:
                chars.append("/" if q[i + 1] == "/" else q[i : i + 2])
                i += 2
            else:
                chars.append(q[i])
                i += 1
        if i >= n:
            raise self.fail(
                "This regular expression is never closed: add a / after it "
                "(a slash inside it is written \\/).",
                start,
            )
        close = i
        flags_end = close + 1
        while flags_end < n and q[flags_end].isalnum():
            flags_end += 1
        flags = q[close + 1 : flags_end]
        if flags not in ("", "i", "c"):
            raise self.fail(
                "After a regular expression only i (any case, the default) or c (match case) can follow, "
                "like /Путин/c. A slash inside it is written \\/.",
                close + 1,
            )
        pattern = "".join(chars)
        shown = q[start : close + 1]
        if not pattern:
            raise self.fail("This regular expression is empty: put a pattern between the slashes.", start)
        if len(pattern) > MAX_REGEX_CHARS:
            raise self.fail(
                f"The regular expression is too long: at most {MAX_REGEX_CHARS} characters.", start
            )
        ignore_case = flags != "c"
        problem = _regex_problem(pattern, ignore_case)
        if problem:
            raise self.fail(f"The regular expression {shown} is not valid: {problem}.", start)
        self.emit(_Token("atom", start, flags_end, Regex(pattern, ignore_case, start, flags_end)))
        return flags_end


# --- regex validation ---------------------------------------------------------------------------------


def _regex_problem(pattern: str, ignore_case: bool) -> str | None:
    """Why the pattern cannot be used, in words, or None when it compiles in `re` (and `regex`)."""
    with warnings.catch_warnings():  # "possible nested set" and the like: nobody would see them
        warnings.simplefilter("ignore")
        return _compile_problem(pattern, ignore_case)


def _compile_problem(pattern: str, ignore_case: bool) -> str | None:
    flags = re.IGNORECASE if ignore_case else 0
    try:
        re.compile(pattern, flags)
    except re.error as exc:
        return exc.msg
    except OverflowError:
        return "a number in it is too large"
    except Exception:  # RecursionError, MemoryError on pathological nesting
        return "it is too complicated"
    if _unrolled_size(pattern, flags) > MAX_REGEX_REPEAT:
        return "it repeats too much, use smaller numbers in {…}"
    if _REGEX_ENGINE is not None:
        engine = _REGEX_ENGINE
        try:
            engine.compile(pattern, engine.UNICODE | engine.V0 | (engine.IGNORECASE if ignore_case else 0))
        except Exception as exc:  # regex.error, or anything the engine trips on
            message = getattr(exc, "msg", None)
            return message if isinstance(message, str) and message else "this pattern is not supported"
    return None


def _unrolled_size(pattern: str, flags: int) -> int:
    """The pattern's size with every counted repeat written out its minimum number of times."""
    try:
        sre: Any = importlib.import_module("re._parser")
        return _sre_size(sre.parse(pattern, flags), sre.SubPattern)
    except Exception:  # no re._parser on this Python: a rough upper bound
        size = len(pattern)
        for count in re.findall(r"\{([0-9]+)", pattern):
            size *= max(int(count), 1)
            if size > MAX_REGEX_REPEAT:
                break
        return size


def _sre_size(sub: Any, kind: type) -> int:
    total = 0
    for op, arg in sub.data:
        if str(op) in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            total += max(int(arg[0]), 1) * _sre_size(arg[2], kind)
        else:
            total += 1 + sum(_sre_size(child, kind) for child in _sre_children(arg, kind))
        if total > MAX_REGEX_REPEAT:
            break
    return total


def _sre_children(arg: Any, kind: type) -> Iterator[Any]:
    if isinstance(arg, kind):
        yield arg
    elif isinstance(arg, tuple | list):
        for item in arg:
            yield from _sre_children(item, kind)


# --- tree building ------------------------------------------------------------------------------------


def _and(items: list[Node]) -> Node:
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, And) else (item,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(items: list[Node]) -> Node:
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _not(item: Node) -> Node:
    return item.item if isinstance(item, Not) else Not(item)


def looks_for_something(node: Node) -> bool:
    """Whether every post the tree matches must contain one of its terms, phrases or regexes (outside
    a NOT): an And needs one such item, an Or needs it on every side; filters and NOT only narrow."""
    if isinstance(node, Term | Phrase | Regex):
        return True
    if isinstance(node, And):
        return any(looks_for_something(item) for item in node.items)
    if isinstance(node, Or):
        return all(looks_for_something(item) for item in node.items)
    return False


def _only_what(node: Node) -> str:
    """What a tree without anything to look for does instead, for messages."""
    stack = [node]
    negates = filters = False
    while stack:
        item = stack.pop()
        if isinstance(item, Not):
            negates = True
        elif isinstance(item, LangFilter | ChannelFilter):
            filters = True
        elif isinstance(item, And | Or):
            stack.extend(item.items)
    if negates and filters:
        return _BOTH_ONLY
    return _FILTERS_ONLY if filters else _EXCLUDES_ONLY


class _Parser:
    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.q = query
        self.tokens = tokens
        self.i = 0

    def fail(self, message: str, position: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, position, self.q)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def quote(self, start: int, end: int) -> str:
        text = " ".join(self.q[start:end].split())
        return text if len(text) <= 40 else text[:39] + "…"

    def parse_or(self, after: _Token | None) -> _Parsed:
        branches = [self.parse_and(after)]
        while (token := self.peek()) is not None and token.kind == "OR":
            branches.append(self.parse_and(self.advance()))
        if len(branches) == 1:
            return branches[0]
        blame = None
        bad = next((b for b in branches if b.blame is not None), None)
        if bad is not None and bad.blame is not None:
            blame = bad.blame if bad.blame.or_side else _Blame(bad.node, bad.start, bad.end, True)
        return _Parsed(_or([b.node for b in branches]), branches[0].start, branches[-1].end, blame)

    def parse_and(self, after: _Token | None) -> _Parsed:
        items: list[_Parsed] = []
        while (token := self.peek()) is not None and token.kind not in (")", "OR"):
            if token.kind == "AND":
                self.advance()
                following = self.peek()
                if not items or following is None or following.kind in (")", "OR", "AND"):
                    raise self.fail("'AND' needs a word on both sides.", token.start)
                continue
            items.append(self.parse_unary())
        if not items:
            token = self.peek()
            if token is not None and token.kind == "OR":
                raise self.fail("'OR' needs a word on both sides.", token.start)
            if after is not None and after.kind == "OR":
                raise self.fail("'OR' needs a word on both sides.", after.start)
            if after is not None and after.kind == "(":
                raise self.fail("These brackets have nothing inside.", after.start)
            position = token.start if token is not None else len(self.q)
            raise self.fail("The query has no words to look for.", position)  # defensive: not reached
        if len(items) == 1:
            return items[0]
        node, start, end = _and([p.node for p in items]), items[0].start, items[-1].end
        blame = None
        if all(p.blame is not None for p in items):  # nothing here looks for anything
            inner = next((p.blame for p in items if p.blame is not None and p.blame.or_side), None)
            blame = inner or _Blame(node, start, end, False)
        return _Parsed(node, start, end, blame)

    def parse_unary(self) -> _Parsed:
        first = self.peek()
        assert first is not None
        negations = 0
        while (token := self.peek()) is not None and token.kind in ("NOT", "-"):
            self.advance()
            negations += 1
            following = self.peek()
            if following is None or following.kind in (")", "OR", "AND"):
                sign = "NOT" if token.kind == "NOT" else "-"
                raise self.fail(f"'{sign}' needs a word right after it.", token.start)
        atom = self.parse_atom()
        if negations % 2 == 0:  # NOT NOT x is x
            return _Parsed(atom.node, first.start, atom.end, atom.blame)
        node = _not(atom.node)
        return _Parsed(node, first.start, atom.end, _Blame(node, first.start, atom.end, False))

    def parse_atom(self) -> _Parsed:
        token = self.advance()
        if token.kind == "atom":
            node = token.node
            assert node is not None
            found = isinstance(node, Term | Phrase | Regex)
            return _Parsed(
                node, token.start, token.end, None if found else _Blame(node, token.start, token.end, False)
            )
        if token.kind != "(":  # defensive: callers only get here on an atom or "("
            raise self.fail("Something is missing here.", token.start)
        inner = self.parse_or(token)
        close = self.peek()
        if close is None or close.kind != ")":  # defensive: brackets are checked before parsing
            raise self.fail("This '(' is never closed.", token.start)
        self.advance()
        blame = inner.blame
        if blame is not None and not blame.or_side:
            blame = _Blame(blame.node, token.start, close.end, False)
        return _Parsed(inner.node, token.start, close.end, blame)


def _check_brackets(query: str, tokens: list[_Token]) -> None:
    open_at: list[int] = []
    for token in tokens:
        if token.kind == "(":
            open_at.append(token.start)
            if len(open_at) > MAX_DEPTH:
                raise QuerySyntaxError(
                    f"Too many brackets inside one another: at most {MAX_DEPTH} levels.", token.start, query
                )
        elif token.kind == ")":
            if not open_at:
                raise QuerySyntaxError("This ')' has no matching '('.", token.start, query)
            open_at.pop()
    if open_at:
        raise QuerySyntaxError("This '(' is never closed.", open_at[-1], query)


def parse(query: str) -> Node:
    """The normalised syntax tree of a query; QuerySyntaxError (and nothing else) when it is not valid."""
    try:
        return _parse(query)
    except QuerySyntaxError:
        raise
    except Exception:  # a bug must not crash the bot: report it as an unreadable query
        raise QuerySyntaxError("This query could not be understood.", 0, query) from None


_BARE = re.compile(r"\S+")


def _parse_plain_words(query: str) -> Node | None:
    """The tree of a query made of letters and digits only (the usual one), as the full parser would
    build it, quickly; None for any other query."""
    terms = []
    for match in _BARE.finditer(query):
        word = match.group()
        if not word.isalnum() or word in OPERATORS:
            return None
        terms.append(Term(word, False, False, match.start(), match.end()))
    if not terms or len(terms) > MAX_TERMS:
        return None
    return terms[0] if len(terms) == 1 else And(tuple(terms))


def _parse(query: str) -> Node:
    if len(query) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(
            f"The query is too long: at most {MAX_QUERY_CHARS} characters (this one has {len(query)}).",
            MAX_QUERY_CHARS,
            query,
        )
    if not query.strip():
        raise QuerySyntaxError("The query is empty.", 0, query)
    simple = _parse_plain_words(query)
    return simple if simple is not None else _parse_tokens(query)


def _parse_tokens(query: str) -> Node:
    tokens = _Lexer(query).run()
    if not tokens:
        first = len(query) - len(query.lstrip())
        raise QuerySyntaxError("The query has no words to look for, only punctuation.", first, query)
    _check_brackets(query, tokens)
    parser = _Parser(query, tokens)
    result = parser.parse_or(None)
    if parser.peek() is not None:  # defensive: a stray ')' is caught by _check_brackets
        raise QuerySyntaxError("This ')' has no matching '('.", parser.advance().start, query)
    blame = result.blame
    if blame is not None:
        lead = "Each side of 'OR'" if blame.or_side else "A query"
        raise QuerySyntaxError(
            f"{lead} needs at least one word to look for; "
            f"'{parser.quote(blame.start, blame.end)}' {_only_what(blame.node)}.",
            blame.start,
            query,
        )
    return result.node


# --- back to text -------------------------------------------------------------------------------------


def strip_positions(node: Node) -> Node:
    """The same tree with every start/end set to 0, to compare trees parsed from different texts."""
    if isinstance(node, Term | Phrase | Regex):
        return replace(node, start=0, end=0)
    if isinstance(node, And):
        return And(tuple(strip_positions(item) for item in node.items))
    if isinstance(node, Or):
        return Or(tuple(strip_positions(item) for item in node.items))
    if isinstance(node, Not):
        return Not(strip_positions(node.item))
    return node


def _quoted(words: tuple[str, ...], exact: bool) -> str:
    text = " ".join(words)
    body = f"«{text}»" if any(ch in _QUOTE_CHARS for ch in text) else f'"{text}"'
    return "=" + body if exact else body


def _breaks_words(word: str) -> bool:
    """Whether written bare the word would not stay one word (only words from quotes can)."""
    return any(ch in _QUOTES or ch in _OPEN or ch in _CLOSE or ch.isspace() for ch in word)


def _describe_term(term: Term) -> str:
    if term.prefix:  # from a bare word: nothing in it to protect
        return ("!" if term.exact else "") + term.word + "*"
    if term.exact:  # after "!" a word is never an operator or a filter
        return _quoted((term.word,), True) if _breaks_words(term.word) else "!" + term.word
    if term.word in OPERATORS or _FILTER.match(term.word) or _breaks_words(term.word):
        return _quoted((term.word,), False)
    return term.word


def _describe_regex(regex: Regex) -> str:
    out: list[str] = []
    pattern = regex.pattern
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append("\\/" if pattern[i] == "/" else pattern[i])
        i += 1
    return "/" + "".join(out) + "/" + ("" if regex.ignore_case else "c")


def describe(node: Node) -> str:
    """Canonical query text for a tree: `parse(describe(t))` gives `t` back (positions aside) for every
    tree `parse` returns, as long as the text stays within MAX_QUERY_CHARS (it is rarely longer than the
    query the tree came from: only a quote glued to a word, or a word OR/AND/NOT/lang:… that needs quotes
    to stay a word, adds a character or two)."""
    if isinstance(node, Term):
        return _describe_term(node)
    if isinstance(node, Phrase):
        return _quoted(node.words, node.exact)
    if isinstance(node, Regex):
        return _describe_regex(node)
    if isinstance(node, LangFilter):
        return f"lang:{node.lang}"
    if isinstance(node, ChannelFilter):
        return f"channel:{node.channel}"
    if isinstance(node, Not):
        inner = node.item
        text = describe(inner)
        return f"-({text})" if isinstance(inner, And | Or | Not) else f"-{text}"
    if isinstance(node, And):
        return " ".join(f"({describe(i)})" if isinstance(i, And | Or) else describe(i) for i in node.items)
    return " OR ".join(f"({describe(i)})" if isinstance(i, Or) else describe(i) for i in node.items)
