"""core.search against the plain definition: every post the matcher accepts, newest first.

The archive's fast paths (newest hits read by id, prefixes replaced by the index's accepted word forms,
`lang:`/`channel:` pushed into SQL, growing pages) must give exactly what reading every post and asking
the matcher gives, including when post ids do not follow dates (backfill, imports)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from core.models import PostFilter, RawPost
from core.pipeline import Pipeline
from core.query.fts import fts_prefilter
from core.query.matcher import Document, compile_query
from core.search import narrowed, search, sharpened
from core.storage.sqlite import SqliteArchive

T0 = datetime(2024, 1, 1, tzinfo=UTC)
WORDS = [
    "music", "must", "muslim", "mushrik", "mushriks", "protest", "protests", "protesting", "protestant",
    "time", "times", "timing", "title", "tip", "saying", "says", "протест", "протесты", "протестующих",
    "протестант", "сценарий", "сценарием", "сценарист", "находящимся", "находка", "новости", "новость",
    "україни", "україна", "ударів", "مسجد", "المسجد", "شيء", "شيئا", "فشيئا", "خائن", "خاك", "خاص", "日",
    "本",
]  # fmt: skip
QUERIES = [
    "mushrik", "protest", "protests", "протест", "протестующих", "сценарием", "находящимся", "time",
    "times saying", '"times saying"', "tim*", "протест*", "protest -protestant", "music OR сценарий",
    "новости lang:ru", "time lang:en", "protest channel:8", "україни -ударів", "日", "=times",
]  # fmt: skip


async def fill(pipeline: Pipeline, archive: SqliteArchive, count: int) -> None:
    await archive.upsert_channel(7, "seven", "Seven")
    await archive.upsert_channel(8, None, "Eight")
    chance = random.Random(5)
    posts = []
    for i in range(count):
        words = [chance.choice(WORDS) for _ in range(chance.randrange(2, 9))]
        # dates shuffled against insertion order: ids do not follow dates (backfill, imports)
        date = T0 + timedelta(minutes=chance.randrange(100_000))
        posts.append(RawPost(7 + i % 2, i + 1, date, " ".join(words)))
    for start in range(0, count, 500):
        await pipeline.ingest(posts[start : start + 500], alerts=False)


async def reference(archive: SqliteArchive, text: str, limit: int) -> list[tuple[int, int]]:
    query = compile_query(text)
    found = []
    async for post in archive.iter_posts():
        doc = Document.of(
            post.text, lang=post.lang, channel_id=post.channel_id, channel_username=post.channel_username
        )
        if query.match(doc) is not None:
            found.append(post)
    found.sort(key=lambda p: (p.date, p.channel_id, p.message_id), reverse=True)
    return [(p.channel_id, p.message_id) for p in found[:limit]]


@pytest.mark.parametrize("limit", [20, 300])
async def test_search_gives_the_matchers_newest_posts(
    pipeline: Pipeline, archive: SqliteArchive, limit: int
) -> None:
    await fill(pipeline, archive, 3000)
    for text in QUERIES:
        result = await search(archive, text, limit=limit)
        got = [(h.post.channel_id, h.post.message_id) for h in result.hits]
        assert got == await reference(archive, text, limit), text
        assert result.exhaustive


@pytest.mark.parametrize("text", ["المسجد", "مسجد", "شيء", "شيئا", "خائن", "خاك"])
async def test_the_prefilter_finds_every_form_the_matcher_accepts(
    pipeline: Pipeline, archive: SqliteArchive, text: str
) -> None:
    await fill(pipeline, archive, 300)
    result = await search(archive, text, limit=300)
    assert [(h.post.channel_id, h.post.message_id) for h in result.hits] == await reference(
        archive, text, 300
    )


def test_arabic_prefixes_keep_the_whole_stem_but_a_final_hamzas_seat() -> None:
    fts = fts_prefilter(compile_query("خاك").tree) or ""
    assert '"خاك"*' in fts and '"والخاك"*' in fts and '"خا"*' not in fts  # not every word in خا…
    hamza = fts_prefilter(compile_query("شيء").tree) or ""
    assert '"شيئ"*' in hamza and '"شيء"*' in hamza and '"فشيئ"*' in hamza  # شيئا stems to شيء


async def test_prefixes_become_the_accepted_forms(pipeline: Pipeline, archive: SqliteArchive) -> None:
    await fill(pipeline, archive, 300)
    query = compile_query("mushrik")
    fts = fts_prefilter(query.tree)
    assert fts == '"mus"*'  # music, must and muslim share it
    assert await sharpened(archive, query.tree, fts) == '("mushrik" OR "mushriks")'
    prefix = compile_query("mus*")
    assert await sharpened(archive, prefix.tree, '"mus"*') == '"mus"*'  # the user's own prefix stays
    absent = compile_query("mustangs")  # no form of it in the index: the word itself, found nowhere
    sharp = await sharpened(archive, absent.tree, fts_prefilter(absent.tree) or "")
    assert sharp == '("mustangs")' and (await search(archive, "mustangs")).hits == []


def test_lang_and_channel_filters_narrow_the_archive_query() -> None:
    tree = compile_query("protest lang:en channel:8").tree
    assert narrowed(tree, PostFilter()) == PostFilter(lang="en", channel_id=8)
    assert narrowed(tree, PostFilter(lang="ru")) == PostFilter(lang="ru", channel_id=8)  # the user's wins
    assert narrowed(compile_query("protest OR (time lang:en)").tree, PostFilter()) == PostFilter()
    assert narrowed(compile_query("x -lang:en").tree, PostFilter()) == PostFilter()
    assert narrowed(compile_query("channel:@seven x").tree, PostFilter()) == PostFilter()
