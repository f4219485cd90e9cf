"""Fragmentation of a sealed message into frames, and its reassembly exactly once.

`fragment(message_id, kind, data, geometry)` cuts `data` (a message's end-to-end ciphertext,
mixclient.e2e) into `Frame`s of `frame_data_size(geometry)` bytes (2,048 by default), all
full but the last, numbered 0 .. count-1, each carrying the message id, the count and the
total length (layout in mixclient.payload_framing). A message of T bytes takes
max(1, ⌈T / 2,048⌉) packets: 513 for 1 MiB of user data and the HPKE overhead.

`Reassembler` is the receiving side, a sans-I/O state machine (time is passed in as `now`,
in seconds from any monotonic origin):

- `add(frame, now)` returns the whole message the moment its last missing fragment arrives,
  else None. Only DATA frames are reassembled; a single-fragment message is returned at once.
- Exactly once: the ids of delivered messages are remembered (the most recent
  `max_delivered_ids`, oldest forgotten first), and any later fragment of one is refused. A
  restarted client restores them with `mark_delivered` (from its state store).
- Within a message, a fragment seen before is refused as a duplicate when it holds the same
  bytes and as a conflict when it does not, as is a fragment whose total length disagrees
  with the first one seen; the first one seen is kept.
- Bounds: a message longer than `max_message_size` is refused at its first fragment (the
  total length is in every header, so nothing is buffered for it); at most
  `max_partial_messages` messages are in reassembly at once and at most `max_buffered_bytes`
  bytes are held over all of them; a partial message that has received no new fragment for
  `expiry_seconds` is dropped by `expire(now)` (which `add` also runs when the table is full).
- Every refusal is counted, by outcome, in a `directory.counters.Counters` (names start with
  `reassembly.`): the counts never name a message, a sender or a peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from directory.counters import Counters
from mixclient.e2e import MAX_SEAL_OVERHEAD
from mixclient.payload_framing import (
    MAX_U32,
    MESSAGE_ID_SIZE,
    Frame,
    FrameKind,
    FramingError,
    fragment_count,
    frame_data_size,
)
from sphinx_packets import Geometry

MAX_USER_MESSAGE_SIZE = 1 << 20
"""The largest message a user may send: 1 MiB."""
ENVELOPE_ALLOWANCE = 64 * 1024
"""Room the layer above may add to a user message inside the sealed envelope (its own
header, reply SURBs for an anonymous message)."""
DEFAULT_MAX_MESSAGE_SIZE = MAX_USER_MESSAGE_SIZE + ENVELOPE_ALLOWANCE + MAX_SEAL_OVERHEAD
"""The largest sealed message a `Reassembler` accepts by default (1,115,248 bytes)."""
DEFAULT_MAX_PARTIAL_MESSAGES = 64
DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
DEFAULT_EXPIRY_SECONDS = 600.0
DEFAULT_MAX_DELIVERED_IDS = 65_536


def fragment(
    message_id: bytes, kind: FrameKind, data: bytes, geometry: Geometry
) -> tuple[Frame, ...]:
    """`data` cut into the frames of message `message_id` (16 random bytes, chosen by the
    caller: never a counter, since the recipient's gateway reads it)."""
    room = frame_data_size(geometry)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FramingError(f"message data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_U32:
        raise FramingError(f"a message is at most {MAX_U32} bytes")
    count = fragment_count(len(data), room)
    return tuple(
        Frame(kind, message_id, index, count, len(data), data[index * room : (index + 1) * room])
        for index in range(count)
    )


@dataclass(slots=True)
class _Partial:
    total_length: int
    fragment_count: int
    last_progress: float
    fragments: dict[int, bytes] = field(default_factory=dict)
    held_bytes: int = 0


class Reassembler:
    """Reassembles DATA frames into whole messages, each exactly once, within bounds."""

    def __init__(
        self,
        geometry: Geometry,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_partial_messages: int = DEFAULT_MAX_PARTIAL_MESSAGES,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        expiry_seconds: float = DEFAULT_EXPIRY_SECONDS,
        max_delivered_ids: int = DEFAULT_MAX_DELIVERED_IDS,
        counters: Counters | None = None,
    ) -> None:
        for name, value in (
            ("max_message_size", max_message_size),
            ("max_partial_messages", max_partial_messages),
            ("max_buffered_bytes", max_buffered_bytes),
            ("max_delivered_ids", max_delivered_ids),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        if max_message_size > MAX_U32:
            raise ValueError(f"max_message_size must be at most {MAX_U32}")
        if not expiry_seconds > 0:
            raise ValueError("expiry_seconds must be positive")
        self._room = frame_data_size(geometry)
        self.max_message_size = max_message_size
        self.max_partial_messages = max_partial_messages
        self.max_buffered_bytes = max_buffered_bytes
        self.expiry_seconds = float(expiry_seconds)
        self.max_delivered_ids = max_delivered_ids
        self.counters = (
            counters
            if counters is not None
            else Counters("trimix_client_reassembly_events", "Client reassembly by outcome.")
        )
        self._partial: dict[bytes, _Partial] = {}
        self._delivered: dict[bytes, None] = {}  # insertion-ordered: oldest first
        self._buffered = 0

    @property
    def partial_messages(self) -> int:
        """How many messages are in reassembly."""
        return len(self._partial)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of fragments held for messages in reassembly."""
        return self._buffered

    @property
    def delivered_ids(self) -> tuple[bytes, ...]:
        """The remembered ids of delivered messages, oldest first (for the state store)."""
        return tuple(self._delivered)

    def partial_ids(self) -> frozenset[bytes]:
        """The ids of the messages in reassembly."""
        return frozenset(self._partial)

    def is_delivered(self, message_id: bytes) -> bool:
        """Whether message `message_id` was delivered (and is still remembered)."""
        return message_id in self._delivered

    def mark_delivered(self, message_id: bytes) -> None:
        """Remember `message_id` as delivered (restoring state after a restart); a message
        in reassembly under that id is dropped."""
        if not isinstance(message_id, bytes) or len(message_id) != MESSAGE_ID_SIZE:
            raise ValueError(f"a message id is {MESSAGE_ID_SIZE} bytes")
        self._drop(message_id)
        self._remember(message_id)

    def add(self, frame: Frame, now: float) -> bytes | None:
        """The whole message once `frame` completes it; None while fragments are missing and
        for a refused frame (refusals are counted)."""
        if not isinstance(frame, Frame):
            raise TypeError(f"a Frame is needed, not {type(frame).__name__}")
        if frame.kind is not FrameKind.DATA:
            return self._refuse("wrong_kind")
        try:
            frame.check_layout(self._room)
        except FramingError:
            return self._refuse("bad_layout")
        message_id = frame.message_id
        if message_id in self._delivered:
            return self._refuse("already_delivered")
        if frame.total_length > self.max_message_size:
            return self._refuse("too_large")
        if frame.fragment_count == 1:
            return self._deliver(message_id, frame.data)
        partial = self._partial.get(message_id)
        if partial is None:
            if len(self._partial) >= self.max_partial_messages:
                self.expire(now)
                if len(self._partial) >= self.max_partial_messages:
                    return self._refuse("table_full")
            partial = _Partial(frame.total_length, frame.fragment_count, now)
        elif partial.total_length != frame.total_length:
            return self._refuse("conflicting_fragment")
        held = partial.fragments.get(frame.fragment_index)
        if held is not None:
            return self._refuse(
                "duplicate_fragment" if held == frame.data else "conflicting_fragment"
            )
        if self._buffered + len(frame.data) > self.max_buffered_bytes:
            return self._refuse("buffer_full")
        self._partial[message_id] = partial
        partial.fragments[frame.fragment_index] = frame.data
        partial.held_bytes += len(frame.data)
        partial.last_progress = now
        self._buffered += len(frame.data)
        self.counters.increment("reassembly.fragment.accepted")
        if len(partial.fragments) < partial.fragment_count:
            return None
        self._drop(message_id)
        message = b"".join(partial.fragments[i] for i in range(partial.fragment_count))
        return self._deliver(message_id, message)

    def expire(self, now: float) -> int:
        """Drop the messages that have had no new fragment for `expiry_seconds`; how many."""
        stale = [
            message_id
            for message_id, partial in self._partial.items()
            if now - partial.last_progress >= self.expiry_seconds
        ]
        for message_id in stale:
            self._drop(message_id)
        if stale:
            self.counters.increment("reassembly.partial.expired", len(stale))
        return len(stale)

    def _deliver(self, message_id: bytes, message: bytes) -> bytes:
        self._remember(message_id)
        self.counters.increment("reassembly.message.delivered")
        return message

    def _remember(self, message_id: bytes) -> None:
        self._delivered.pop(message_id, None)
        self._delivered[message_id] = None
        while len(self._delivered) > self.max_delivered_ids:
            del self._delivered[next(iter(self._delivered))]
            self.counters.increment("reassembly.delivered_id.forgotten")

    def _drop(self, message_id: bytes) -> None:
        partial = self._partial.pop(message_id, None)
        if partial is not None:
            self._buffered -= partial.held_bytes

    def _refuse(self, outcome: str) -> None:
        self.counters.increment(f"reassembly.refused.{outcome}")
