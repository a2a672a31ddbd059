"""Schema 2 records formatted by SQLite: one SELECT column holds a post's whole JSONL line or CSV row;
for Parquet, the columns Arrow reads (`parquet_columns`).

Formatting in SQLite's C code (one `printf` per row, returned as UTF-8 bytes) instead of building a
Post, a dict and a JSON string per post in Python is what makes the flat exports fast. The output is
byte for byte what the reference definition gives (`core.export.post_record` plus `flat.FIELDS`,
encoded by Python's `json` and `csv` as docs/export.md describes); tests/test_exporters.py checks that
on hostile values. What makes it exact:

* strings go through `json_quote`, whose escapes are Python's with `ensure_ascii=False` (`\\"`, `\\\\`,
  `\\n`-style short forms, `\\u00XX` for other control characters);
* `entities`, `reactions` and `tags` are stored as JSON written by `core.storage.rows` with the same
  encoder settings, so they are copied as they are (absent: `[]` or `null`, as the record has them);
* `lang_confidence` is Python's `round(x, 4)`, written as `repr` writes it: formatted from the integer
  of ten-thousandths, and left to Python (`tgmon_round4`) for the rare value within 10⁻⁶ of a tie,
  where floating-point error could round the other way, or outside [0, 10⁴);
* dates are integer UTC timestamps, written as `iso()` writes them (`2024-01-01T10:00:00Z`).
"""

from __future__ import annotations

from core.exporters.flat import FORMULA_START, SCHEMA_VERSION

ROUND4 = "tgmon_round4"  # SQL function registered on the connection by the export

CHANNEL = "coalesce(nullif(c.username, ''), c.title)"  # `channel_username or channel_title`
STORY = "coalesce(nullif(p.story_id, ''), p.channel_id || ':' || p.message_id)"
DELETED = "CASE WHEN p.deleted_at IS NULL THEN 'false' ELSE 'true' END"


def round4(value: float) -> str:
    """The JSON and CSV text of `lang_confidence`: `repr(round(value, 4))`."""
    return repr(round(value, 4))


def _round4_sql(x: str) -> str:
    scaled = f"({x} * 10000)"
    exact = f"{x} >= 0 AND {x} < 10000 AND abs({scaled} - CAST({scaled} AS INTEGER) - 0.5) > 1e-6"
    # the double nearest to k/10⁴ has ≤ 8 significant digits: '%!.15g' writes it as repr does (0.9, 1.0)
    text = f"printf('%!.15g', CAST({scaled} + 0.5 AS INTEGER) / 10000.0)"
    return f"CASE WHEN {exact} THEN {text} ELSE {ROUND4}({x}) END"


def _iso(x: str) -> str:
    """`2024-01-01T10:00:00` (NULL for NULL): the caller adds the `Z`."""
    return f"replace(datetime({x}, 'unixepoch'), ' ', 'T')"


def _json_iso(x: str) -> str:
    """A JSON string of the timestamp, or null."""
    return f"""coalesce('"' || {_iso(x)} || 'Z"', 'null')"""


def _us(x: str) -> str:
    """Microseconds, or null: Parquet's timestamps."""
    return f"coalesce({x} * 1000000, 'null')"


def _printf(pieces: list[tuple[str, str | None]]) -> str:
    """`CAST(printf(...) AS BLOB)` of literal text and `%s` values: one pass, UTF-8 bytes out."""
    fmt = "".join(text.replace("%", "%%") + ("%s" if value is not None else "") for text, value in pieces)
    args = "".join(f", {value}" for _, value in pieces if value is not None)
    return "CAST(printf('" + fmt.replace("'", "''") + "'" + args + ") AS BLOB)"


def _json_object(values: dict[str, str], end: str = "\n") -> str:
    pieces = [("{" if n == 0 else ",") + f'"{name}":' for n, name in enumerate(values)]
    return _printf([*zip(pieces, values.values(), strict=True), ("}" + end, None)])


def _group(item: str, source: str, *, csv: bool) -> str:
    """A JSON list of `item` over `source`'s rows (NULL when none); in a CSV cell, quoted, its quotes
    doubled."""
    if csv:
        return f"""(SELECT '"[' || group_concat(replace({item}, '"', '""'), ',') || ']"' {source})"""
    return f"(SELECT '[' || group_concat({item}, ',') || ']' {source})"


