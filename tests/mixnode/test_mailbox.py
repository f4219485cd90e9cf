"""The gateway's mailbox store: ownership, limits, expiry, restarts and SIGKILL."""

from __future__ import annotations

import itertools
import random
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixnode.mailbox import (
    MAILBOX_ID_SIZE,
    MESSAGE_ID_SIZE,
    InvalidMailboxRequestError,
    MailboxCounts,
    MailboxError,
    MailboxLimits,
    MailboxStorageError,
    MailboxStore,
    StoredMessage,
    StoreOutcome,
    TooManyMailboxesError,
)
from tests.mixnode.killed_child import run_then_sigkill

ALICE = b"A" * 32
BOB = b"B" * 32
LIMITS = MailboxLimits(max_mailboxes=3, max_messages=5, max_bytes=1000, expire_after=100.0)


def open_store(path: Path, limits: MailboxLimits = LIMITS, seed: int = 1) -> MailboxStore:
    return MailboxStore(path / "mailboxes.sqlite", limits, rng=random.Random(seed).randbytes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MailboxStore]:
    with open_store(tmp_path) as opened:
        yield opened


def payloads(store: MailboxStore, owner: bytes) -> list[bytes]:
    return [m.payload for m in store.fetch(owner, limit=1000)]


def test_register_is_idempotent_and_one_mailbox_per_owner(store: MailboxStore) -> None:
    assert store.mailbox_of(ALICE) is None
    alice = store.register(ALICE, now=0.0)
    assert isinstance(alice, bytes) and len(alice) == MAILBOX_ID_SIZE
    assert store.register(ALICE, now=1.0) == alice
    assert store.mailbox_of(ALICE) == alice
    bob = store.register(BOB, now=1.0)
    assert bob != alice
    assert store.counts() == MailboxCounts(mailboxes=2, messages=0, payload_bytes=0)


def test_registration_is_refused_when_the_store_is_full(store: MailboxStore) -> None:
    owners = [bytes([i]) * 32 for i in range(3)]
    ids = [store.register(owner, now=0.0) for owner in owners]
    with pytest.raises(TooManyMailboxesError) as refused:
        store.register(BOB, now=0.0)
    assert isinstance(refused.value, MailboxError)
    assert store.mailbox_of(BOB) is None
    assert store.register(owners[1], now=5.0) == ids[1]  # an existing owner is still served


def test_store_then_fetch_oldest_first_then_ack(store: MailboxStore) -> None:
    mailbox = store.register(ALICE, now=0.0)
    for i in range(4):
        assert store.store(mailbox, b"message %d" % i, now=float(i)) is StoreOutcome.STORED
    fetched = store.fetch(ALICE, limit=3)
    assert [m.payload for m in fetched] == [b"message 0", b"message 1", b"message 2"]
    assert all(len(m.message_id) == MESSAGE_ID_SIZE for m in fetched)
    assert len({m.message_id for m in fetched}) == 3
    assert store.fetch(ALICE, limit=3) == fetched  # fetching deletes nothing
    assert store.ack(ALICE, [fetched[0].message_id, fetched[2].message_id]) == 2
    assert payloads(store, ALICE) == [b"message 1", b"message 3"]
    assert store.ack(ALICE, [fetched[0].message_id]) == 0  # already gone
    assert store.counts() == MailboxCounts(1, 2, len(b"message 1") * 2)


def test_a_client_never_reads_or_acks_another_mailbox(store: MailboxStore) -> None:
    alice = store.register(ALICE, now=0.0)
    store.register(BOB, now=0.0)
    store.store(alice, b"for alice only", now=1.0)
    assert store.fetch(BOB, limit=10) == []
    # not even by presenting Alice's mailbox id, or a key that owns no mailbox
    assert store.fetch(alice, limit=10) == []
    assert store.fetch(b"C" * 32, limit=10) == []
    alice_ids = [m.message_id for m in store.fetch(ALICE, limit=10)]
    assert store.ack(BOB, alice_ids) == 0
    assert store.ack(b"C" * 32, alice_ids) == 0
    assert payloads(store, ALICE) == [b"for alice only"]
    # Bob's ack of a mixture deletes only his own message
    store.store(store.register(BOB, now=2.0), b"for bob", now=2.0)
    bob_ids = [m.message_id for m in store.fetch(BOB, limit=10)]
    assert store.ack(BOB, alice_ids + bob_ids) == 1
    assert payloads(store, ALICE) == [b"for alice only"]
    assert payloads(store, BOB) == []


