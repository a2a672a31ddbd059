"""Forward-only numbered migrations; `PRAGMA user_version` holds the number applied last."""

from __future__ import annotations

import aiosqlite

MIGRATIONS: tuple[str, ...] = (
    # 1: channels, posts, edit history, full-text index
    """
    CREATE TABLE channels (
        id                 INTEGER PRIMARY KEY,
        username           TEXT COLLATE NOCASE,
        title              TEXT NOT NULL DEFAULT '',
        access_hash        INTEGER,
        watched            INTEGER NOT NULL DEFAULT 1,
        status             TEXT NOT NULL DEFAULT 'active',
        last_error         TEXT,
        last_seen_id       INTEGER NOT NULL DEFAULT 0,
        backfill_cursor    INTEGER,
        backfill_remaining INTEGER,
        backfill_since     INTEGER,
        backfill_active    INTEGER NOT NULL DEFAULT 0,
        flood_wait_until   INTEGER,
        added_at           INTEGER NOT NULL
    );
    CREATE INDEX channels_username ON channels(username);

    CREATE TABLE posts (
        id              INTEGER PRIMARY KEY,
        channel_id      INTEGER NOT NULL REFERENCES channels(id),
        message_id      INTEGER NOT NULL,
        date            INTEGER NOT NULL,
        text            TEXT NOT NULL,
        entities        TEXT,
        lang            TEXT NOT NULL,
        lang_confidence REAL NOT NULL,
        views           INTEGER,
        forwards        INTEGER,
        replies         INTEGER,
        reactions       TEXT,
        media_type      TEXT,
        forwarded_from  TEXT,
        reply_to        INTEGER,
        album_id        INTEGER,
        author          TEXT,
        service_action  TEXT,
        tags            TEXT,
        permalink       TEXT NOT NULL,
        edit_date       INTEGER,
        deleted_at      INTEGER,
        collected_at    INTEGER NOT NULL,
        content_hash    TEXT NOT NULL,
        version         INTEGER NOT NULL DEFAULT 1,
        UNIQUE (channel_id, message_id)
    );
    CREATE INDEX posts_date ON posts(date);
    CREATE INDEX posts_channel_date ON posts(channel_id, date);

    CREATE TABLE post_versions (
        post_id      INTEGER NOT NULL REFERENCES posts(id),
        version      INTEGER NOT NULL,
        text         TEXT NOT NULL,
        entities     TEXT,
        edit_date    INTEGER,
        recorded_at  INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        PRIMARY KEY (post_id, version)
    ) WITHOUT ROWID;

    -- Folded words (since schema 2: core.query.fts.fts_body); rowid = posts.id.
    CREATE VIRTUAL TABLE posts_fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');
    """,
    # 2: the index holds the query language's word forms (homoglyphs, Arabic letter variants folded)
    """
    DELETE FROM posts_fts;
    INSERT INTO posts_fts (rowid, body) SELECT id, tgmon_fts_body(text) FROM posts WHERE text != '';
    """,
    # 3: stories (near-duplicates and forwards folded); NULL reads as the post's own story
    """
    ALTER TABLE posts ADD COLUMN story_id TEXT;
    ALTER TABLE posts ADD COLUMN story_sig BLOB;
    CREATE INDEX posts_story ON posts(story_id);
    """,
    # 4: subscribers, their queries, what matched, the delivery outbox
    """
    CREATE TABLE subscribers (
        id             INTEGER PRIMARY KEY,          -- Telegram user id
        chat_id        INTEGER NOT NULL,
        ui_lang        TEXT NOT NULL DEFAULT 'en',
        active         INTEGER NOT NULL DEFAULT 1,   -- 0: blocked the bot or deactivated (403)
        paused         INTEGER NOT NULL DEFAULT 0,
        langs          TEXT,                         -- JSON list of ISO codes; NULL: any language
        channels       TEXT,                         -- JSON list of channel ids; NULL: every watched one
        quiet_start    INTEGER,                      -- minutes after local midnight
        quiet_end      INTEGER,
        timezone       TEXT NOT NULL DEFAULT 'UTC',
        digest         TEXT NOT NULL DEFAULT 'off',  -- off | hourly | daily | weekly
        digest_at      INTEGER NOT NULL DEFAULT 540, -- minutes after local midnight
        digest_day     INTEGER NOT NULL DEFAULT 0,   -- 0 = Monday
        last_digest_at INTEGER,
        inactive_reason TEXT,
        created_at     INTEGER NOT NULL
    );

    CREATE TABLE queries (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        text          TEXT NOT NULL,
        paused        INTEGER NOT NULL DEFAULT 0,
        created_at    INTEGER NOT NULL,
        deleted_at    INTEGER
    );
    CREATE INDEX queries_subscriber ON queries(subscriber_id);

    CREATE TABLE post_matches (
        post_id    INTEGER NOT NULL REFERENCES posts(id),
        query_id   INTEGER NOT NULL REFERENCES queries(id),
        matched_at INTEGER NOT NULL,
        PRIMARY KEY (post_id, query_id)
    ) WITHOUT ROWID;
    CREATE INDEX post_matches_query ON post_matches(query_id, matched_at);

    CREATE TABLE outbox (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        chat_id       INTEGER NOT NULL,
        kind          TEXT NOT NULL,                 -- alert | digest | notice
        story_id      TEXT,
        payload       TEXT NOT NULL,                 -- JSON, rendered at delivery
        status        TEXT NOT NULL DEFAULT 'pending', -- pending | sent | failed | dropped
        attempts      INTEGER NOT NULL DEFAULT 0,
        not_before    INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        stored_at     REAL,                          -- when the post was stored: latency is measured from it
        sent_at       REAL,
        error         TEXT
    );
    CREATE INDEX outbox_due ON outbox(status, not_before);

    -- one alert per story per subscriber, whatever restarts and edits happen
    CREATE TABLE alerted (
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        story_id      TEXT NOT NULL,
        outbox_id     INTEGER REFERENCES outbox(id),
        PRIMARY KEY (subscriber_id, story_id)
    ) WITHOUT ROWID;

    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('queries_version', '0');
    """,
    # 5: roles and invitations; the collector's heartbeat and health state live in meta
    """
    CREATE TABLE roles (
        user_id    INTEGER NOT NULL,
        role       TEXT NOT NULL,                    -- operator | analyst
        granted_by INTEGER,
        granted_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, role)
    ) WITHOUT ROWID;

    CREATE TABLE invites (
        code       TEXT PRIMARY KEY,
        created_by INTEGER,
        created_at INTEGER NOT NULL,
        used_by    INTEGER,
        used_at    INTEGER
    );

    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        user_id INTEGER,
        action  TEXT NOT NULL,
        detail  TEXT,
        allowed INTEGER NOT NULL
    );
    """,
    # 6: usernames the bot has seen (for `/grant @name`); channels operators asked the collector to watch
    """
    CREATE TABLE usernames (
        username TEXT PRIMARY KEY COLLATE NOCASE,   -- without the @
        user_id  INTEGER NOT NULL,
        seen_at  INTEGER NOT NULL
    );
    CREATE INDEX usernames_user ON usernames(user_id);

    CREATE TABLE watch_requests (
        id           INTEGER PRIMARY KEY,
        ref          TEXT NOT NULL COLLATE NOCASE,  -- @name or -100… id, as ChannelRef prints it
        backfill     INTEGER,                       -- also read the N newest posts; NULL: none
        requested_by INTEGER,                       -- Telegram user id; NULL: the CLI
        requested_at INTEGER NOT NULL,
        status       TEXT NOT NULL DEFAULT 'pending', -- pending | done | failed | cancelled
        error        TEXT,                          -- why it failed, for the operator
        channel_id   INTEGER,                       -- the channel it resolved to (done)
        resolved_at  INTEGER
    );
    CREATE INDEX watch_requests_status ON watch_requests(status, id);
    -- one pending request per channel reference
    CREATE UNIQUE INDEX watch_requests_pending ON watch_requests(ref) WHERE status = 'pending';
    """,
    # 7: each post's text is stored once, not also as a version-1 row: post_versions keeps the versions an
    # edit replaced, the current one is the post row (version_at: when it was recorded; NULL: collected_at).
    # An alert's part that every subscriber of a post sees is stored once (alert_bodies), not per alert.
    """
    ALTER TABLE posts ADD COLUMN version_at INTEGER;
    UPDATE posts SET version_at = (
        SELECT v.recorded_at FROM post_versions v WHERE v.post_id = posts.id AND v.version = posts.version
    ) WHERE version > 1;
    DELETE FROM post_versions
    WHERE version = (SELECT p.version FROM posts p WHERE p.id = post_versions.post_id);

    CREATE TABLE alert_bodies (
        id   INTEGER PRIMARY KEY,
        body TEXT NOT NULL                          -- JSON object; the outbox row's payload adds to it
    );
    ALTER TABLE outbox ADD COLUMN body_id INTEGER REFERENCES alert_bodies(id);
    """,
    # 8: `alerted` keyed by story first: a new story's rows go next to its channel's latest, not at random
    # places of a table that holds every alert ever queued (the "alerted before?" look-up gives both columns,
    # and nothing looks it up by subscriber alone; bench/RESULTS.md, section 1, has what it gained).
    """
    CREATE TABLE alerted_by_story (
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        story_id      TEXT NOT NULL,
        outbox_id     INTEGER REFERENCES outbox(id),
        PRIMARY KEY (story_id, subscriber_id)
    ) WITHOUT ROWID;
    INSERT INTO alerted_by_story (subscriber_id, story_id, outbox_id)
        SELECT subscriber_id, story_id, outbox_id FROM alerted ORDER BY story_id, subscriber_id;
    DROP TABLE alerted;
    ALTER TABLE alerted_by_story RENAME TO alerted;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNewError(RuntimeError):
    pass


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply every migration above the database's version, each in its own transaction."""
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    if current > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database is at schema {current}, this tgmon knows up to {SCHEMA_VERSION}: upgrade tgmon"
        )
    for number in range(current + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[number - 1]
        await db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return SCHEMA_VERSION
