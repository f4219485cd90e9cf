"""Worker processes for the packet crypto (`workers = N` in the node's configuration).

The main process keeps the links, the scheduler and everything else; each worker runs the
same `PacketPipeline` (unwrap, replay check, delay cap) on the packets it is given. A packet
goes to worker `BLAKE2b(α) mod N`, so every copy of a packet meets the same worker and its
own replay filters (in `replay/worker-K/`): a replay is caught as surely as with one process,
and no two processes ever write one filter. The main process writes each new filter file out
beforehand (`replay_filters`, in a thread) and only then announces the epoch, so that a
worker opens its files and never stalls its packets creating one. Workers read the Sphinx
keys from the node's key directory when the main process announces a new epoch.

Between the main process and a worker: a socket pair, records `kind u8 ‖ length u32 BE ‖
body`. Main → worker: PACKET (the packet), VIEW (pickled `WorkerView`), STOP. Worker → main:
FORWARD (`deadline f64 BE ‖ next node id 32 ‖ packet`: a packet to send on, the common case,
packed by hand because pickling it costs 8 µs at each end) or OUTCOME (any other `Outcome`,
pickled), the deadline relative to arrival, in the order the packets were sent, so the main
process pairs each with the arrival time it noted. Both ends are our own processes; nothing
from the network is ever unpickled.
"""

from __future__ import annotations

import hashlib
import pickle
import socket
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from mixnode.key_ring import SphinxKeyRing
from mixnode.packet_pipeline import (
    Dropped,
    EpochView,
    Outcome,
    PacketPipeline,
    Scheduled,
    SendPacket,
)
from mixnode.replay_filter import ReplayFilters
from sphinx_packets import Geometry
from sphinx_packets.geometry import AD_SIZE, GROUP_ELEMENT_SIZE

PACKET = 1
VIEW = 2
STOP = 3
OUTCOME = 4
FORWARD = 5
_RECORD = struct.Struct(">BI")
_DEADLINE = struct.Struct(">d")
_NODE_ID_END = _DEADLINE.size + 32
READ_SIZE = 1 << 16
"""Bytes asked of one read on a worker's socket. Not more: a read of 256 KiB made Python
allocate (and the kernel map and unmap) a buffer that large each time, 20 µs against 2 µs
for 64 KiB on the reference machine, paid by the worker and the main process per batch."""
MAX_IN_FLIGHT = 128
"""Packets handed to one worker and not yet answered. `submit` waits for room (so a full
worker slows the links down, as one process would); `submit_nowait` drops (counted)."""


@dataclass(frozen=True, slots=True)
class WorkerView:
    """What a worker needs to process packets of an epoch."""

    epoch: int
    max_delay_ms: int
    known_nodes: frozenset[bytes] = field(repr=False)
    loop_recipient: bytes = field(repr=False)


def record(kind: int, body: bytes) -> bytes:
    return _RECORD.pack(kind, len(body)) + body


def encode_outcome(outcome: Outcome) -> bytes:
    """One worker → main record for `outcome`."""
    if isinstance(outcome, Scheduled):
        action = outcome.action
        if isinstance(action, SendPacket) and not action.cover and len(action.next_node_id) == 32:
            return record(
                FORWARD, _DEADLINE.pack(outcome.deadline) + action.next_node_id + action.packet
            )
    return record(OUTCOME, pickle.dumps(outcome))


def decode_outcome(kind: int, body: bytes) -> Outcome:
    """The `Outcome` of a FORWARD or OUTCOME record."""
    if kind == FORWARD:
        (deadline,) = _DEADLINE.unpack_from(body)
        return Scheduled(
            deadline, SendPacket(body[_DEADLINE.size : _NODE_ID_END], body[_NODE_ID_END:])
        )
    outcome: Outcome = pickle.loads(body)
    return outcome