def test_unknown_or_malformed_mailbox_ids(store: MailboxStore) -> None:
    store.register(ALICE, now=0.0)
    assert store.store(b"\0" * 32, b"x", now=0.0) is StoreOutcome.UNKNOWN_MAILBOX
    assert store.store(b"short", b"x", now=0.0) is StoreOutcome.UNKNOWN_MAILBOX
    assert store.counts().messages == 0


def test_message_limit(store: MailboxStore) -> None:
    mailbox = store.register(ALICE, now=0.0)
    for _ in range(LIMITS.max_messages):
        assert store.store(mailbox, b"m", now=0.0) is StoreOutcome.STORED
    assert store.store(mailbox, b"m", now=0.0) is StoreOutcome.FULL_MESSAGES
    first = store.fetch(ALICE, limit=1)[0]
    assert store.ack(ALICE, [first.message_id]) == 1
    assert store.store(mailbox, b"m", now=0.0) is StoreOutcome.STORED
    assert store.counts().messages == LIMITS.max_messages


def test_byte_limit(store: MailboxStore) -> None:
    mailbox = store.register(ALICE, now=0.0)
    assert store.store(mailbox, bytes(600), now=0.0) is StoreOutcome.STORED
    assert store.store(mailbox, bytes(401), now=0.0) is StoreOutcome.FULL_BYTES
    assert store.store(mailbox, bytes(400), now=0.0) is StoreOutcome.STORED
    assert store.store(mailbox, b"1", now=0.0) is StoreOutcome.FULL_BYTES
    assert store.counts().payload_bytes == 1000
    ids = [m.message_id for m in store.fetch(ALICE, limit=10)]
    store.ack(ALICE, ids[:1])
    assert store.counts().payload_bytes == 400
    assert store.store(mailbox, bytes(600), now=0.0) is StoreOutcome.STORED


def test_limits_are_per_mailbox(store: MailboxStore) -> None:
    alice, bob = store.register(ALICE, now=0.0), store.register(BOB, now=0.0)
    for _ in range(LIMITS.max_messages):
        store.store(alice, b"a", now=0.0)
    assert store.store(bob, b"b", now=0.0) is StoreOutcome.STORED


def test_store_many_is_one_batch_with_an_outcome_each(store: MailboxStore) -> None:
    alice, bob = store.register(ALICE, now=0.0), store.register(BOB, now=0.0)
    outcomes = store.store_many(
        [(alice, b"1"), (b"\1" * 32, b"2"), (bob, bytes(1001)), (bob, b"3"), (alice, b"4")],
        now=3.0,
    )
    assert outcomes == [
        StoreOutcome.STORED,
        StoreOutcome.UNKNOWN_MAILBOX,
        StoreOutcome.FULL_BYTES,
        StoreOutcome.STORED,
        StoreOutcome.STORED,
    ]
    assert payloads(store, ALICE) == [b"1", b"4"]
    assert payloads(store, BOB) == [b"3"]
    assert store.store_many([], now=4.0) == []


def test_expiry_of_unused_mailboxes(store: MailboxStore) -> None:
    alice, bob = store.register(ALICE, now=0.0), store.register(BOB, now=0.0)
    store.store(alice, b"old", now=10.0)
    store.store(bob, b"kept", now=10.0)
    store.store(alice, b"senders do not keep a mailbox alive", now=90.0)
    store.fetch(BOB, limit=1, now=50.0)  # the owner's use does
    assert store.expire(now=99.0) == 0
    assert store.expire(now=100.0) == 1
    assert store.mailbox_of(ALICE) is None
    assert store.fetch(ALICE, limit=10) == []
    assert store.store(alice, b"late", now=101.0) is StoreOutcome.UNKNOWN_MAILBOX
    assert store.counts() == MailboxCounts(1, 1, 4)
    store.ack(BOB, [], now=120.0)
    store.register(BOB, now=140.0)
    assert store.expire(now=239.0) == 0
    assert store.expire(now=240.0) == 1
    assert store.counts() == MailboxCounts(0, 0, 0)
    assert store.register(ALICE, now=300.0) != alice  # a fresh mailbox, a fresh address


