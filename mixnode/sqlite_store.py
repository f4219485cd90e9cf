"""What every trimix SQLite store shares: one connection guarded by a lock, WAL with
`synchronous=FULL` (a commit is on disk when it returns, so neither SIGKILL nor a power cut
loses it), a schema created once and recognised by its `application_id`, and transactions
that turn SQLite errors into the store's own error type (whose text holds no bound values).

Subclasses set `SCHEMA`, `APPLICATION_ID`, `SCHEMA_VERSION`, `KIND` (for messages) and
`ERROR` (the exception type), and call `_open(path)`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar


class SqliteStore:
    SCHEMA: ClassVar[str]
    APPLICATION_ID: ClassVar[int]
    SCHEMA_VERSION: ClassVar[int]
    KIND: ClassVar[str]
    ERROR: ClassVar[type[Exception]]

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _open(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise self.ERROR(f"cannot open the {self.KIND}: {error}") from None
        try:
            self._open_schema()
        except BaseException:
            self._db.close()
            raise

    def _open_schema(self) -> None:
        with self._locked() as db:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            db.execute("PRAGMA synchronous=FULL")
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            tables = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if application_id == 0 and tables == 0:
                db.executescript(
                    f"BEGIN IMMEDIATE; {self.SCHEMA}"
                    f"PRAGMA application_id={self.APPLICATION_ID};"
                    f"PRAGMA user_version={self.SCHEMA_VERSION}; COMMIT;"
                )
            elif application_id != self.APPLICATION_ID:
                raise self.ERROR(f"the database file is not a trimix {self.KIND}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != self.SCHEMA_VERSION:
                raise self.ERROR(f"unsupported {self.KIND} version {version}")

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """One locked section; inside, the caller opens a transaction where it needs one."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as error:
                if self._db.in_transaction:
                    self._db.rollback()
                raise self.ERROR(f"{self.KIND} failure: {error}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A locked write transaction, committed (durably) on success, rolled back otherwise."""
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.rollback()
                raise
            db.commit()
