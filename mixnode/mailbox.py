"""`MailboxStore`: a gateway's mailboxes in one SQLite database (WAL mode).

A client registers one mailbox, bound to its 32-byte static link key; the mailbox id is 32
random bytes and, with the gateway's node id, is the client's address. Senders' packets
that exit at this gateway are stored in the recipient's mailbox; the owner fetches them,
oldest first, and they are deleted only when the owner acknowledges them.

Durability: WAL with ``synchronous=FULL``. A commit appends the transaction to the WAL with
write() before it returns, so once ``store`` returns the message is in the kernel's page
cache, which outlives the process: SIGKILL cannot lose it (``NORMAL`` would already be
enough for that). ``FULL`` also fsyncs the WAL at each commit, so a stored message, for which
the sender may already hold a delivery acknowledgment, survives a power loss or kernel crash
too. That costs one fsync per transaction (≈ 0.4 ms here); ``store_many`` stores a batch in
one transaction.

Bounds: messages and payload bytes per mailbox, mailboxes in all, and payload bytes in all
mailboxes together (`MailboxLimits.max_total_bytes`). Anyone may send to any mailbox, and
anyone may register mailboxes (within the gateway's budgets), so without the last bound the
disk would be the limit: `max_mailboxes` × `max_bytes` is terabytes. The total is kept in
memory: counted from the database at its first use and again after an expiry or a failed
write, and set again by `counts`.

The ids of all mailboxes are kept in memory too (at most `max_mailboxes` of them), so that
`may_exist` answers on the event loop: most of what exits at a gateway is cover addressed
to a mailbox nobody has (a client's drop packets), and the daemon refuses it without a trip
to a worker thread and a query. The set is read from the database at open, kept with every
registration and expiry, and read again after a failed write.

Every method is one short transaction under a lock, so the daemon may call it from
``trio.to_thread.run_sync`` as well as from the event loop. No exception message and no repr
holds a mailbox id, an owner key or payload bytes. A failing database (disk full, I/O error)
raises `MailboxStorageError`; the transaction is rolled back and nothing is half-stored.
"""

from __future__ import annotations

import enum
import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mixnode.sqlite_store import SqliteStore

Rng = Callable[[int], bytes]

OWNER_KEY_SIZE = 32
MAILBOX_ID_SIZE = 32
MESSAGE_ID_SIZE = 16
APPLICATION_ID = 0x544D5842  # "TMXB": marks the file as a trimix mailbox store
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE mailboxes (
    mailbox_id BLOB PRIMARY KEY,
    owner_key BLOB NOT NULL UNIQUE,
    last_used REAL NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    byte_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX mailboxes_by_last_use ON mailboxes (last_used);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    mailbox_id BLOB NOT NULL,
    message_id BLOB NOT NULL,
    stored_at REAL NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE (mailbox_id, message_id)
);
CREATE INDEX messages_by_mailbox ON messages (mailbox_id, seq);
"""


class MailboxError(Exception):
    """Base of every error the mailbox store raises."""


class TooManyMailboxesError(MailboxError):
    """Registration refused: the gateway holds `max_mailboxes` mailboxes."""


class InvalidMailboxRequestError(MailboxError):
    """A malformed argument: a key or id of the wrong size, a bad limit, a non-bytes payload."""


class MailboxStorageError(MailboxError):
    """The database is not a mailbox store, is corrupt, or failed (disk full, I/O error)."""


@dataclass(frozen=True, slots=True)
class MailboxLimits:
    """Bounds on what a gateway stores. `max_messages` and `max_bytes` are per mailbox,
    `max_total_bytes` the payload bytes of all mailboxes together."""

    max_mailboxes: int = 10_000
    max_messages: int = 2_000
    max_bytes: int = 64 * 2**20
    expire_after: float = 30 * 24 * 3600.0
    max_total_bytes: int = 4 * 2**30

    def __post_init__(self) -> None:
        for name in ("max_mailboxes", "max_messages", "max_bytes", "max_total_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        if not self.expire_after > 0:
            raise ValueError("expire_after must be a positive number of seconds")


class StoreOutcome(enum.Enum):
    """What became of a payload offered to `store`; the values are fit for a metric label."""

    STORED = "stored"
    UNKNOWN_MAILBOX = "unknown_mailbox"
    FULL_MESSAGES = "mailbox_full_messages"
    FULL_BYTES = "mailbox_full_bytes"
    STORE_FULL = "store_full"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message waiting in a mailbox; `message_id` is what the owner acknowledges."""

    message_id: bytes = field(repr=False)
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MailboxCounts:
    """Totals over the whole store, for metrics."""

    mailboxes: int
    messages: int
    payload_bytes: int


