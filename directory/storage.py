"""`AuthorityStore`: an authority's documents on disk, in one SQLite database (WAL mode).

Uploaded descriptors, votes (its own and its peers', and every version of an equivocating
authority's), equivocation evidence, reveals, the consensus body it computed, the signature
messages it holds and every consensus it published survive a restart, so a restarted
authority serves what it published and picks up the epoch in progress.

Votes and reveals carry a `relayed` flag: 0 for those held when their window closed (what
this authority relays to the others), 1 for those it learned through the relay.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from directory.errors import StorageError

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS descriptors (
    epoch INTEGER NOT NULL, node_id BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (epoch, node_id));
CREATE TABLE IF NOT EXISTS votes (
    epoch INTEGER NOT NULL, authority_key BLOB NOT NULL, digest BLOB NOT NULL,
    commitment BLOB NOT NULL, data BLOB NOT NULL, relayed INTEGER NOT NULL,
    PRIMARY KEY (epoch, digest));
CREATE TABLE IF NOT EXISTS evidence (
    epoch INTEGER NOT NULL, authority_key BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (epoch, authority_key));
CREATE TABLE IF NOT EXISTS reveals (
    epoch INTEGER NOT NULL, authority_key BLOB NOT NULL, reveal BLOB NOT NULL,
    relayed INTEGER NOT NULL,
    PRIMARY KEY (epoch, authority_key));
CREATE TABLE IF NOT EXISTS bodies (
    epoch INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS signatures (
    epoch INTEGER NOT NULL, authority_key BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (epoch, authority_key));
CREATE TABLE IF NOT EXISTS published (
    epoch INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""

_PER_EPOCH_TABLES = ("descriptors", "votes", "evidence", "reveals", "bodies", "signatures")


class AuthorityStore:
    """Synchronous and small: each call is one short transaction.

    Opening a file that is not a healthy database of this schema raises `StorageError`
    with a one-line reason."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"cannot open the database {path}: {error}") from None
        try:
            self._open(path)
        except BaseException:
            self._db.close()
            raise

    def _open(self, path: Path) -> None:
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            check = self._db.execute("PRAGMA quick_check").fetchone()
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            tables = self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.Error as error:
            raise StorageError(f"the database {path} is damaged or not SQLite: {error}") from None
        if check is None or check[0] != "ok":
            raise StorageError(f"the database {path} is damaged: {check[0] if check else '?'}")
        if version != SCHEMA_VERSION and (version != 0 or tables):
            raise StorageError(
                f"the database {path} has schema version {version}, not {SCHEMA_VERSION}; "
                "move it away to start afresh"
            )
        try:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as error:
            raise StorageError(f"cannot set up the database {path}: {error}") from None

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
        """The first vote stored for this authority (its own, for this one)."""
        return self._one(
            "SELECT data FROM votes WHERE epoch = ? AND authority_key = ? ORDER BY rowid LIMIT 1",
            (epoch, authority_key),
        )

    def vote_by_digest(self, epoch: int, digest: bytes) -> bytes | None:
        return self._one("SELECT data FROM votes WHERE epoch = ? AND digest = ?", (epoch, digest))

    def vote_digests(self, epoch: int, authority_key: bytes) -> list[bytes]:
        return self._all(
            "SELECT digest FROM votes WHERE epoch = ? AND authority_key = ? ORDER BY digest",
            (epoch, authority_key),
        )

    def vote_commitments(self, epoch: int, authority_key: bytes) -> list[bytes]:
        return self._all(
            "SELECT commitment FROM votes WHERE epoch = ? AND authority_key = ?",
            (epoch, authority_key),
        )

    def votes(self, epoch: int) -> list[bytes]:
        """Every vote held for the epoch, every version of an equivocator's included."""
        return self._all("SELECT data FROM votes WHERE epoch = ? ORDER BY digest", (epoch,))

    def vote_index(self, epoch: int) -> list[tuple[bytes, bytes]]:
        """(authority key, digest) of the votes held when votes closed (not relayed ones)."""
        rows = self._db.execute(
            "SELECT authority_key, digest FROM votes WHERE epoch = ? AND relayed = 0 "
            "ORDER BY authority_key, digest",
            (epoch,),
        )
        return [(bytes(key), bytes(digest)) for key, digest in rows]

    def vote_keys(self, epoch: int) -> list[bytes]:
        return self._all(
            "SELECT DISTINCT authority_key FROM votes WHERE epoch = ? ORDER BY authority_key",
            (epoch,),
        )

    def put_vote(
        self,
        epoch: int,
        authority_key: bytes,
        digest: bytes,
        commitment: bytes,
        data: bytes,
        *,
        relayed: bool,
    ) -> None:
        self._db.execute(
            "INSERT INTO votes (epoch, authority_key, digest, commitment, data, relayed) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (epoch, authority_key, digest, commitment, data, int(relayed)),
        )

    # equivocation evidence

    def evidence(self, epoch: int, authority_key: bytes) -> bytes | None:
        return self._one(
            "SELECT data FROM evidence WHERE epoch = ? AND authority_key = ?",
            (epoch, authority_key),
        )

    def evidence_keys(self, epoch: int) -> list[bytes]:
        return self._all(
            "SELECT authority_key FROM evidence WHERE epoch = ? ORDER BY authority_key", (epoch,)
        )

    def put_evidence(self, epoch: int, authority_key: bytes, data: bytes) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO evidence (epoch, authority_key, data) VALUES (?, ?, ?)",
            (epoch, authority_key, data),
        )

    # reveals

    def reveals(self, epoch: int, *, relayed: bool | None = None) -> list[tuple[bytes, bytes]]:
        """(authority key, reveal) held for the epoch; with `relayed`, only those so flagged."""
        query = "SELECT authority_key, reveal FROM reveals WHERE epoch = ?"
        arguments: tuple[object, ...] = (epoch,)
        if relayed is not None:
            query += " AND relayed = ?"
            arguments = (epoch, int(relayed))
        rows = self._db.execute(query + " ORDER BY authority_key", arguments)
        return [(bytes(key), bytes(reveal)) for key, reveal in rows]

    def put_reveal(self, epoch: int, authority_key: bytes, reveal: bytes, *, relayed: bool) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO reveals (epoch, authority_key, reveal, relayed) "
            "VALUES (?, ?, ?, ?)",
            (epoch, authority_key, reveal, int(relayed)),
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
