"""The client's state directory: what survives close/reopen and a real SIGKILL mid-write,
file modes, bounds, and refusal of files that are not a client state."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixclient.client_state import (
    DATABASE_NAME,
    ClientState,
    ClientStateError,
    OutgoingMessage,
    Registration,
    StateFullError,
    StateLimits,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def outgoing(n: int, size: int = 100, fragments: int = 3) -> OutgoingMessage:
    body = hashlib.shake_256(n.to_bytes(8, "big")).digest(size)
    return OutgoingMessage(mid(n), f"address-{n}", body, fragments, 1000.0 + n)


def test_files_are_private_to_the_owner(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with ClientState(directory) as state:
        state.put_secret("identity", b"k" * 32)
        names = sorted(p.name for p in directory.iterdir())
        assert DATABASE_NAME in names and f"{DATABASE_NAME}-wal" in names
        for path in directory.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_an_unsafe_directory_or_file_is_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(ClientStateError, match="chmod 700"):
        ClientState(open_dir)
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o700)
    (loose / DATABASE_NAME).touch(mode=0o644)
    (loose / DATABASE_NAME).chmod(0o644)
    with pytest.raises(ClientStateError, match="chmod 600"):
        ClientState(loose)


def test_a_database_that_is_not_a_client_state_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "other"
    directory.mkdir(mode=0o700)
    path = directory / DATABASE_NAME
    path.touch(mode=0o600)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE something (x)")
    with pytest.raises(ClientStateError, match="not a trimix client state"):
        ClientState(directory)


def test_secrets_are_made_once_and_kept(tmp_path: Path) -> None:
    made: list[bytes] = []

    def generate() -> bytes:
        made.append(os.urandom(32))
        return made[-1]

    with ClientState(tmp_path / "s") as state:
        first = state.secret("link", generate)
        assert state.secret("link", generate) == first
        assert state.get_secret("e2e-x25519") is None
        state.put_secret("e2e-x25519", b"e" * 32)
        assert "6b6b" not in repr(state) and first.hex() not in repr(state)
    with ClientState(tmp_path / "s") as state:
        assert state.secret("link", generate) == first
        assert state.get_secret("e2e-x25519") == b"e" * 32
    assert len(made) == 1
    with ClientState(tmp_path / "s") as state, pytest.raises(ClientStateError):
        state.put_secret("../evil", b"x")


def test_the_registration_survives_a_reopen(tmp_path: Path) -> None:
    with ClientState(tmp_path / "s") as state:
        assert state.registration() is None
        state.set_registration(Registration(b"g" * 32, b"m" * 32))
        state.set_registration(Registration(b"h" * 32, b"n" * 32))
    with ClientState(tmp_path / "s") as state:
        registration = state.registration()
        assert registration == Registration(b"h" * 32, b"n" * 32)
        assert "hhhh" not in repr(registration) and "6868" not in repr(registration)
        with pytest.raises(ClientStateError):
            state.set_registration(Registration(b"g" * 31, b"m" * 32))


def test_the_outbox_keeps_messages_and_acked_fragments_across_a_reopen(tmp_path: Path) -> None:
    with ClientState(tmp_path / "s") as state:
        for n in range(4):
            state.accept_outgoing(outgoing(n))
        # idempotent; a message not in the outbox is ignored; a finished one leaves it
        state.record_acks([(mid(1), 2), (mid(1), 2), (mid(9), 0), (mid(3), 1)], [mid(3)])
        state.record_acks([(mid(1), 0)])
        with pytest.raises(ClientStateError, match="out of range"):
            state.record_acks([(mid(1), 3)])
        with pytest.raises(ClientStateError, match="already in the outbox"):
            state.accept_outgoing(outgoing(0))
        assert state.finish_outgoing(mid(0)) and not state.finish_outgoing(mid(0))
    with ClientState(tmp_path / "s") as state:
        pending = state.pending_outgoing()
    assert [m.message_id for m in pending] == [mid(1), mid(2)]
    assert pending[0].acked == {0, 2} and pending[1].acked == frozenset()
    assert pending[0].body == outgoing(1).body and pending[0].recipient == "address-1"
    assert pending[0].fragment_count == 3 and pending[0].accepted_at == 1001.0
    assert "address-1" not in repr(pending[0])


def test_the_outbox_is_bounded(tmp_path: Path) -> None:
    limits = StateLimits(max_outbox_messages=2, max_outbox_bytes=250)
    with ClientState(tmp_path / "s", limits) as state:
        state.accept_outgoing(outgoing(1, size=100))
        with pytest.raises(StateFullError):
            state.accept_outgoing(outgoing(2, size=151))
        state.accept_outgoing(outgoing(3, size=150))
        with pytest.raises(StateFullError):
            state.accept_outgoing(outgoing(4, size=1))
        assert len(state.pending_outgoing()) == 2


def test_reply_surbs_are_per_conversation_used_once_and_kept(tmp_path: Path) -> None:
    alice, bob = b"conversation-a", b"conversation-b"
    with ClientState(tmp_path / "s") as state:
        state.add_reply_surbs(alice, 5, [b"a1", b"a2"])
        state.add_reply_surbs(bob, 5, [b"b1"])
        state.add_reply_surbs(alice, 6, [b"a3"])
        assert state.take_reply_surb(alice) == b"a1"
    with ClientState(tmp_path / "s") as state:
        assert state.count_reply_surbs(alice) == 2
        assert state.take_reply_surb(alice, min_epoch=6) == b"a3"  # a2 was for epoch 5
        assert state.take_reply_surb(alice) is None
        assert state.take_reply_surb(bob) == b"b1"
        assert state.take_reply_surb(bob) is None


def test_reply_surbs_are_bounded_all_or_none(tmp_path: Path) -> None:
    limits = StateLimits(max_surbs_per_conversation=3, max_surbs=4)
    with ClientState(tmp_path / "s", limits) as state:
        state.add_reply_surbs(b"a", 1, [b"1", b"2"])
        with pytest.raises(StateFullError):
            state.add_reply_surbs(b"a", 1, [b"3", b"4"])
        state.add_reply_surbs(b"b", 1, [b"5", b"6"])
        with pytest.raises(StateFullError):
            state.add_reply_surbs(b"c", 1, [b"7"])
        assert state.count_reply_surbs(b"a") == 2 and state.count_reply_surbs(b"c") == 0


def test_delivered_ids_make_delivery_exactly_once_across_restarts(tmp_path: Path) -> None:
    with ClientState(tmp_path / "s") as state:
        assert state.mark_delivered(mid(1))
        assert not state.mark_delivered(mid(1))
    with ClientState(tmp_path / "s") as state:
        assert not state.mark_delivered(mid(1))
        assert state.was_delivered(mid(1)) and not state.was_delivered(mid(2))
        with pytest.raises(ClientStateError):
            state.mark_delivered(b"short")


def test_the_delivered_table_forgets_the_oldest_past_its_bound(tmp_path: Path) -> None:
    with ClientState(tmp_path / "s", StateLimits(max_delivered=5)) as state:
        for n in range(12):
            assert state.mark_delivered(mid(n))
        assert [state.was_delivered(mid(n)) for n in range(12)] == [False] * 7 + [True] * 5


WRITER = """
import sys
from pathlib import Path
from mixclient.client_state import ClientState, OutgoingMessage

