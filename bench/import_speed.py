"""Import speed of the shared Desktop exports, per language engine, against one commit per post.

    python -m bench.import_speed [--exports DIR] [--repeat N]

Baseline (same run): the same pipeline fed one post per batch, i.e. one transaction per post, the
way a naive monitor writes.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from core import importer
from core.importer import import_exports
from core.langid import ENGINES, make_detector
from core.pipeline import Pipeline
from core.storage.sqlite import SqliteArchive

DEFAULT_EXPORTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "exports"


async def measure(engine: str, paths: list[Path], batch: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = await SqliteArchive.open(Path(tmp) / "bench.db")
        pipeline = Pipeline(archive, make_detector(engine))
        pipeline.detector.detect("warm up the model once")
        old, importer.BATCH = importer.BATCH, batch
        try:
            started = time.perf_counter()
            report = await import_exports(pipeline, paths, alerts=False)
            elapsed = time.perf_counter() - started
        finally:
            importer.BATCH = old
            await archive.close()
    return report.messages, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exports", type=Path, default=DEFAULT_EXPORTS)
    args = parser.parse_args()
    paths = sorted(args.exports.glob("*.json"))
    if not paths:
        raise SystemExit(f"no exports in {args.exports}")
    print(f"{'engine':<12}{'mode':<22}{'posts':>7}{'seconds':>9}{'posts/s':>10}{'ratio':>8}")
    for engine in ENGINES:
        base_n, base_t = await measure(engine, paths, batch=1)
        n, t = await measure(engine, paths, batch=importer.BATCH)
        for mode, count, seconds in (
            ("baseline: 1 post/tx", base_n, base_t),
            (f"batched: {importer.BATCH}/tx", n, t),
        ):
            ratio = base_t / seconds
            print(f"{engine:<12}{mode:<22}{count:>7}{seconds:>9.2f}{count / seconds:>10.0f}{ratio:>8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