def test_may_exist_knows_every_mailbox_from_memory(tmp_path: Path) -> None:
    """`may_exist` is False exactly for ids no mailbox has: through registrations, a
    reopen (read from the file), expiry, and a registration whose commit failed."""
    stranger = bytes(range(MAILBOX_ID_SIZE))
    with open_store(tmp_path) as store:
        assert not store.may_exist(stranger)
        alice = store.register(ALICE, now=0.0)
        assert store.may_exist(alice) and not store.may_exist(stranger)
    store = open_store(tmp_path, seed=2)  # fresh mailbox ids
    assert store.may_exist(alice) and not store.may_exist(stranger)
    bob = store.register(BOB, now=50.0)
    assert store.expire(now=100.0) == 1
    assert not store.may_exist(alice) and store.may_exist(bob)
    store._db.execute("PRAGMA query_only = ON")  # the test's stand-in for a failing disk
    with pytest.raises(MailboxStorageError):
        store.register(ALICE, now=101.0)
    assert store.may_exist(stranger)  # not known after the failure: ask the database
    store._db.execute("PRAGMA query_only = OFF")
    assert store.store(stranger, b"x", now=102.0) is StoreOutcome.UNKNOWN_MAILBOX
    assert not store.may_exist(stranger) and store.may_exist(bob)  # read again
    assert store.mailbox_of(ALICE) is None
    store.close()


def test_polls_write_the_last_use_once_per_thousandth_of_the_expiry(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:  # expire_after = 100 s: a write per 0.1 s at most
        store.register(ALICE, now=0.0)
        store.fetch(ALICE, limit=1, now=50.0)
        wal = next(tmp_path.glob("*-wal"))
        size = wal.stat().st_size
        for step in range(100):  # polls within the same 0.1 s: nothing to write or sync
            store.fetch(ALICE, limit=1, now=50.0 + step / 1000)
            store.ack(ALICE, [], now=50.0 + step / 1000)
        assert wal.stat().st_size == size
        assert store.expire(now=149.99) == 0
        assert store.expire(now=150.0) == 1  # the use at 50.099 s was not written


def test_time_never_runs_backwards_for_last_use(store: MailboxStore) -> None:
    store.register(ALICE, now=50.0)
    store.register(ALICE, now=10.0)
    assert store.expire(now=149.0) == 0


def test_close_and_reopen_keeps_everything(tmp_path: Path) -> None:
    with open_store(tmp_path) as first:
        alice = first.register(ALICE, now=0.0)
        for i in range(3):
            first.store(alice, b"%d" % i, now=1.0)
        before = first.fetch(ALICE, limit=10)
    with open_store(tmp_path, seed=2) as second:
        assert second.mailbox_of(ALICE) == alice
        assert second.fetch(ALICE, limit=10) == before
        assert second.counts() == MailboxCounts(1, 3, 3)
        assert second.register(ALICE, now=2.0) == alice


def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    with sqlite3.connect(tmp_path / "mailboxes.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_mailbox_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mailboxes.sqlite").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(MailboxStorageError):
        open_store(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "mailboxes.sqlite") as db:
        db.execute("CREATE TABLE unrelated (x)")
    with pytest.raises(MailboxStorageError, match="not a trimix mailbox store"):
        open_store(other)


@pytest.mark.parametrize("bad_key", [b"", b"x" * 31, b"x" * 33, "x" * 32, None])
def test_malformed_owner_keys_are_refused(store: MailboxStore, bad_key: object) -> None:
    for call in (
        lambda: store.register(bad_key, now=0.0),  # type: ignore[arg-type]
        lambda: store.mailbox_of(bad_key),  # type: ignore[arg-type]
        lambda: store.fetch(bad_key, limit=1),  # type: ignore[arg-type]
        lambda: store.ack(bad_key, []),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidMailboxRequestError):
            call()


def test_other_malformed_arguments(store: MailboxStore) -> None:
    mailbox = store.register(ALICE, now=0.0)
    for limit in (0, -1, True):
        with pytest.raises(InvalidMailboxRequestError):
            store.fetch(ALICE, limit=limit)
    with pytest.raises(InvalidMailboxRequestError):
        store.store(mailbox, "text", now=0.0)  # type: ignore[arg-type]
    assert store.ack(ALICE, [b"short", "text", None]) == 0  # type: ignore[list-item]
    with pytest.raises(ValueError):
        MailboxLimits(max_messages=0)
    with pytest.raises(ValueError):
        MailboxLimits(expire_after=0.0)


def test_no_id_key_or_payload_in_reprs_or_errors(store: MailboxStore) -> None:
    mailbox = store.register(ALICE, now=0.0)
    store.store(mailbox, b"PAYLOAD-SECRET", now=0.0)
    message = store.fetch(ALICE, limit=1)[0]
    text = repr(message) + repr(store) + str(store.counts())
    for secret in (mailbox, ALICE, message.message_id, b"PAYLOAD-SECRET"):
        assert secret.hex() not in text and repr(secret) not in text
    assert "PAYLOAD" not in text
    with pytest.raises(MailboxError) as error:
        store.register(ALICE[:31], now=0.0)
    assert repr(ALICE[:31]) not in str(error.value)


def test_concurrent_threads_are_serialised(tmp_path: Path) -> None:
    store = open_store(tmp_path, MailboxLimits(max_messages=150))
    mailbox = store.register(ALICE, now=0.0)
    errors: list[BaseException] = []

    def writer(tag: int) -> None:
        try:
            for i in range(50):
                store.store(mailbox, b"%d-%d" % (tag, i), now=0.0)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert store.counts().messages == 150  # the limit held under contention
    assert len(store.fetch(ALICE, limit=1000)) == 150
    store.close()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=5))
