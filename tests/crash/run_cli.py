"""A real `tgmon` command in a child process, for the crash tests:

    python -m tests.crash.run_cli [--telegram SPEC.json] [--die-after N] -- import a.json b.json

It runs `core.cli.main` unchanged, with two additions: a line `crash:stored NEW EDITED UNCHANGED` on
stdout after every committed batch (the parent times its SIGKILLs by them), and `--telegram`, which
puts the seeded fake Telegram (tests.crash.telegram) where a logged-in client would be. `--die-after N`
makes the process SIGKILL itself right after its N-th batch that stored something commits: the moment
between storing posts and queueing their alerts.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MARK = "crash:stored"


def probe_commits(die_after: int | None) -> None:
    from core.storage.sqlite import SqliteArchive

    save_posts = SqliteArchive.save_posts
    stored = 0

    async def probed(self: SqliteArchive, posts: Any, *, progress: Any = None, then: Any = None) -> Any:
        nonlocal stored
        result = await save_posts(self, posts, progress=progress, then=then)
        print(f"{MARK} {len(result.new)} {len(result.edited)} {result.unchanged}", flush=True)
        if result.new or result.edited:
            stored += 1
            if stored == die_after:
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    SqliteArchive.save_posts = probed  # type: ignore[method-assign]


def fake_telegram(spec_path: Path) -> None:
    from tests.crash.telegram import Spec, build_client

    client = build_client(Spec.load(spec_path))

    async def connect(settings: Any) -> Any:
        return client

    import collectors.telegram

    collectors.telegram.connect_authorized = connect


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="run_cli")
    parser.add_argument("--telegram", type=Path)
    parser.add_argument("--die-after", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    probe_commits(args.die_after)
    if args.telegram:
        fake_telegram(args.telegram)
    from core.cli import main as tgmon

    return tgmon(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
