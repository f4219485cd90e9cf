"""`AuthorityStore`: an authority's documents on disk, in one SQLite database (WAL mode).

Uploaded descriptors, votes (its own and its peers'), the consensus body it computed, the
signature messages it holds and every consensus it published survive a restart, so a
restarted authority serves what it published and picks up the epoch in progress.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS descriptors (
    epoch INTEGER NOT NULL, node_id BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (epoch, node_id));
CREATE TABLE IF NOT EXISTS votes (
    epoch INTEGER NOT NULL, authority_key BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (epoch, authority_key));
CREATE TABLE IF NOT EXISTS bodies (
    epoch INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS signatures (
    epoch INTEGER NOT NULL, authority_key BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (epoch, authority_key));
CREATE TABLE IF NOT EXISTS published (
    epoch INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""

_PER_EPOCH_TABLES = ("descriptors", "votes", "bodies", "signatures")


class AuthorityStore:
    """Synchronous and small: each call is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # descriptors

    def descriptor(self, epoch: int, node_id: bytes) -> bytes | None:
        return self._one(
            "SELECT data FROM descriptors WHERE epoch = ? AND node_id = ?", (epoch, node_id)
        )

    def descriptors(self, epoch: int) -> list[bytes]:
        return self._all("SELECT data FROM descriptors WHERE epoch = ? ORDER BY node_id", (epoch,))

    def descriptor_count(self, epoch: int) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM descriptors WHERE epoch = ?", (epoch,)
        ).fetchone()
        return int(row[0])

    def put_descriptor(self, epoch: int, node_id: bytes, data: bytes) -> None:
        self._db.execute(
            "INSERT INTO descriptors (epoch, node_id, data) VALUES (?, ?, ?)",
            (epoch, node_id, data),
        )

    # votes

    def vote(self, epoch: int, authority_key: bytes) -> bytes | None:
        return self._one(
            "SELECT data FROM votes WHERE epoch = ? AND authority_key = ?", (epoch, authority_key)
        )

    def votes(self, epoch: int) -> list[bytes]:
        return self._all("SELECT data FROM votes WHERE epoch = ? ORDER BY authority_key", (epoch,))

    def vote_keys(self, epoch: int) -> list[bytes]:
        return self._all(
            "SELECT authority_key FROM votes WHERE epoch = ? ORDER BY authority_key", (epoch,)
        )

    def put_vote(self, epoch: int, authority_key: bytes, data: bytes) -> None:
        self._db.execute(
            "INSERT INTO votes (epoch, authority_key, data) VALUES (?, ?, ?)",
            (epoch, authority_key, data),
        )

    # the computed consensus body

    def body(self, epoch: int) -> bytes | None:
        return self._one("SELECT data FROM bodies WHERE epoch = ?", (epoch,))

    def put_body(self, epoch: int, data: bytes) -> None:
        self._db.execute("INSERT INTO bodies (epoch, data) VALUES (?, ?)", (epoch, data))

    # signature messages

    def signature(self, epoch: int, authority_key: bytes) -> bytes | None:
        return self._one(
            "SELECT data FROM signatures WHERE epoch = ? AND authority_key = ?",
            (epoch, authority_key),
        )

    def signatures(self, epoch: int) -> list[bytes]:
        return self._all(
            "SELECT data FROM signatures WHERE epoch = ? ORDER BY authority_key", (epoch,)
        )

    def signature_keys(self, epoch: int) -> list[bytes]:
        return self._all(
            "SELECT authority_key FROM signatures WHERE epoch = ? ORDER BY authority_key", (epoch,)
        )

    def put_signature(self, epoch: int, authority_key: bytes, data: bytes) -> None:
        self._db.execute(
            "INSERT INTO signatures (epoch, authority_key, data) VALUES (?, ?, ?)",
            (epoch, authority_key, data),
        )

    # published consensuses

    def published(self, epoch: int) -> bytes | None:
        return self._one("SELECT data FROM published WHERE epoch = ?", (epoch,))

    def put_published(self, epoch: int, data: bytes) -> None:
        """Store (or replace, when more signatures arrived) the published consensus."""
        self._db.execute(
            "INSERT OR REPLACE INTO published (epoch, data) VALUES (?, ?)", (epoch, data)
        )

    def latest_published_epoch(self) -> int | None:
        row = self._db.execute("SELECT MAX(epoch) FROM published").fetchone()
        return None if row[0] is None else int(row[0])

    # housekeeping

    def prune(self, *, documents_before: int, published_before: int) -> None:
        """Forget working documents of epochs before `documents_before` and published
        consensuses before `published_before`."""
        self._db.execute("BEGIN")
        try:
            for table in _PER_EPOCH_TABLES:
                self._db.execute(f"DELETE FROM {table} WHERE epoch < ?", (documents_before,))
            self._db.execute("DELETE FROM published WHERE epoch < ?", (published_before,))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _one(self, query: str, arguments: tuple[object, ...]) -> bytes | None:
        row = self._db.execute(query, arguments).fetchone()
        return None if row is None else bytes(row[0])

    def _all(self, query: str, arguments: tuple[object, ...]) -> list[bytes]:
        return [bytes(row[0]) for row in self._db.execute(query, arguments)]