def split_records(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete records off the front of `buffer`."""
    records = []
    offset = 0
    while len(buffer) - offset >= _RECORD.size:
        kind, size = _RECORD.unpack_from(buffer, offset)
        end = offset + _RECORD.size + size
        if len(buffer) < end:
            break
        records.append((kind, bytes(buffer[offset + _RECORD.size : end])))
        offset = end
    del buffer[:offset]
    return records


def worker_replay_directory(data_dir: Path, index: int) -> Path:
    return data_dir / "replay" / f"worker-{index}"


def worker_for(packet: bytes, workers: int) -> int:
    alpha = packet[AD_SIZE : AD_SIZE + GROUP_ELEMENT_SIZE]
    return int.from_bytes(hashlib.blake2b(alpha, digest_size=8).digest(), "big") % workers


class CryptoWorkers:
    """N worker processes and the tasks that feed them (main-process side)."""

    def __init__(
        self,
        count: int,
        geometry: Geometry,
        data_dir: Path,
        *,
        is_gateway: bool,
        expected_items: int,
        on_outcome: Callable[[Outcome, float, Hashable], None],
        on_busy: Callable[[], None],
    ) -> None:
        self.count = count
        self.geometry = geometry
        self.data_dir = data_dir
        self.is_gateway = is_gateway
        self.expected_items = expected_items
        self.on_outcome = on_outcome
        self.on_busy = on_busy
        self._processes: list[subprocess.Popen[bytes]] = []
        self._streams: list[trio.SocketStream] = []
        self._outboxes: list[trio.MemorySendChannel[bytes]] = []
        # Per worker, (arrival time, source) of each packet in flight, in the order sent.
        self._arrivals: list[deque[tuple[float, Hashable]]] = [deque() for _ in range(count)]
        self._room = [trio.Semaphore(MAX_IN_FLIGHT) for _ in range(count)]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the workers and serve them until cancelled; then stop them."""
        try:
            async with trio.open_nursery() as nursery:
                for index in range(self.count):
                    ours, theirs = socket.socketpair()
                    process = subprocess.Popen(
                        [
                            sys.executable, "-m", "mixnode.crypto_workers",
                            str(theirs.fileno()), str(self.data_dir), str(index),
                            str(self.geometry.hops), str(self.geometry.user_payload_size),
                            "1" if self.is_gateway else "0", str(self.expected_items),
                        ],
                        pass_fds=(theirs.fileno(),),
                        stdin=subprocess.DEVNULL,
                    )
                    theirs.close()
                    self._processes.append(process)
                    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
                    self._streams.append(stream)
                    # Room for every packet in flight, and for epoch announcements.
                    send, receive = trio.open_memory_channel[bytes](MAX_IN_FLIGHT + 16)
                    self._outboxes.append(send)
                    nursery.start_soon(self._feed, stream, receive)
                    nursery.start_soon(self._read, index, stream)
                task_status.started()
        finally:
            self._stop()

    def _stop(self) -> None:
        # Closing our end is the stop signal: a worker that reads end-of-stream closes its
        # replay filters and exits.
        for stream in self._streams:
            stream.socket.close()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def replay_filters(self) -> list[ReplayFilters]:
        """Each worker's set of filters, for the main process to `prepare` files in (it opens
        none of them)."""
        return [
            ReplayFilters(
                worker_replay_directory(self.data_dir, index), expected_items=self.expected_items
            )
            for index in range(self.count)
        ]

    def announce(self, view: WorkerView) -> None:
        """A new epoch: every worker reloads its keys and replay filters."""
        body = record(VIEW, pickle.dumps(view))
        for outbox in self._outboxes:
            try:
                outbox.send_nowait(body)
            except trio.WouldBlock:
                self.on_busy()

    async def submit(self, packet: bytes, arrival: float, source: Hashable = None) -> None:
        """Hand `packet` to its worker, waiting while that worker has no room. With room it
        returns without a checkpoint (a checkpoint per packet cost the main process more than
        the hand-off itself); the caller yields to the scheduler on its own time. `arrival`
        and `source` (the peer it came from) are handed back with its outcome."""
        index = worker_for(packet, self.count)
        room = self._room[index]
        try:
            room.acquire_nowait()
        except trio.WouldBlock:
            await room.acquire()
        self._enqueue(index, packet, arrival, source)

    def submit_nowait(self, packet: bytes, arrival: float, source: Hashable = None) -> None:
        """Hand `packet` to its worker, or drop it (counted) if that worker has no room."""
        index = worker_for(packet, self.count)
        try:
            self._room[index].acquire_nowait()
        except trio.WouldBlock:
            self.on_busy()
            return
        self._enqueue(index, packet, arrival, source)

    def _enqueue(self, index: int, packet: bytes, arrival: float, source: Hashable) -> None:
        self._outboxes[index].send_nowait(record(PACKET, packet))  # room was reserved
        self._arrivals[index].append((arrival, source))

    async def _feed(
        self, stream: trio.SocketStream, outbox: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        async for first in outbox:
            batch = [first]
            while len(batch) < 64:
                try:
                    batch.append(outbox.receive_nowait())
                except trio.WouldBlock:
                    break
            await stream.send_all(b"".join(batch))

    async def _read(self, index: int, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        arrivals = self._arrivals[index]
        while True:
            data = await stream.receive_some(READ_SIZE)
            if not data:
                raise RuntimeError(f"crypto worker {index} exited")
            buffer += data
            for kind, body in split_records(buffer):
                if kind not in (OUTCOME, FORWARD) or not arrivals:
                    continue
                arrival, source = arrivals.popleft()
                self._room[index].release()
                outcome = decode_outcome(kind, body)
                if isinstance(outcome, Scheduled):
                    outcome = Scheduled(arrival + outcome.deadline, outcome.action)
                self.on_outcome(outcome, arrival, source)


def worker_main(
    fd: int, data_dir: Path, index: int, geometry: Geometry, is_gateway: bool, expected: int
) -> None:
    """A worker process: packets in, outcomes out, until STOP or the main process goes."""
    connection = socket.socket(fileno=fd)
    replay = ReplayFilters(worker_replay_directory(data_dir, index), expected_items=expected)
    pipeline: PacketPipeline | None = None
    buffer = bytearray()
    try:
        while True:
            data = connection.recv(READ_SIZE)
            if not data:
                return
            buffer += data
            answers = []
            for kind, body in split_records(buffer):
                if kind == STOP:
                    return
                if kind == VIEW:
                    view: WorkerView = pickle.loads(body)
                    keys = SphinxKeyRing(data_dir / "sphinx-keys").node_keys(view.epoch)
                    for key in keys.keys:
                        replay.ensure(key.epoch)
                    replay.retire_before(view.epoch - 1)
                    epoch_view = EpochView(view.epoch, keys, view.max_delay_ms, view.known_nodes)
                    if pipeline is None:
                        pipeline = PacketPipeline(
                            geometry, replay, epoch_view,
                            loop_recipient=view.loop_recipient, is_gateway=is_gateway,
                        )
                    else:
                        pipeline.view = epoch_view
                elif kind == PACKET:
                    outcome: Outcome = (
                        pipeline.process(body, 0.0) if pipeline is not None else Dropped("mac")
                    )
                    answers.append(encode_outcome(outcome))
            if answers:
                connection.sendall(b"".join(answers))
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        replay.close()
        connection.close()


if __name__ == "__main__":
    _fd, _dir, _index, _hops, _payload, _gateway, _expected = sys.argv[1:8]
    worker_main(
        int(_fd),
        Path(_dir),
        int(_index),
        Geometry(hops=int(_hops), user_payload_size=int(_payload)),
        _gateway == "1",
        int(_expected),
    )