class MailboxStore(SqliteStore):
    """The mailboxes of one gateway. `now` (float seconds) is always passed in."""

    SCHEMA = _SCHEMA
    APPLICATION_ID = APPLICATION_ID
    SCHEMA_VERSION = SCHEMA_VERSION
    KIND = "mailbox store"
    ERROR = MailboxStorageError

    def __init__(self, path: Path, limits: MailboxLimits, *, rng: Rng = os.urandom) -> None:
        self._path = Path(path)
        self._limits = limits
        self._rng = rng
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._held_bytes: int | None = None  # payload bytes in all mailboxes; None: count them
        self._ids: set[bytes] | None = None  # every mailbox's id; None: read them again
        self._open(self._path)
        try:
            with self._locked() as db:
                self._known_ids(db)
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"MailboxStore({self._path.name!r})"

    def __enter__(self) -> MailboxStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def limits(self) -> MailboxLimits:
        return self._limits

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # A write that fails is rolled back: the total kept in memory may no longer match.
        try:
            with super()._write() as db:
                yield db
        except BaseException:
            self._held_bytes = None
            self._ids = None
            raise

    def _known_ids(self, db: sqlite3.Connection) -> set[bytes]:
        """The ids of all mailboxes (under the lock)."""
        if self._ids is None:
            self._ids = {bytes(row[0]) for row in db.execute("SELECT mailbox_id FROM mailboxes")}
        return self._ids

    def may_exist(self, mailbox_id: bytes) -> bool:
        """False only if no mailbox has the id `mailbox_id`. Answered from memory, without
        the lock or a query, so the event loop may ask; True also when that is not known at
        the moment (after a failed write, until the next `store_many` reads the ids again)."""
        ids = self._ids
        return ids is None or mailbox_id in ids

    def _held(self, db: sqlite3.Connection) -> int:
        """Payload bytes in all mailboxes (under the lock)."""
        if self._held_bytes is None:
            self._held_bytes = int(
                db.execute("SELECT COALESCE(SUM(byte_count), 0) FROM mailboxes").fetchone()[0]
            )
        return self._held_bytes

    # the owner's side

    def register(self, owner_key: bytes, *, now: float) -> bytes:
        """The mailbox id of `owner_key`'s mailbox, created if it has none (idempotent; marks
        the mailbox used). Raises `TooManyMailboxesError` when the store is full."""
        _check_size(owner_key, OWNER_KEY_SIZE, "an owner key")
        with self._write() as db:
            row = db.execute(
                "SELECT mailbox_id FROM mailboxes WHERE owner_key = ?", (owner_key,)
            ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE mailboxes SET last_used = max(last_used, ?) WHERE owner_key = ?",
                    (now, owner_key),
                )
                return bytes(row[0])
            total = db.execute("SELECT COUNT(*) FROM mailboxes").fetchone()[0]
            if total >= self._limits.max_mailboxes:
                raise TooManyMailboxesError("this gateway holds its maximum number of mailboxes")
            mailbox_id = self._rng(MAILBOX_ID_SIZE)
            _check_size(mailbox_id, MAILBOX_ID_SIZE, "the rng's mailbox id")
            db.execute(
                "INSERT INTO mailboxes (mailbox_id, owner_key, last_used) VALUES (?, ?, ?)",
                (mailbox_id, owner_key, now),
            )
            self._known_ids(db).add(mailbox_id)  # forgotten if the commit fails
            return mailbox_id

    def mailbox_of(self, owner_key: bytes) -> bytes | None:
        """The id of `owner_key`'s mailbox, or None if it has none."""
        _check_size(owner_key, OWNER_KEY_SIZE, "an owner key")
        with self._locked() as db:
            row = db.execute(
                "SELECT mailbox_id FROM mailboxes WHERE owner_key = ?", (owner_key,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def fetch(
        self,
        owner_key: bytes,
        *,
        limit: int,
        now: float | None = None,
        exclude: Collection[bytes] = (),
    ) -> list[StoredMessage]:
        """Up to `limit` of the owner's messages, oldest first ([] if it has no mailbox),
        leaving out those whose ids are in `exclude`. With `now`, the mailbox is marked
        used."""
        _check_size(owner_key, OWNER_KEY_SIZE, "an owner key")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidMailboxRequestError("a fetch limit is a positive integer")
        with self._locked() as db:
            if now is not None:
                self._mark_used(db, owner_key, now)
            if not exclude:
                rows = db.execute(
                    "SELECT m.message_id, m.payload FROM mailboxes AS b"
                    " JOIN messages AS m ON m.mailbox_id = b.mailbox_id"
                    " WHERE b.owner_key = ? ORDER BY m.seq LIMIT ?",
                    (owner_key, limit),
                ).fetchall()
            else:  # the ids first (no payloads), then the payloads of those not left out
                candidates = db.execute(
                    "SELECT m.seq, m.message_id FROM mailboxes AS b"
                    " JOIN messages AS m ON m.mailbox_id = b.mailbox_id"
                    " WHERE b.owner_key = ? ORDER BY m.seq LIMIT ?",
                    (owner_key, limit + len(exclude)),
                ).fetchall()
                chosen = [seq for seq, message_id in candidates if bytes(message_id) not in exclude]
                rows = [
                    db.execute(
                        "SELECT message_id, payload FROM messages WHERE seq = ?", (seq,)
                    ).fetchone()
                    for seq in chosen[:limit]
                ]
        return [StoredMessage(bytes(message_id), bytes(payload)) for message_id, payload in rows]

    def ack(
        self, owner_key: bytes, message_ids: Iterable[bytes], *, now: float | None = None
    ) -> int:
        """Delete the owner's messages among `message_ids`; ids that are not in the owner's
        mailbox (another's, already acknowledged, malformed) are ignored. Returns how many
        were deleted. With `now`, the mailbox is marked used."""
        _check_size(owner_key, OWNER_KEY_SIZE, "an owner key")
        wanted = {m for m in message_ids if isinstance(m, bytes) and len(m) == MESSAGE_ID_SIZE}
        with self._write() as db:
            if now is not None:
                self._mark_used(db, owner_key, now)
            row = db.execute(
                "SELECT mailbox_id FROM mailboxes WHERE owner_key = ?", (owner_key,)
            ).fetchone()
            if row is None:
                return 0
            held = self._held(db)  # before the deletions
            mailbox_id = row[0]
            deleted = freed = 0
            for message_id in sorted(wanted):
                gone = db.execute(
                    "DELETE FROM messages WHERE mailbox_id = ? AND message_id = ?"
                    " RETURNING length(payload)",
                    (mailbox_id, message_id),
                ).fetchone()
                if gone is not None:
                    deleted += 1
                    freed += gone[0]
            if deleted:
                db.execute(
                    "UPDATE mailboxes SET message_count = message_count - ?,"
                    " byte_count = byte_count - ? WHERE mailbox_id = ?",
                    (deleted, freed, mailbox_id),
                )
                self._held_bytes = held - freed
            return deleted

    def _mark_used(self, db: sqlite3.Connection, owner_key: bytes, now: float) -> None:
        # Written once per thousandth of `expire_after` at most (43 minutes for 30 days): an
        # update that changes nothing commits nothing, where each write would cost the
        # client's every poll an fsync.
        db.execute(
            "UPDATE mailboxes SET last_used = ? WHERE owner_key = ? AND last_used < ?",
            (now, owner_key, now - self._limits.expire_after / 1000),
        )

    # the senders' side

    def store(self, mailbox_id: bytes, payload: bytes, *, now: float) -> StoreOutcome:
        """Store `payload` in mailbox `mailbox_id`; when this returns STORED, it is durable."""
        return self.store_many([(mailbox_id, payload)], now=now)[0]

    def store_many(
        self, deliveries: Sequence[tuple[bytes, bytes]], *, now: float
    ) -> list[StoreOutcome]:
        """`store` for each (mailbox id, payload), in order, in one durable transaction."""
        for _, payload in deliveries:
            if not isinstance(payload, bytes):
                raise InvalidMailboxRequestError("a payload is bytes")
        limits = self._limits
        outcomes = []
        with self._write() as db:
            held = self._held(db)
            self._known_ids(db)
            for mailbox_id, payload in deliveries:
                row = None
                if isinstance(mailbox_id, bytes) and len(mailbox_id) == MAILBOX_ID_SIZE:
                    row = db.execute(
                        "SELECT message_count, byte_count FROM mailboxes WHERE mailbox_id = ?",
                        (mailbox_id,),
                    ).fetchone()
                if row is None:
                    outcomes.append(StoreOutcome.UNKNOWN_MAILBOX)
                elif row[0] + 1 > limits.max_messages:
                    outcomes.append(StoreOutcome.FULL_MESSAGES)
                elif row[1] + len(payload) > limits.max_bytes:
                    outcomes.append(StoreOutcome.FULL_BYTES)
                elif held + len(payload) > limits.max_total_bytes:
                    outcomes.append(StoreOutcome.STORE_FULL)
                else:
                    self._insert(db, mailbox_id, payload, now)
                    held += len(payload)
                    outcomes.append(StoreOutcome.STORED)
            self._held_bytes = held
        return outcomes

    def _insert(
        self, db: sqlite3.Connection, mailbox_id: bytes, payload: bytes, now: float
    ) -> None:
        message_id = self._rng(MESSAGE_ID_SIZE)
        _check_size(message_id, MESSAGE_ID_SIZE, "the rng's message id")
        db.execute(
            "INSERT INTO messages (mailbox_id, message_id, stored_at, payload) VALUES (?, ?, ?, ?)",
            (mailbox_id, message_id, now, payload),
        )
        db.execute(
            "UPDATE mailboxes SET message_count = message_count + 1,"
            " byte_count = byte_count + ? WHERE mailbox_id = ?",
            (len(payload), mailbox_id),
        )

    # housekeeping

    def expire(self, *, now: float) -> int:
        """Delete the mailboxes unused for `expire_after` seconds, with their messages.
        Returns how many mailboxes went."""
        cutoff = now - self._limits.expire_after
        with self._write() as db:
            self._held_bytes = None  # counted again at the next use
            db.execute(
                "DELETE FROM messages WHERE mailbox_id IN"
                " (SELECT mailbox_id FROM mailboxes WHERE last_used <= ?)",
                (cutoff,),
            )
            gone = db.execute(
                "DELETE FROM mailboxes WHERE last_used <= ? RETURNING mailbox_id", (cutoff,)
            ).fetchall()
            self._known_ids(db).difference_update(bytes(row[0]) for row in gone)
            return len(gone)

    def counts(self) -> MailboxCounts:
        """Totals for metrics: mailboxes, messages and payload bytes held."""
        with self._locked() as db:
            mailboxes, messages, payload_bytes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(message_count), 0), COALESCE(SUM(byte_count), 0)"
                " FROM mailboxes"
            ).fetchone()
            self._held_bytes = int(payload_bytes)
        return MailboxCounts(mailboxes, messages, payload_bytes)


def _check_size(value: object, size: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise InvalidMailboxRequestError(f"{what} must be {size} bytes")
