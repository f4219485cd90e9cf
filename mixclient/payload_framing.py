"""The client's layout of a packet's user payload: SURB-ACK ‖ frame, and the frame header.

Every forward packet a client sends carries `geometry.user_payload_size` user bytes
(2,640 for `Geometry.default()`):

    SURB-ACK  geometry.surb_size bytes (556)   all zero: none
    frame     the rest (2,084)                 header 36 ‖ data (2,048) ‖ zero padding

The exit gateway splits the two: when the SURB-ACK is not all zero it answers on it after
storing the packet, with an all-zero user payload (the reply's SURB id tells the sender which
packet was stored; no frame is involved), and it stores only the frame in the recipient's
mailbox. The gateway cannot import this package (mixclient sits above mixnode), so it keeps
its own split; `split_surb_ack` here is the same rule with a strict length check. A client
that sends a packet on a SURB (a reply) uses the same layout with an all-zero SURB-ACK.

The frame header (36 bytes, integers unsigned big-endian):

    offset size field
     0      1   version          1
     1      1   kind             1 DATA, 2 DROP, 3 LOOP (`FrameKind`)
     2      1   flags            none defined in version 1: must be 0
     3      1   reserved         must be 0
     4     16   message id       random per message (never a counter: the gateway reads it)
    20      4   fragment index   0 .. count-1
    24      4   fragment count   ≥ 1
    28      4   data length      bytes of data in this frame
    32      4   total length     bytes of the whole message

followed by `frame_data_size(geometry)` bytes of data room (user_payload_size − surb_size −
36: 2,048 by default); data beyond `data length` is padding, zero when sent, ignored when
read. A message of T bytes is cut into count = max(1, ⌈T / room⌉) fragments, every one full
but the last, which holds T − room·(count − 1) bytes. `decode_frame` checks all of this, so a
decoded frame is self-consistent; the reassembler only has to check frames against each other.

Kinds: DATA carries a fragment of an end-to-end sealed message; DROP is cover that the
recipient discards; LOOP is cover the client sends to itself. Note that the exit gateway
can read this header (it is outside the end-to-end encryption).

Malformed input raises `FramingError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from mixnode.surb_ack import split_surb_ack as gateway_split_surb_ack
from sphinx_packets import Geometry

FRAME_HEADER_SIZE = 36
FRAME_VERSION = 1
MESSAGE_ID_SIZE = 16
MAX_U32 = 0xFFFF_FFFF
KNOWN_FLAGS = 0x00
"""The flag bits version 1 defines (none): a frame with any other bit set is refused."""

_HEADER = struct.Struct(">BBBB16sIIII")
assert _HEADER.size == FRAME_HEADER_SIZE


class FramingError(ValueError):
    """A user payload, frame or frame header is malformed."""


class FrameKind(IntEnum):
    DATA = 1
    DROP = 2
    LOOP = 3


def frame_size(geometry: Geometry) -> int:
    """Bytes of a frame: the user payload after the SURB-ACK."""
    size = _geometry(geometry).user_payload_size - geometry.surb_size
    if size <= FRAME_HEADER_SIZE:
        raise FramingError(
            f"the geometry's user payload ({geometry.user_payload_size} bytes) leaves no room "
            f"for data after a SURB-ACK ({geometry.surb_size}) and a frame header "
            f"({FRAME_HEADER_SIZE})"
        )
    return size


def frame_data_size(geometry: Geometry) -> int:
    """Bytes of data one frame holds (2,048 for `Geometry.default()`)."""
    return frame_size(geometry) - FRAME_HEADER_SIZE


def fragment_count(total_length: int, data_size: int) -> int:
    """How many frames of `data_size` bytes of room a message of `total_length` bytes takes."""
    return max(1, -(-total_length // data_size))


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: a fragment of a message (or of a cover message)."""

    kind: FrameKind
    message_id: bytes = field(repr=False)
    fragment_index: int
    fragment_count: int
    total_length: int
    data: bytes = field(repr=False)
    flags: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", FrameKind(self.kind))
        except ValueError:
            raise FramingError(f"unknown frame kind {self.kind}") from None
        if not isinstance(self.message_id, bytes) or len(self.message_id) != MESSAGE_ID_SIZE:
            raise FramingError(f"a message id is {MESSAGE_ID_SIZE} bytes")
        if not isinstance(self.data, bytes):
            raise FramingError(f"frame data must be bytes, not {type(self.data).__name__}")
        for name in ("fragment_index", "fragment_count", "total_length", "flags"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U32:
                raise FramingError(f"{name} must be an integer from 0 to {MAX_U32}")
        if self.flags & ~KNOWN_FLAGS:
            raise FramingError(f"unknown frame flags {self.flags:#04x}")
        if self.fragment_count < 1 or self.fragment_index >= self.fragment_count:
            raise FramingError("a fragment index must be below a fragment count of at least 1")
        if len(self.data) > self.total_length:
            raise FramingError("a fragment holds more data than its whole message")

    def check_layout(self, data_size: int) -> None:
        """`FramingError` unless this frame is fragment `fragment_index` of a message of
        `total_length` bytes cut into frames of `data_size` bytes of room."""
        count = fragment_count(self.total_length, data_size)
        if self.fragment_count != count:
            raise FramingError(
                f"a message of {self.total_length} bytes has {count} fragments, "
                f"not {self.fragment_count}"
            )
        last = self.fragment_index == count - 1
        expected = self.total_length - data_size * (count - 1) if last else data_size
        if len(self.data) != expected:
            raise FramingError(
                f"fragment {self.fragment_index} of {count} must hold {expected} bytes, "
                f"not {len(self.data)}"
            )


def encode_frame(geometry: Geometry, frame: Frame) -> bytes:
    """`frame` as `frame_size(geometry)` bytes (header ‖ data ‖ zero padding)."""
    if not isinstance(frame, Frame):
        raise FramingError(f"a Frame is needed, not {type(frame).__name__}")
    room = frame_data_size(geometry)
    frame.check_layout(room)
    header = _HEADER.pack(
        FRAME_VERSION,
        frame.kind,
        frame.flags,
        0,
        frame.message_id,
        frame.fragment_index,
        frame.fragment_count,
        len(frame.data),
        frame.total_length,
    )
    return header + frame.data + bytes(room - len(frame.data))


def decode_frame(geometry: Geometry, data: bytes) -> Frame:
    """The frame `data` (exactly `frame_size(geometry)` bytes) holds; `FramingError` if it
    is malformed or inconsistent."""
    size = frame_size(geometry)
    data = _exact(data, size, "a frame")
    version, kind, flags, reserved, message_id, index, count, length, total = _HEADER.unpack_from(
        data
    )
    if version != FRAME_VERSION:
        raise FramingError(f"unsupported frame version {version}")
    if reserved != 0:
        raise FramingError("the reserved header byte must be 0")
    if length > size - FRAME_HEADER_SIZE:
        raise FramingError(f"a data length of {length} does not fit in a frame")
    frame = Frame(
        kind,
        message_id,
        index,
        count,
        total,
        data[FRAME_HEADER_SIZE : FRAME_HEADER_SIZE + length],
        flags,
    )
    frame.check_layout(size - FRAME_HEADER_SIZE)
    return frame


def split_surb_ack(geometry: Geometry, user_payload: bytes) -> tuple[bytes | None, bytes]:
    """(the SURB-ACK's `geometry.surb_size` bytes, or None when they are all zero; the
    frame bytes): the exit gateway's split (`mixnode.surb_ack`), with the length checked."""
    data = _exact(user_payload, _geometry(geometry).user_payload_size, "a user payload")
    return gateway_split_surb_ack(geometry, data)


def encode_user_payload(geometry: Geometry, frame: Frame, surb_ack: bytes | None = None) -> bytes:
    """SURB-ACK (or zeros when `surb_ack` is None) ‖ the encoded frame."""
    if surb_ack is None:
        surb = bytes(_geometry(geometry).surb_size)
    else:
        surb = _exact(surb_ack, _geometry(geometry).surb_size, "a SURB-ACK")
        if not any(surb):
            raise FramingError("an all-zero SURB-ACK would read as none")
    return surb + encode_frame(geometry, frame)


def decode_user_payload(geometry: Geometry, user_payload: bytes) -> tuple[bytes | None, Frame]:
    """(SURB-ACK or None, the decoded frame); `FramingError` if either part is malformed."""
    surb, frame = split_surb_ack(geometry, user_payload)
    return surb, decode_frame(geometry, frame)


def _geometry(geometry: object) -> Geometry:
    if not isinstance(geometry, Geometry):
        raise FramingError(f"a Geometry is needed, not {type(geometry).__name__}")
    return geometry


def _exact(data: object, size: int, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FramingError(f"{what} must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) != size:
        raise FramingError(f"{what} must be {size} bytes, not {len(data)}")
    return data
