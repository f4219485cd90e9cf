"""`ClientState`: a client's state directory, one SQLite database (WAL) holding what must
outlive a restart.

    <state dir>/            mode 0700
        client.sqlite3      mode 0600 (its -wal and -shm files get the same mode)

Tables:

    secrets       name -> bytes: the identity/link key and the end-to-end keys
    registration  the one (gateway id, mailbox id) this client is registered with
    outbox        messages accepted for sending and not yet acknowledged: message id,
                  recipient address, the end-to-end ciphertext that is fragmented, the
                  fragment count, when accepted; `outbox_acked` the fragments acknowledged
                  so far, so that a restarted client resends only the rest
    reply_surbs   SURBs received from anonymous senders and not yet used, per conversation,
                  with the epoch whose keys they were built with; taking one deletes it
    delivered     ids of messages handed to the application: exactly once across restarts
    inbound       fragments received (and acknowledged to the gateway) of messages not yet
                  whole: a restarted client reassembles from them
    inbox         whole messages (opened) not yet handed to the application
    surb_keys     the keys of reply SURBs this client gave away, to open the replies

Durability: WAL with ``synchronous=FULL``; each call is one transaction, committed before
it returns, so a SIGKILL loses nothing a call returned from. Bounds: the outbox (messages
and bytes), the SURBs per conversation and in all, and the delivered ids (the oldest are
forgotten past `max_delivered`; keep it above what senders may still retransmit). Every
method takes a lock, so a Trio driver may call it from `trio.to_thread.run_sync`. No repr,
exception message or log line holds a secret, an id or message bytes.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from mixnode.sqlite_store import SqliteStore

DATABASE_NAME = "client.sqlite3"
APPLICATION_ID = 0x544D5843  # "TMXC": marks the file as a trimix client state
SCHEMA_VERSION = 2
NODE_ID_SIZE = 32
MAILBOX_ID_SIZE = 32
MESSAGE_ID_SIZE = 16
MAX_CONVERSATION_ID_SIZE = 64
SECRET_NAME = re.compile(r"[a-z0-9_.-]{1,64}")

_SCHEMA = """
CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE registration (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 0),
    gateway_id BLOB NOT NULL,
    mailbox_id BLOB NOT NULL
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    message_id BLOB NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    body BLOB NOT NULL,
    fragment_count INTEGER NOT NULL,
    accepted_at REAL NOT NULL
);
CREATE TABLE outbox_acked (
    message_id BLOB NOT NULL,
    fragment_index INTEGER NOT NULL,
    PRIMARY KEY (message_id, fragment_index)
) WITHOUT ROWID;
CREATE TABLE reply_surbs (
    seq INTEGER PRIMARY KEY,
    conversation BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    surb BLOB NOT NULL
);
CREATE INDEX reply_surbs_by_conversation ON reply_surbs (conversation, seq);
CREATE TABLE delivered (seq INTEGER PRIMARY KEY, message_id BLOB NOT NULL UNIQUE);
CREATE TABLE inbound (
    message_id BLOB NOT NULL,
    fragment_index INTEGER NOT NULL,
    frame BLOB NOT NULL,
    PRIMARY KEY (message_id, fragment_index)
) WITHOUT ROWID;
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY,
    message_id BLOB NOT NULL UNIQUE,
    envelope BLOB NOT NULL
);
CREATE TABLE surb_keys (
    surb_id BLOB PRIMARY KEY,
    epoch INTEGER NOT NULL,
    keys BLOB NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A whole message waiting in the inbox for the application."""

    seq: int
    message_id: bytes = field(repr=False)
    envelope: bytes = field(repr=False)


class ClientStateError(Exception):
    """The state directory cannot be used (wrong file, corrupt, unsafe mode, I/O error),
    or an argument is malformed."""


class StateFullError(ClientStateError):
    """A bound of the store is reached (outbox or SURBs); nothing was written."""


@dataclass(frozen=True, slots=True)
class StateLimits:
    max_outbox_messages: int = 1024
    max_outbox_bytes: int = 256 * 2**20
    max_surbs_per_conversation: int = 1000
    max_surbs: int = 100_000
    max_delivered: int = 1_000_000
    max_inbound_bytes: int = 64 * 2**20
    max_inbox_messages: int = 4096
    max_inbox_bytes: int = 256 * 2**20
    """Messages waiting for the application, in bytes (one is always let in when the inbox is
    empty): without it 4096 messages of 1 MiB from anyone who knows the address could wait
    on the user's disk while no application reads them."""
    max_surb_keys: int = 100_000

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer")


@dataclass(frozen=True, slots=True)
class Registration:
    """The gateway this client's mailbox is at, and the mailbox."""

    gateway_id: bytes = field(repr=False)
    mailbox_id: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message accepted for sending: `body` is the end-to-end ciphertext that is
    fragmented into `fragment_count` packets; `acked` the fragments already acknowledged."""

    message_id: bytes = field(repr=False)
    recipient: str = field(repr=False)
    body: bytes = field(repr=False)
    fragment_count: int
    accepted_at: float
    acked: frozenset[int] = frozenset()


class ClientState(SqliteStore):
    """A client's state directory. Open with `ClientState(path)`; `close()` when done."""

    SCHEMA = _SCHEMA
    APPLICATION_ID = APPLICATION_ID
    SCHEMA_VERSION = SCHEMA_VERSION
    KIND = "client state"
    ERROR = ClientStateError

    def __init__(self, directory: Path, limits: StateLimits | None = None) -> None:
        self._directory = Path(directory)
        self._limits = limits or StateLimits()
        path = self._directory / DATABASE_NAME
        _private_directory(self._directory)
        _private_file(path)
        self._open(path)

    def __repr__(self) -> str:
        return "ClientState(...)"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # secrets

    def secret(self, name: str, generate: Callable[[], bytes]) -> bytes:
        """The secret `name`, made with `generate()` and stored the first time."""
        _check_name(name)
        with self._write() as db:
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return bytes(row[0])
            value = generate()
            if not isinstance(value, bytes) or not value:
                raise ClientStateError("a secret must be non-empty bytes")
            db.execute("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))
            return value

    def get_secret(self, name: str) -> bytes | None:
        _check_name(name)
        with self._locked() as db:
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_secret(self, name: str, value: bytes) -> None:
        """Store (or replace) the secret `name`."""
        _check_name(name)
        if not isinstance(value, bytes) or not value:
            raise ClientStateError("a secret must be non-empty bytes")
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO secrets (name, value) VALUES (?, ?)", (name, value))

    # registration

    def set_registration(self, registration: Registration) -> None:
        _check_bytes(registration.gateway_id, NODE_ID_SIZE, "a gateway id")
        _check_bytes(registration.mailbox_id, MAILBOX_ID_SIZE, "a mailbox id")
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO registration (only_row, gateway_id, mailbox_id) "
                "VALUES (0, ?, ?)",
                (registration.gateway_id, registration.mailbox_id),
            )

    def registration(self) -> Registration | None:
        with self._locked() as db:
            row = db.execute("SELECT gateway_id, mailbox_id FROM registration").fetchone()
        return None if row is None else Registration(bytes(row[0]), bytes(row[1]))

    # the outbox

    def accept_outgoing(self, message: OutgoingMessage) -> None:
        """Keep `message` until `finish_outgoing`: it survives a restart from now on."""
        _check_bytes(message.message_id, MESSAGE_ID_SIZE, "a message id")
        if not isinstance(message.body, bytes) or not isinstance(message.recipient, str):
            raise ClientStateError("an outgoing message needs a str recipient and bytes body")
        if not isinstance(message.fragment_count, int) or message.fragment_count < 1:
            raise ClientStateError("an outgoing message has at least one fragment")
        limits = self._limits
        with self._write() as db:
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox"
            ).fetchone()
            if count >= limits.max_outbox_messages:
                raise StateFullError(f"the outbox holds {count} messages, its limit")
            if size + len(message.body) > limits.max_outbox_bytes:
                raise StateFullError(f"the outbox would exceed {limits.max_outbox_bytes} bytes")
            try:
                db.execute(
                    "INSERT INTO outbox (message_id, recipient, body, fragment_count, "
                    "accepted_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        message.message_id,
                        message.recipient,
                        message.body,
                        message.fragment_count,
                        message.accepted_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ClientStateError("a message with this id is already in the outbox") from None
            _insert_acked(db, message.message_id, message.acked, message.fragment_count)

    def record_acks(
        self, acked: Sequence[tuple[bytes, int]], finished: Sequence[bytes] = ()
    ) -> None:
        """One transaction for a poll's acknowledgements: fragments `acked` (message id,
        index; those of messages not in the outbox are ignored), then the `finished`
        messages dropped from the outbox."""
        by_message: dict[bytes, list[int]] = {}
        for message_id, index in acked:
            by_message.setdefault(message_id, []).append(index)
        with self._write() as db:
            for message_id, indexes in by_message.items():
                row = db.execute(
                    "SELECT fragment_count FROM outbox WHERE message_id = ?", (message_id,)
                ).fetchone()
                if row is not None:
                    _insert_acked(db, message_id, indexes, row[0])
            for message_id in finished:
                _forget_outgoing(db, message_id)

    def finish_outgoing(self, message_id: bytes) -> bool:
        """Drop a message from the outbox (acknowledged, or failed and reported)."""
        with self._write() as db:
            return _forget_outgoing(db, message_id)

    def pending_outgoing(self) -> list[OutgoingMessage]:
        """The messages still to be acknowledged, oldest first, with their acked fragments."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT message_id, recipient, body, fragment_count, accepted_at "
                "FROM outbox ORDER BY seq"
            ).fetchall()
            acked: dict[bytes, set[int]] = {}
            for message_id, index in db.execute(
                "SELECT message_id, fragment_index FROM outbox_acked"
            ):
                acked.setdefault(bytes(message_id), set()).add(index)
        return [
            OutgoingMessage(
                bytes(message_id),
                recipient,
                bytes(body),
                count,
                accepted_at,
                frozenset(acked.get(bytes(message_id), ())),
            )
            for message_id, recipient, body, count, accepted_at in rows
        ]

    # reply SURBs received from anonymous senders

    def add_reply_surbs(self, conversation: bytes, epoch: int, surbs: Sequence[bytes]) -> None:
        """Keep SURBs (built with `epoch`'s keys) to answer in `conversation`. All or none:
        `StateFullError` when they would pass a bound."""
        _check_conversation(conversation)
        if not all(isinstance(s, bytes) and s for s in surbs):
            raise ClientStateError("a SURB must be non-empty bytes")
        limits = self._limits
        with self._write() as db:
            total = db.execute("SELECT COUNT(*) FROM reply_surbs").fetchone()[0]
            mine = db.execute(
                "SELECT COUNT(*) FROM reply_surbs WHERE conversation = ?", (conversation,)
            ).fetchone()[0]
            if mine + len(surbs) > limits.max_surbs_per_conversation:
                raise StateFullError("too many unused SURBs in this conversation")
            if total + len(surbs) > limits.max_surbs:
                raise StateFullError("too many unused SURBs in all")
            db.executemany(
                "INSERT INTO reply_surbs (conversation, epoch, surb) VALUES (?, ?, ?)",
                [(conversation, epoch, surb) for surb in surbs],
            )

    def take_reply_surb(self, conversation: bytes, *, min_epoch: int = 0) -> bytes | None:
        """The oldest unused SURB of `conversation` built for `min_epoch` or later, deleted
        in the same transaction (a SURB is used once); older ones are discarded. None when
        there is none left."""
        _check_conversation(conversation)
        with self._write() as db:
            db.execute(
                "DELETE FROM reply_surbs WHERE conversation = ? AND epoch < ?",
                (conversation, min_epoch),
            )
            row = db.execute(
                "SELECT seq, surb FROM reply_surbs WHERE conversation = ? ORDER BY seq LIMIT 1",
                (conversation,),
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM reply_surbs WHERE seq = ?", (row[0],))
            return bytes(row[1])

    def count_reply_surbs(self, conversation: bytes) -> int:
        _check_conversation(conversation)
        with self._locked() as db:
            return int(
                db.execute(
                    "SELECT COUNT(*) FROM reply_surbs WHERE conversation = ?", (conversation,)
                ).fetchone()[0]
            )

    # exactly-once delivery

    def mark_delivered(self, message_id: bytes) -> bool:
        """Record that the message was handed to the application: True the first time,
        False if it already was (a duplicate, to drop)."""
        _check_bytes(message_id, MESSAGE_ID_SIZE, "a message id")
        with self._write() as db:
            try:
                db.execute("INSERT INTO delivered (message_id) VALUES (?)", (message_id,))
            except sqlite3.IntegrityError:
                return False
            db.execute(
                "DELETE FROM delivered WHERE seq <= (SELECT MAX(seq) FROM delivered) - ?",
                (self._limits.max_delivered,),
            )
            return True

    # received fragments, whole messages, and the keys of the reply SURBs given away

    def add_inbound(self, frames: Sequence[tuple[bytes, int, bytes]]) -> None:
        """Keep received fragments `(message id, fragment index, encoded frame)`; ones held
        already are ignored. `StateFullError` (nothing written) past the byte bound."""
        for message_id, index, frame in frames:
            _check_bytes(message_id, MESSAGE_ID_SIZE, "a message id")
            if not isinstance(index, int) or index < 0 or not isinstance(frame, bytes):
                raise ClientStateError("an inbound fragment needs an index and bytes")
        with self._write() as db:
            held = db.execute("SELECT COALESCE(SUM(LENGTH(frame)), 0) FROM inbound").fetchone()[0]
            if held + sum(len(f) for _, _, f in frames) > self._limits.max_inbound_bytes:
                raise StateFullError("the received fragments would pass their byte bound")
            db.executemany(
                "INSERT OR IGNORE INTO inbound (message_id, fragment_index, frame) "
                "VALUES (?, ?, ?)",
                frames,
            )

    def retain_inbound(self, message_ids: frozenset[bytes]) -> int:
        """Drop the fragments of every message not in `message_ids` (the reassembly gave
        them up, or they are copies of a delivered message); how many were dropped."""
        with self._write() as db:
            held = {bytes(r[0]) for r in db.execute("SELECT DISTINCT message_id FROM inbound")}
            stale = [(m,) for m in held - message_ids]
            db.executemany("DELETE FROM inbound WHERE message_id = ?", stale)
            return len(stale)

    def recent_delivered(self, limit: int) -> list[bytes]:
        """The ids of the `limit` messages delivered last, oldest first."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT message_id FROM delivered ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [bytes(r[0]) for r in reversed(rows)]

    def inbound_frames(self, message_id: bytes | None = None) -> list[bytes]:
        """Every fragment kept, message by message, for a restarted client to reassemble
        (or those of one message)."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT frame FROM inbound WHERE ?1 IS NULL OR message_id = ?1"
                " ORDER BY message_id, fragment_index",
                (message_id,),
            ).fetchall()
        return [bytes(row[0]) for row in rows]

    def complete_inbound(self, message_id: bytes, envelope: bytes | None) -> bool:
        """Message `message_id` is whole: drop its fragments and, unless `envelope` is None
        (it could not be opened) or it was delivered or queued before, queue it for the
        application. True when it was queued. `StateFullError` when the inbox is full
        (nothing changed)."""
        _check_bytes(message_id, MESSAGE_ID_SIZE, "a message id")
        with self._write() as db:
            known = db.execute(
                "SELECT 1 FROM delivered WHERE message_id = ? UNION ALL "
                "SELECT 1 FROM inbox WHERE message_id = ?",
                (message_id, message_id),
            ).fetchone()
            queue = envelope is not None and known is None
            if queue:
                count, held = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(envelope)), 0) FROM inbox"
                ).fetchone()
                assert envelope is not None
                if count >= self._limits.max_inbox_messages or (
                    count and held + len(envelope) > self._limits.max_inbox_bytes
                ):
                    raise StateFullError("the inbox is full")
                db.execute(
                    "INSERT INTO inbox (message_id, envelope) VALUES (?, ?)",
                    (message_id, envelope),
                )
            db.execute("DELETE FROM inbound WHERE message_id = ?", (message_id,))
            return queue

    def next_inbox(self, after: InboxEntry | None = None) -> InboxEntry | None:
        """The oldest message queued for the application, or with `after` the oldest queued
        after that one: (seq, message id, envelope). A message queued once `after` itself
        has left the inbox may reuse its seq, so the id tells them apart."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT seq, message_id, envelope FROM inbox WHERE seq >= ? ORDER BY seq LIMIT 2",
                (-1 if after is None else after.seq,),
            ).fetchall()
        for seq, message_id, envelope in rows:
            if after is None or seq > after.seq or bytes(message_id) != after.message_id:
                return InboxEntry(seq, bytes(message_id), bytes(envelope))
        return None

    def deliver_inbox(self, message_id: bytes) -> bool:
        """The application has message `message_id`: out of the inbox, into `delivered`.
        False (nothing changed) if it is not in the inbox (delivered before, or unknown)."""
        _check_bytes(message_id, MESSAGE_ID_SIZE, "a message id")
        with self._write() as db:
            removed = db.execute("DELETE FROM inbox WHERE message_id = ?", (message_id,))
            if removed.rowcount == 0:
                return False
            db.execute(
                "INSERT OR IGNORE INTO delivered (message_id) VALUES (?)", (message_id,)
            )
            db.execute(
                "DELETE FROM delivered WHERE seq <= (SELECT MAX(seq) FROM delivered) - ?",
                (self._limits.max_delivered,),
            )
            return True

    def add_surb_keys(self, entries: Sequence[tuple[bytes, int, bytes]]) -> None:
        """Keep `(SURB id, epoch, SURBKeys bytes)` of reply SURBs given away."""
        for surb_id, epoch, keys in entries:
            _check_bytes(surb_id, 16, "a SURB id")
            if not isinstance(epoch, int) or not isinstance(keys, bytes):
                raise ClientStateError("SURB keys need an epoch and bytes")
        with self._write() as db:
            count = db.execute("SELECT COUNT(*) FROM surb_keys").fetchone()[0]
            if count + len(entries) > self._limits.max_surb_keys:
                raise StateFullError("too many reply SURBs are outstanding")
            db.executemany(
                "INSERT OR REPLACE INTO surb_keys (surb_id, epoch, keys) VALUES (?, ?, ?)",
                entries,
            )

    def surb_keys(self, surb_id: bytes) -> bytes | None:
        """The keys of reply SURB `surb_id` (they stay: a SURB may be answered once, but a
        replayed answer is the node's to refuse), or None."""
        with self._locked() as db:
            row = db.execute("SELECT keys FROM surb_keys WHERE surb_id = ?", (surb_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def forget_surb_keys_before(self, epoch: int) -> int:
        """Drop the keys of reply SURBs built before `epoch` (no node can carry them)."""
        with self._write() as db:
            return db.execute("DELETE FROM surb_keys WHERE epoch < ?", (epoch,)).rowcount

    def was_delivered(self, message_id: bytes) -> bool:
        with self._locked() as db:
            row = db.execute(
                "SELECT 1 FROM delivered WHERE message_id = ?", (message_id,)
            ).fetchone()
        return row is not None


def _forget_outgoing(db: sqlite3.Connection, message_id: bytes) -> bool:
    db.execute("DELETE FROM outbox_acked WHERE message_id = ?", (message_id,))
    return db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,)).rowcount > 0


def _insert_acked(
    db: sqlite3.Connection, message_id: bytes, indexes: Iterable[int], fragment_count: int
) -> None:
    indexes = list(indexes)
    if not all(isinstance(i, int) and 0 <= i < fragment_count for i in indexes):
        raise ClientStateError("a fragment index is out of range")
    db.executemany(
        "INSERT OR IGNORE INTO outbox_acked (message_id, fragment_index) VALUES (?, ?)",
        [(message_id, index) for index in indexes],
    )


def _private_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = os.lstat(directory).st_mode
    except OSError as error:
        raise ClientStateError(f"cannot create the state directory: {error.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise ClientStateError("the state directory is not a directory")
    if stat.S_IMODE(mode) & 0o077:
        raise ClientStateError("the state directory is open to other users: chmod 700 it")


def _private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it (SQLite
    gives its -wal and -shm files the database file's mode); refuse a looser existing one."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise ClientStateError(f"cannot open the client state: {error.strerror}") from None
    try:
        mode = os.fstat(descriptor).st_mode
    finally:
        os.close(descriptor)
    if not stat.S_ISREG(mode) or stat.S_IMODE(mode) & 0o077:
        raise ClientStateError("the client state file is open to other users: chmod 600 it")


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
        raise ClientStateError("a secret name is 1 to 64 of a-z 0-9 _ . -")


def _check_bytes(value: object, size: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ClientStateError(f"{what} must be {size} bytes")


def _check_conversation(value: object) -> None:
    if not isinstance(value, bytes) or not 1 <= len(value) <= MAX_CONVERSATION_ID_SIZE:
        raise ClientStateError(f"a conversation id is 1 to {MAX_CONVERSATION_ID_SIZE} bytes")