def _matched_list(*, csv: bool) -> str:
    """`matched_queries`: texts of the queries the post matched, each once, in order of query creation;
    NULL when it matched none (looked up first: most posts did not)."""
    source = (
        "FROM (SELECT q.text AS t FROM post_matches m JOIN queries q ON q.id = m.query_id "
        "WHERE m.post_id = p.id GROUP BY q.text ORDER BY min(q.id))"
    )
    found = "EXISTS (SELECT 1 FROM post_matches m WHERE m.post_id = p.id)"
    return f"CASE WHEN {found} THEN {_group('json_quote(t)', source, csv=csv)} END"


def _matched(*, csv: bool, any_matches: bool) -> str:
    if not any_matches:
        return "'[]'"
    return f"coalesce({_matched_list(csv=csv)}, '[]')"


def _history_list(*, csv: bool = False, parquet: bool = False) -> str:
    """`edit_history`: every version, oldest first, when the post has more than one; else NULL."""
    date = _us if parquet else _json_iso
    item = (
        """'{"version":' || v.version || ',"text":' || json_quote(v.text) || ',"edit_date":' || """
        f"""{date("v.edit_date")} || ',"recorded_at":' || {date("v.recorded_at")} || '}}'"""
    )
    source = (
        "FROM (SELECT version, text, edit_date, recorded_at FROM post_versions WHERE post_id = p.id "
        "UNION ALL SELECT p.version, p.text, p.edit_date, COALESCE(p.version_at, p.collected_at) "
        "ORDER BY 1) v"
    )
    return f"CASE WHEN p.version > 1 THEN {_group(item, source, csv=csv)} END"


def _history(*, csv: bool = False) -> str:
    return f"coalesce({_history_list(csv=csv)}, '[]')"


def _post_values(*, confidence: str, reactions: str, any_matches: bool) -> dict[str, str]:
    """The record's fields as SQL expressions of JSON values, in the documented order."""
    values = {
        "channel_id": "p.channel_id",
        "channel": f"json_quote({CHANNEL})",
        "channel_title": "json_quote(c.title)",
        "message_id": "p.message_id",
        "date": _json_iso("p.date"),
        "text": "json_quote(p.text)",
    }
    return values | {
        "entities": "coalesce(nullif(p.entities, ''), '[]')",
        "lang": "json_quote(p.lang)",
        "lang_confidence": confidence,
        "url": "json_quote(p.permalink)",
        "views": "coalesce(p.views, 'null')",
        "forwards": "coalesce(p.forwards, 'null')",
        "replies": "coalesce(p.replies, 'null')",
        "reactions": reactions,
        "media_type": "json_quote(p.media_type)",
        "forwarded_from": "json_quote(p.forwarded_from)",
        "reply_to": "coalesce(p.reply_to, 'null')",
        "album_id": "coalesce(p.album_id, 'null')",
        "author": "json_quote(p.author)",
        "service_action": "json_quote(p.service_action)",
        "tags": "coalesce(nullif(p.tags, ''), '[]')",
        "story_id": f"json_quote({STORY})",
        "edited": _json_iso("p.edit_date"),
        "versions": "p.version",
        "deleted": DELETED,
        "deleted_at": _json_iso("p.deleted_at"),
        "collected_at": _json_iso("p.collected_at"),
        "content_hash": "json_quote(p.content_hash)",
        "matched_queries": _matched(csv=False, any_matches=any_matches),
        "edit_history": _history(),
    }


def jsonl_sql(*, any_matches: bool) -> str:
    """One column: the post's JSONL line, `\\n` included, as UTF-8 bytes."""
    values = _post_values(
        confidence=_round4_sql("p.lang_confidence"),
        reactions="coalesce(nullif(p.reactions, ''), 'null')",
        any_matches=any_matches,
    )
    return _json_object({"schema": str(SCHEMA_VERSION)} | values)


