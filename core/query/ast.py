"""The query language's syntax tree: what the parser produces and the matcher compiles.

Grammar (informal):
    query   := or
    or      := and ("OR" and)*
    and     := unary (unary)*            -- implicit AND; an explicit "AND" is accepted too
    unary   := ("-" | "NOT") unary | atom
    atom    := "(" or ")" | PHRASE | REGEX | FILTER | TERM
    TERM    := word | word* (prefix) | ="word" or !word (exact form, no morphology)
    PHRASE  := "several words"            -- consecutive words, morphology per word unless exact
    REGEX   := /pattern/ or /pattern/i    -- opt-in regular expression, run with a time limit
    FILTER  := lang:CODE | channel:@name | channel:ID
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Term:
    word: str  # as the user typed it, without sigils (no leading #/@, no trailing *, no =/! mark)
    exact: bool = False  # no morphology: the folded word form only
    prefix: bool = False  # word*: any word starting with it
    start: int = 0  # position in the query text, for messages
    end: int = 0


@dataclass(frozen=True, slots=True)
class Phrase:
    words: tuple[str, ...]
    exact: bool = False
    start: int = 0
    end: int = 0


@dataclass(frozen=True, slots=True)
class Regex:
    pattern: str
    ignore_case: bool = True
    start: int = 0
    end: int = 0


@dataclass(frozen=True, slots=True)
class LangFilter:
    lang: str  # ISO 639-1, lower-case


@dataclass(frozen=True, slots=True)
class ChannelFilter:
    channel: str  # a username without @, lower-case, or a bare numeric id as text


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Term | Phrase | Regex | LangFilter | ChannelFilter | And | Or | Not


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed; `message` is for a non-programmer, `position` is 0-based."""

    def __init__(self, message: str, position: int, query: str) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.query = query

    def pointer(self) -> str:
        """The query with a caret under the problem, for monospace display."""
        return f"{self.query}\n{' ' * self.position}^"