def test_payload_round_trip(store: MailboxStore, sent: list[bytes]) -> None:
    mailbox = store.register(ALICE, now=0.0)
    assert store.store_many([(mailbox, p) for p in sent], now=1.0) == [StoreOutcome.STORED] * len(
        sent
    )
    received = store.fetch(ALICE, limit=10)
    assert [m.payload for m in received] == sent
    assert all(isinstance(m, StoredMessage) for m in received)
    assert store.ack(ALICE, [m.message_id for m in received]) == len(sent)
    assert store.counts().messages == 0



# the bound on all mailboxes together

OWNERS = [bytes([i]) * 32 for i in range(3)]
TOTAL = MailboxLimits(
    max_mailboxes=3, max_messages=50, max_bytes=1000, max_total_bytes=1500, expire_after=100.0
)


def test_all_mailboxes_together_hold_at_most_max_total_bytes(tmp_path: Path) -> None:
    """Anyone may send to any mailbox and register mailboxes: without a bound on them all,
    max_mailboxes × max_bytes (terabytes at the defaults) is the bound, i.e. the disk."""
    store = open_store(tmp_path, TOTAL)
    a, b, c = (store.register(owner, now=0.0) for owner in OWNERS)
    assert store.store(a, bytes(800), now=0.0) is StoreOutcome.STORED
    assert store.store_many([(b, bytes(800)), (b, bytes(700)), (c, bytes(1))], now=0.0) == [
        StoreOutcome.STORE_FULL, StoreOutcome.STORED, StoreOutcome.STORE_FULL,
    ]
    assert store.store(b, bytes(301), now=0.0) is StoreOutcome.FULL_BYTES  # its own bound first
    store.ack(OWNERS[0], [m.message_id for m in store.fetch(OWNERS[0], limit=5)])
    assert store.store(c, bytes(800), now=0.0) is StoreOutcome.STORED  # freed by the ack
    assert store.store(c, bytes(1), now=0.0) is StoreOutcome.STORE_FULL
    store.close()
    store = open_store(tmp_path, TOTAL)  # the total is counted again from the file
    assert store.store(a, bytes(1), now=1.0) is StoreOutcome.STORE_FULL
    assert store.counts().payload_bytes == 1500
    store.register(OWNERS[0], now=500.0)  # the third lapses, and its mail with it
    store.register(OWNERS[1], now=500.0)
    assert store.expire(now=150.0) == 1
    assert store.store(a, bytes(800), now=150.0) is StoreOutcome.STORED
    assert store.counts().payload_bytes == 700 + 800
    store.close()


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("store"), st.integers(0, 2), st.integers(1, 700)),
        st.tuples(st.just("ack"), st.integers(0, 2), st.integers(1, 3)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(OPERATIONS)
def test_the_total_bound_holds_for_any_sequence_of_stores_acks_and_restarts(
    operations: list[tuple[str, int, int]],
) -> None:
    """Against a model: each store is refused exactly when its mailbox's bounds or the
    total's would be passed, and the total the store keeps always matches what it holds."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        store = open_store(path, TOTAL)
        boxes = [store.register(owner, now=0.0) for owner in OWNERS]
        held: list[list[int]] = [[], [], []]
        seeds = itertools.count(2)
        for kind, box, size in operations:
            if kind == "store":
                total = sum(map(sum, held))
                if len(held[box]) + 1 > TOTAL.max_messages:
                    expected = StoreOutcome.FULL_MESSAGES
                elif sum(held[box]) + size > TOTAL.max_bytes:
                    expected = StoreOutcome.FULL_BYTES
                elif total + size > TOTAL.max_total_bytes:
                    expected = StoreOutcome.STORE_FULL
                else:
                    expected = StoreOutcome.STORED
                    held[box].append(size)
                assert store.store(boxes[box], bytes(size), now=1.0) is expected
            elif kind == "ack":
                oldest = store.fetch(OWNERS[box], limit=size)
                assert store.ack(OWNERS[box], [m.message_id for m in oldest]) == len(oldest)
                del held[box][: len(oldest)]
            else:
                store.close()
                store = open_store(path, TOTAL, seed=next(seeds))  # fresh message ids
            assert store._held_bytes in (None, sum(map(sum, held)))  # None: counted at next use
        assert store.counts().payload_bytes == sum(map(sum, held))
        store.close()


def test_a_full_disk_rolls_the_batch_back_and_the_store_goes_on(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (its page limit lowered to the file's size,
    as a full disk would): the batch is refused whole with a clear error that names nothing,
    the total is counted again, and once there is room the store works as before."""
    limits = MailboxLimits(max_bytes=100_000, max_total_bytes=50_000)
    store = open_store(tmp_path, limits)
    mailbox = store.register(ALICE, now=0.0)
    assert store.store(mailbox, b"kept", now=0.0) is StoreOutcome.STORED
    database = store._db  # the test's stand-in for the disk
    pages = database.execute("PRAGMA page_count").fetchone()[0]
    database.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(MailboxStorageError) as error:
        store.store_many([(mailbox, b"SECRET" + bytes(20_000))] * 2, now=1.0)
    assert "full" in str(error.value)
    assert mailbox.hex() not in str(error.value) and "SECRET" not in str(error.value)
    assert payloads(store, ALICE) == [b"kept"]
    database.execute("PRAGMA max_page_count = 1073741823")
    assert store.store(mailbox, bytes(40_000), now=2.0) is StoreOutcome.STORED
    assert store.store(mailbox, bytes(9_997), now=2.0) is StoreOutcome.STORE_FULL  # 4 + 40,000
    assert store.counts().payload_bytes == 40_004
    store.close()

# durability against SIGKILL

CHILD = """
import sys
from pathlib import Path
from mixnode.mailbox import MailboxLimits, MailboxStore, StoreOutcome
store = MailboxStore(Path(sys.argv[1]) / "mailboxes.sqlite", MailboxLimits())
owners = [bytes([i]) * 32 for i in range(int(sys.argv[2]))]
mailboxes = [store.register(owner, now=0.0) for owner in owners]
for i in range(int(sys.argv[3])):
    for mailbox in mailboxes:
        assert store.store(mailbox, b"message %d" % i, now=1.0) is StoreOutcome.STORED
sys.stdout.write("ready\\n")
sys.stdout.flush()
import time
time.sleep(600)
"""


def test_every_stored_message_survives_sigkill(tmp_path: Path) -> None:
    owners, per_owner = 3, 40
    run_then_sigkill(CHILD, str(tmp_path), str(owners), str(per_owner))
    with MailboxStore(tmp_path / "mailboxes.sqlite", MailboxLimits()) as reopened:
        assert reopened.counts().messages == owners * per_owner
        expected = [b"message %d" % i for i in range(per_owner)]
        for owner in (bytes([i]) * 32 for i in range(owners)):
            assert payloads(reopened, owner) == expected