def csv_sql(*, safe: bool, any_matches: bool) -> str:
    """One column: the post's CSV row (RFC 4180, `\\r\\n` included) as UTF-8 bytes, its cells the JSONL
    record's values (docs/export.md)."""
    triggers = ", ".join(str(ord(c)) for c in FORMULA_START)  # code points, compared with unicode(x)

    def cell(x: str, *, user: bool = False, empty: str = "") -> str:
        """Quoted when it holds a comma, a quote or a line break; user-written text made formula-safe."""
        mark = f"CASE WHEN unicode({x}) IN ({triggers}) THEN '''' ELSE '' END" if user and safe else "''"
        special = f"""instr({x}, ',') OR instr({x}, '"') OR instr({x}, char(10)) OR instr({x}, char(13))"""
        return (
            f"CASE WHEN {x} IS NULL OR {x} = '' THEN '{empty}' "
            f"""WHEN {special} THEN '"' || {mark} || replace({x}, '"', '""') || '"' ELSE {mark} || {x} END"""
        )

    def iso(x: str) -> str:
        return f"coalesce({_iso(x)} || 'Z', '')"

    # the channel's name and the story id are expressions: each cell() below would evaluate them often
    channel = (
        f"CASE WHEN c.username IS NULL OR c.username = '' THEN {cell('c.title', user=True)} "
        f"ELSE {cell('c.username', user=True)} END"
    )
    story = (
        "CASE WHEN p.story_id IS NULL OR p.story_id = '' THEN p.channel_id || ':' || p.message_id "
        f"ELSE {cell('p.story_id')} END"
    )
    cells = [
        str(SCHEMA_VERSION),
        "p.channel_id",
        channel,
        cell("c.title", user=True),
        "p.message_id",
        iso("p.date"),
        cell("p.text", user=True),
        cell("p.lang"),
        _round4_sql("p.lang_confidence"),
        cell("p.permalink"),
        "p.views",  # printf writes NULL as an empty cell
        "p.forwards",
        "p.replies",
        cell("p.reactions"),
        cell("p.media_type"),
        cell("p.forwarded_from", user=True),
        "p.reply_to",
        "p.album_id",
        cell("p.author", user=True),
        cell("p.service_action"),
        cell("p.tags", empty="[]"),
        story,
        iso("p.edit_date"),
        "p.version",
        DELETED,
        iso("p.deleted_at"),
        iso("p.collected_at"),
        cell("p.content_hash"),
        _matched(csv=True, any_matches=any_matches),
        _history(csv=True),
    ]
    return _printf([("," if n else "", value) for n, value in enumerate(cells)] + [("\r\n", None)])


# Parquet's rows are read in date order only: sorting by channel and message as well would make SQLite
# copy each whole row through a sorter; `parquet.ParquetWriter` orders the posts of a date instead.
PARQUET_ORDER = "p.date"


def parquet_columns(*, any_matches: bool) -> dict[str, str]:
    """The columns `parquet.ParquetWriter` turns into Arrow arrays, after the channel id, in this order.

    Plain SQL values: integers, timestamps in microseconds, NULL, and texts as their UTF-8 bytes (taken
    as they are: no decoding into Python strings and encoding again). The nested fields are JSON, NULL
    where the field is empty (`[]`, or null for `reactions`), so that only the posts that have them are
    parsed: `reactions` as key/value pairs (`{}` is null, as in the record), timestamps in
    `edit_history` in microseconds. `deleted` is `deleted_at IS NOT NULL` and `story_id` defaults to
    `channel_id:message_id`: both are computed by Arrow.
    """
    pairs = """'{"key":' || json_quote(key) || ',"value":' || value || '}'"""
    reactions = _group(pairs, "FROM json_each(p.reactions)", csv=False)
    return {
        "channel": _utf8(CHANNEL),
        "channel_title": _utf8("c.title"),
        "message_id": "p.message_id",
        "date": "p.date * 1000000",
        "text": _utf8("p.text"),
        "entities": _utf8("nullif(p.entities, '')"),
        "lang": _utf8("p.lang"),
        "lang_confidence": "p.lang_confidence",
        "url": _utf8("p.permalink"),
        "views": "p.views",
        "forwards": "p.forwards",
        "replies": "p.replies",
        "reactions": _utf8(
            f"CASE WHEN p.reactions IS NULL OR p.reactions = '' THEN NULL ELSE {reactions} END"
        ),
        "media_type": _utf8("p.media_type"),
        "forwarded_from": _utf8("p.forwarded_from"),
        "reply_to": "p.reply_to",
        "album_id": "p.album_id",
        "author": _utf8("p.author"),
        "service_action": _utf8("p.service_action"),
        "tags": _utf8("nullif(p.tags, '')"),
        "story_id": _utf8("nullif(p.story_id, '')"),
        "edited": "p.edit_date * 1000000",
        "versions": "p.version",
        "deleted_at": "p.deleted_at * 1000000",
        "collected_at": "p.collected_at * 1000000",
        "content_hash": _utf8("p.content_hash"),
        "matched_queries": _utf8(_matched_list(csv=False)) if any_matches else "NULL",
        "edit_history": _utf8(_history_list(parquet=True)),
    }


def _utf8(x: str) -> str:
    """A text as its UTF-8 bytes, which Arrow takes as they are (NULL stays NULL)."""
    return f"CAST({x} AS BLOB)"
