from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive
from core.storage.subscriptions import SubscriptionStore
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.memory import FixedDetector, RecordingSink

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def shared_data() -> Path:
    """The read-only real data beside the repo; tests that use it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[SqliteArchive]:
    db = await SqliteArchive.open(tmp_path / "tgmon.db")
    yield db
    await db.close()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def pipeline(archive: SqliteArchive, sink: RecordingSink) -> Pipeline:
    return Pipeline(archive, FixedDetector(), sink)


@pytest.fixture
async def server() -> AsyncIterator[FakeBotAPI]:
    """The fake Bot API on loopback (files that need other settings define their own)."""
    async with FakeBotAPI(poll_wait=0.1) as fake:
        yield fake


@pytest.fixture
async def store(archive: SqliteArchive) -> SubscriptionStore:
    """Subscriptions and the outbox, with @kz_news (channel 1) archived for `tests.fakes.outbox.queue`."""
    await archive.upsert_channel(1, "kz_news", "KZ News")
    return SubscriptionStore(archive)
