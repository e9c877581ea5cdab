"""Replies already paid for, in SQLite: keyed by (judge identity, conversation), so a resumed
run, a rerun of a stage or a second ``score`` of the same file asks the judge nothing twice.

Replies are stored as the judge wrote them, not as scores: a change of ``pattern`` or ``labels``
re-reads them for free. Failed requests are not stored (the next run tries again). SQLite's own
locking makes the file safe to share between the threads of a process and the ranks of a run;
each operation opens its own connection, so no connection crosses threads.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

_SCHEMA = """CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, identity TEXT NOT NULL, prompt TEXT NOT NULL, reply TEXT NOT NULL,
    created REAL NOT NULL)"""
#: Seconds a writer waits for another rank's write to finish.
_BUSY_TIMEOUT = 60.0


def cache_key(identity: str, conversation: list[dict]) -> str:
    prompt = json.dumps(conversation, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{identity}\0{prompt}".encode()).hexdigest()


class ReplyCache:
    """The SQLite file at ``path`` (created, with its directory, on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers do not wait for a writer
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)

    def get_many(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        if not keys:
            return found
        db = self._connect()
        try:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, reply FROM replies WHERE key IN ({marks})",
                                        chunk).fetchall())
        finally:
            db.close()
        return found

    def put_many(self, entries: list[tuple[str, str, list[dict], str]]) -> None:
        """``(key, identity, conversation, reply)`` tuples; a key already stored is kept."""
        if not entries:
            return
        now = time.time()
        db = self._connect()
        try:
            with db:  # one transaction
                db.executemany(
                    "INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?)",
                    [(key, identity, json.dumps(conversation, ensure_ascii=False), reply, now)
                     for key, identity, conversation, reply in entries])
        finally:
            db.close()

    def __len__(self) -> int:
        db = self._connect()
        try:
            return db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
        finally:
            db.close()