state = ClientState(Path(sys.argv[1]))
n = 0
while True:
    body = n.to_bytes(8, "big") * 512
    state.accept_outgoing(OutgoingMessage(n.to_bytes(16, "big"), f"to-{n}", body, 2, float(n)))
    state.mark_delivered((n + 10**6).to_bytes(16, "big"))
    state.add_reply_surbs(b"conversation", 1, [body[:600]])
    print(n, flush=True)
    n += 1
"""


def test_a_sigkilled_writer_loses_nothing_it_committed(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    committed: list[int] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while len(committed) < 40 and time.monotonic() < deadline:
            ready, _, _ = select.select([child.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            line = child.stdout.readline()
            if not line:
                break
            committed.append(int(line))
        assert len(committed) >= 40, child.stderr.read().decode()[-2000:] if child.stderr else ""
        child.send_signal(signal.SIGKILL)  # while it goes on writing
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    with ClientState(directory) as state:
        pending = {m.message_id: m for m in state.pending_outgoing()}
        for n in committed:
            message = pending[n.to_bytes(16, "big")]
            assert message.body == n.to_bytes(8, "big") * 512 and message.recipient == f"to-{n}"
            assert state.was_delivered((n + 10**6).to_bytes(16, "big"))
        assert state.count_reply_surbs(b"conversation") >= len(committed)
        # every row that is there is whole: a message may be committed but not yet printed
        for message_id, message in pending.items():
            n = int.from_bytes(message_id, "big")
            assert message.body == n.to_bytes(8, "big") * 512
    with sqlite3.connect(directory / DATABASE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_inbound_fragments_survive_a_reopen_and_complete_once(tmp_path: Path) -> None:
    with ClientState(tmp_path / "s") as state:
        state.add_inbound([(mid(1), 0, b"\x00frame-0"), (mid(1), 1, b"\x00frame-1")])
        state.add_inbound([(mid(1), 1, b"\x00other")])  # a copy: the first one is kept
    with ClientState(tmp_path / "s") as state:
        assert state.inbound_frames() == [b"\x00frame-0", b"\x00frame-1"]
        assert state.complete_inbound(mid(1), b"envelope") is True
        assert state.inbound_frames() == []
        assert state.complete_inbound(mid(1), b"envelope") is False  # queued already
        first = state.next_inbox()
        assert first is not None and (first.message_id, first.envelope) == (mid(1), b"envelope")
        assert state.next_inbox(first) is None  # nothing after it
        assert state.deliver_inbox(mid(1)) is True
        assert state.deliver_inbox(mid(1)) is False  # once
        assert state.next_inbox() is None and state.was_delivered(mid(1))
        assert state.complete_inbound(mid(1), b"envelope") is False  # delivered already
        assert state.complete_inbound(mid(2), None) is False  # could not be opened: dropped


def test_the_inbox_is_read_in_order_without_taking_and_a_reused_seq_is_not_skipped(
    tmp_path: Path,
) -> None:
    with ClientState(tmp_path / "s") as state:
        for n in (1, 2, 3):
            assert state.complete_inbound(mid(n), f"envelope-{n}".encode())
        seen = []
        entry = state.next_inbox()
        while entry is not None:
            seen.append(entry.message_id)
            entry = state.next_inbox(entry)
        assert seen == [mid(1), mid(2), mid(3)]
        last = state.next_inbox(state.next_inbox(state.next_inbox()))
        assert last is not None and last.message_id == mid(3)
        # The last one is acknowledged, and the next message takes its place at the end: a
        # reader that stopped at the acknowledged one still finds the new one.
        assert state.deliver_inbox(mid(3)) and state.complete_inbound(mid(4), b"envelope-4")
        after = state.next_inbox(last)
        assert after is not None and after.message_id == mid(4)
        assert state.next_inbox(after) is None
        assert state.deliver_inbox(bytes(16)) is False  # never received: not marked delivered
        assert not state.was_delivered(bytes(16))


def test_inbound_and_inbox_are_bounded(tmp_path: Path) -> None:
    limits = StateLimits(max_inbound_bytes=100, max_inbox_messages=1)
    with ClientState(tmp_path / "s", limits) as state:
        state.add_inbound([(mid(1), 0, bytes(60))])
        with pytest.raises(StateFullError):
            state.add_inbound([(mid(1), 1, bytes(60))])
        assert len(state.inbound_frames()) == 1
        assert state.complete_inbound(mid(1), b"a")
        with pytest.raises(StateFullError):
            state.complete_inbound(mid(2), b"b")
    with ClientState(tmp_path / "t", StateLimits(max_inbox_bytes=10)) as state:
        assert state.complete_inbound(mid(1), bytes(8))
        with pytest.raises(StateFullError):  # 8 + 5 bytes waiting for the application
            state.complete_inbound(mid(2), bytes(5))
        assert state.deliver_inbox(mid(1))
        assert state.complete_inbound(mid(2), bytes(5))
        assert state.deliver_inbox(mid(2))
        assert state.complete_inbound(mid(3), bytes(50))  # alone, past the bound: let in
        with pytest.raises(StateFullError):
            state.complete_inbound(mid(4), bytes(1))


def test_surb_keys_are_kept_until_their_epoch_passes(tmp_path: Path) -> None:
    with ClientState(tmp_path / "s") as state:
        state.add_surb_keys([(mid(1), 5, b"keys-5"), (mid(2), 7, b"keys-7")])
    with ClientState(tmp_path / "s") as state:
        assert state.surb_keys(mid(1)) == b"keys-5"
        assert state.forget_surb_keys_before(6) == 1
        assert state.surb_keys(mid(1)) is None and state.surb_keys(mid(2)) == b"keys-7"
    with ClientState(tmp_path / "t", StateLimits(max_surb_keys=1)) as state:
        with pytest.raises(StateFullError):
            state.add_surb_keys([(mid(1), 5, b"a"), (mid(2), 5, b"b")])
