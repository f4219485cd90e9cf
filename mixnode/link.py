"""`LinkCore`: the sans-I/O state machine of one Noise link (handshake, then fixed-size frames).

A link is Noise `XK_25519_ChaChaPoly_BLAKE2b` (the `noiseprotocol` package runs the handshake):
the initiator knows the responder's static public key (from the consensus), the responder
learns the initiator's static key from the third handshake message. The prologue is
`b"trimix-link-v1"` followed by the frame body size as a 4-byte big-endian integer, so peers
configured for another geometry fail the handshake.

After the handshake every message in either direction is one frame of the same size:

    plaintext = kind (1) || body length (2, big-endian) || body || zero padding
    wire      = ChaCha20-Poly1305(plaintext)          (3 + frame_body_size + 16 bytes)

Transport encryption is the Noise transport itself: the two keys of the handshake's `Split()`,
nonce = 32 zero bits followed by the 64-bit little-endian message counter, empty associated
data. Only the per-message call is made with `cryptography`'s `ChaCha20Poly1305` directly
instead of through `noiseprotocol`'s `CipherState` (a third less time per frame); the tests
hold both against each other.

The core does no I/O and keeps no clock: bytes go in through `receive_data`, events come out,
and the bytes to write come from `start`, `data_to_send`, `send` and `send_many`. Any bad input
from the peer raises `LinkError`, after which the core refuses further use.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]
from noise.exceptions import (  # type: ignore[import-untyped]
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseValueError,
)
from noise.state import HandshakeState  # type: ignore[import-untyped]

NOISE_PROTOCOL_NAME = b"Noise_XK_25519_ChaChaPoly_BLAKE2b"
PROLOGUE_PREFIX = b"trimix-link-v1"
KEY_SIZE = 32
"""Raw X25519 private and public keys are 32 bytes."""
TAG_SIZE = 16
"""The Poly1305 tag after every encrypted message."""
FRAME_HEADER_SIZE = 3
"""kind (1) || body length (2, big-endian)."""
MAX_FRAME_BODY_SIZE = 65535 - TAG_SIZE - FRAME_HEADER_SIZE
"""A Noise message is at most 65,535 bytes, tag included."""
HANDSHAKE_MESSAGE_SIZES = (48, 48, 64)
"""XK with empty payloads: `e, es` = 32 + 16; `e, ee` = 32 + 16; `s, se` = 32 + 16 + 16."""
_MAX_NONCE = 2**64 - 1
"""Noise reserves nonce 2^64 - 1; a link that reaches it must be replaced."""

_Bytes = bytes | bytearray | memoryview
_HEADER = struct.Struct(">BH")
_NONCE = struct.Struct("<4xQ")
_NOISE_ERRORS = (InvalidTag, ValueError, NoiseValueError, NoiseInvalidMessage, NoiseHandshakeError)


class FrameKind(enum.IntEnum):
    """What a frame carries. The wire does not show it: every frame has the same size."""

    PACKET = 1
    """A Sphinx packet."""
    KEEPALIVE = 2
    """Nothing (empty body): keeps an idle link open."""
    CONTROL = 3
    """A mailbox control message; the gateway protocol defines the bodies."""


_KINDS: dict[int, FrameKind] = {int(kind): kind for kind in FrameKind}


@dataclass(frozen=True, slots=True, repr=False)
class Frame:
    """One frame's content. The repr shows the kind and size only, never the body."""

    kind: FrameKind
    body: bytes = b""

    def __repr__(self) -> str:
        return f"Frame(kind={self.kind.name}, body=<{len(self.body)} bytes>)"


KEEPALIVE_FRAME = Frame(FrameKind.KEEPALIVE)


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The handshake succeeded; `remote_static_key` is the peer's raw X25519 public key."""

    remote_static_key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class FrameReceived:
    """A frame arrived intact (authenticated, well-formed)."""

    frame: Frame


LinkEvent = HandshakeComplete | FrameReceived


class LinkError(Exception):
    """The peer broke the link protocol (bad handshake, AEAD failure, malformed frame), or
    the link has already failed. Messages never hold key material or payload bytes."""


@dataclass(frozen=True, slots=True)
class LinkKeypair:
    """A raw X25519 link key pair (32 + 32 bytes). The private half is kept out of the repr."""

    private: bytes = field(repr=False)
    public: bytes


def link_public_key(private: bytes) -> bytes:
    """The raw X25519 public key of a raw 32-byte private key."""
    if len(private) != KEY_SIZE:
        raise ValueError(f"a link private key is {KEY_SIZE} bytes")
    return (
        X25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def generate_link_keypair(*, rng: Callable[[int], bytes] = os.urandom) -> LinkKeypair:
    """A fresh link key pair; `rng(n)` returns n random bytes (os.urandom unless testing)."""
    private = rng(KEY_SIZE)
    return LinkKeypair(private=private, public=link_public_key(private))


def link_prologue(frame_body_size: int) -> bytes:
    """The Noise prologue: `b"trimix-link-v1"` || frame body size (u32, big-endian)."""
    return PROLOGUE_PREFIX + frame_body_size.to_bytes(4, "big")


def wire_frame_size(frame_body_size: int) -> int:
    """Bytes of one encrypted frame on the wire."""
    return FRAME_HEADER_SIZE + frame_body_size + TAG_SIZE


def encode_frame(frame: Frame, frame_body_size: int) -> bytes:
    """The padded plaintext of a frame (before encryption)."""
    body = frame.body
    size = len(body)
    if size > frame_body_size:
        raise ValueError(
            f"a frame body of {size} bytes exceeds the frame body size {frame_body_size}"
        )
    if frame.kind is FrameKind.KEEPALIVE and size:
        raise ValueError("a keep-alive frame has an empty body")
    return _HEADER.pack(frame.kind, size) + body + bytes(frame_body_size - size)


def decode_frame(plaintext: bytes, frame_body_size: int) -> Frame:
    """The frame in a decrypted plaintext; `LinkError` if it is malformed."""
    if len(plaintext) != FRAME_HEADER_SIZE + frame_body_size:
        raise LinkError("frame plaintext has the wrong size")
    kind_byte, size = _HEADER.unpack_from(plaintext)
    kind = _KINDS.get(kind_byte)
    if kind is None:
        raise LinkError(f"unknown frame kind {kind_byte}")
    if size > frame_body_size:
        raise LinkError("frame body length exceeds the frame body size")
    if kind is FrameKind.KEEPALIVE and size:
        raise LinkError("keep-alive frame with a body")
    end = FRAME_HEADER_SIZE + size
    if size != frame_body_size and plaintext.count(0, end) != frame_body_size - size:
        raise LinkError("non-zero frame padding")
    return Frame(kind, plaintext[FRAME_HEADER_SIZE:end])


class _State(enum.Enum):
    NEW = "new"
    HANDSHAKE = "handshake"
    ESTABLISHED = "established"
    FAILED = "failed"


class LinkCore:
    """One side of one link, from the first handshake byte to the last frame.

    Use: `start()` (initiator: the first handshake message; responder: `b""`), then feed every
    received byte to `receive_data` and write whatever `data_to_send()` returns after each call
    (the handshake replies). Once `HandshakeComplete` has come out, `send`/`send_many` turn
    frames into bytes to write, and `receive_data(b"")` yields any frames that arrived with
    the last handshake message. Partial input is buffered; the buffer never holds more than one
    incomplete message beyond what a single `receive_data` call passes in.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        local_static_private: bytes,
        remote_static_public: bytes | None,
        frame_body_size: int,
    ) -> None:
        if not 0 <= frame_body_size <= MAX_FRAME_BODY_SIZE:
            raise ValueError(f"frame body size must be within 0..{MAX_FRAME_BODY_SIZE}")
        if len(local_static_private) != KEY_SIZE:
            raise ValueError(f"a link private key is {KEY_SIZE} bytes")
        if initiator and (remote_static_public is None or len(remote_static_public) != KEY_SIZE):
            raise ValueError(f"the initiator needs the responder's {KEY_SIZE}-byte public key")
        self.is_initiator = initiator
        self.frame_body_size = frame_body_size
        self.wire_frame_size = wire_frame_size(frame_body_size)
        self._plaintext_size = FRAME_HEADER_SIZE + frame_body_size
        self._state = _State.NEW
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._step = 0
        self._remote_static: bytes | None = remote_static_public if initiator else None
        self._noise: NoiseConnection | None = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
        self._noise.set_prologue(link_prologue(frame_body_size))
        self._noise.set_keypair_from_private_bytes(Keypair.STATIC, local_static_private)
        if initiator:
            assert remote_static_public is not None
            self._noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote_static_public)
            self._noise.set_as_initiator()
        else:
            self._noise.set_as_responder()
        self._handshake: HandshakeState | None = None
        self._send_cipher: ChaCha20Poly1305 | None = None
        self._receive_cipher: ChaCha20Poly1305 | None = None
        self._send_nonce = 0
        self._receive_nonce = 0

    @classmethod
    def initiator(
        cls, local_static_private: bytes, remote_static_public: bytes, frame_body_size: int
    ) -> LinkCore:
        """The connecting side; it must know the responder's static public key."""
        return cls(
            initiator=True,
            local_static_private=local_static_private,
            remote_static_public=remote_static_public,
            frame_body_size=frame_body_size,
        )

    @classmethod
    def responder(cls, local_static_private: bytes, frame_body_size: int) -> LinkCore:
        """The accepting side; it learns the initiator's static key from message 3."""
        return cls(
            initiator=False,
            local_static_private=local_static_private,
            remote_static_public=None,
            frame_body_size=frame_body_size,
        )

    def __repr__(self) -> str:
        role = "initiator" if self.is_initiator else "responder"
        return f"LinkCore({role}, {self._state.value}, frame_body_size={self.frame_body_size})"

    @property
    def established(self) -> bool:
        """True once the handshake is complete (and the link has not failed)."""
        return self._state is _State.ESTABLISHED

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    @property
    def remote_static_key(self) -> bytes | None:
        """The peer's static public key: known from the start for the initiator, after the
        handshake for the responder."""
        return self._remote_static

    def start(self) -> bytes:
        """Begin the handshake; the initiator's first message, or `b""` for the responder."""
        if self._state is not _State.NEW:
            raise RuntimeError("start() was already called")
        assert self._noise is not None
        self._noise.start_handshake()
        self._handshake = self._noise.noise_protocol.handshake_state
        self._state = _State.HANDSHAKE
        if self.is_initiator:
            return self._write_handshake()
        return b""

    def data_to_send(self) -> bytes:
        """Handshake bytes produced by `receive_data`, to be written to the peer now."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def receive_data(self, data: _Bytes) -> list[LinkEvent]:
        """Feed received bytes; returns the events they complete. `LinkError` on bad input.

        The call that completes the handshake stops at `HandshakeComplete`: bytes after the
        last handshake message stay buffered until the next call (`receive_data(b"")` will do),
        so the caller can authorize the peer before any of its frames is decrypted."""
        if self._state is _State.FAILED:
            raise LinkError("the link has failed")
        if self._state is _State.NEW:
            raise RuntimeError("start() first")
        events: list[LinkEvent] = []
        try:
            if self._buffer:
                self._buffer += data
                data = bytes(self._buffer)
                self._buffer.clear()
            if self._state is _State.HANDSHAKE:
                offset = self._advance_handshake(data, events)
            else:
                offset = self._open_frames(data, 0, events)
            if offset < len(data):
                self._buffer += memoryview(data)[offset:]
        except LinkError:
            self._fail()
            raise
        return events

    def send(self, frame: Frame) -> bytes:
        """The encrypted wire bytes of one frame."""
        return self._seal(frame)

    def send_many(self, frames: Iterable[Frame]) -> bytes:
        """The encrypted wire bytes of several frames, in order, as one buffer. Every frame is
        checked before any is encrypted, so a bad one leaves the link usable."""
        self._check_can_send()
        plaintexts = [encode_frame(frame, self.frame_body_size) for frame in frames]
        return b"".join([self._encrypt(plaintext) for plaintext in plaintexts])

    # -- handshake -------------------------------------------------------------------------

    def _is_my_turn(self) -> bool:
        return (self._step % 2 == 0) == self.is_initiator

    def _write_handshake(self) -> bytes:
        assert self._noise is not None
        message = bytes(self._noise.write_message())
        if len(message) != HANDSHAKE_MESSAGE_SIZES[self._step]:
            raise RuntimeError("unexpected Noise handshake message size")
        self._step += 1
        if self._step == 3:
            self._establish()
        return message

    def _advance_handshake(self, data: _Bytes, events: list[LinkEvent]) -> int:
        offset = 0
        assert self._noise is not None
        while self._state is _State.HANDSHAKE and not self._is_my_turn():
            size = HANDSHAKE_MESSAGE_SIZES[self._step]
            if len(data) - offset < size:
                break
            message = bytes(data[offset : offset + size])
            offset += size
            try:
                self._noise.read_message(message)
            except _NOISE_ERRORS:
                raise LinkError("handshake failed") from None
            self._step += 1
            if self._step == 3:
                self._establish()
            else:
                self._outgoing += self._write_handshake()
        if self._state is _State.ESTABLISHED:
            assert self._remote_static is not None
            events.append(HandshakeComplete(self._remote_static))
        return offset

    def _establish(self) -> None:
        assert self._noise is not None and self._handshake is not None
        if not self.is_initiator:
            self._remote_static = bytes(self._handshake.rs.public_bytes)
        protocol = self._noise.noise_protocol
        send_state, receive_state = protocol.cipher_state_encrypt, protocol.cipher_state_decrypt
        self._send_cipher = ChaCha20Poly1305(send_state.k)
        self._receive_cipher = ChaCha20Poly1305(receive_state.k)
        self._send_nonce = send_state.n
        self._receive_nonce = receive_state.n
        # Drop the handshake objects: the transport keys now live only in the two AEADs.
        self._noise = None
        self._handshake = None
        self._state = _State.ESTABLISHED

    # -- transport -------------------------------------------------------------------------

    def _check_can_send(self) -> None:
        if self._state is not _State.ESTABLISHED:
            if self._state is _State.FAILED:
                raise LinkError("the link has failed")
            raise RuntimeError("the handshake is not complete")

    def _seal(self, frame: Frame) -> bytes:
        self._check_can_send()
        return self._encrypt(encode_frame(frame, self.frame_body_size))

    def _encrypt(self, plaintext: bytes) -> bytes:
        nonce = self._send_nonce
        if nonce >= _MAX_NONCE:
            raise LinkError("the link has used up its nonces")
        assert self._send_cipher is not None
        self._send_nonce = nonce + 1
        return self._send_cipher.encrypt(_NONCE.pack(nonce), plaintext, None)

    def _open_frames(self, data: _Bytes, offset: int, events: list[LinkEvent]) -> int:
        cipher = self._receive_cipher
        assert cipher is not None
        wire = self.wire_frame_size
        body_size = self.frame_body_size
        view = memoryview(data)
        end = len(data)
        nonce = self._receive_nonce
        try:
            while end - offset >= wire:
                if nonce >= _MAX_NONCE:
                    raise LinkError("the link has used up its nonces")
                try:
                    plaintext = cipher.decrypt(
                        _NONCE.pack(nonce), view[offset : offset + wire], None
                    )
                except InvalidTag:
                    raise LinkError("frame failed authentication") from None
                nonce += 1
                offset += wire
                events.append(FrameReceived(decode_frame(plaintext, body_size)))
        finally:
            self._receive_nonce = nonce
        return offset

    def _fail(self) -> None:
        self._state = _State.FAILED
        self._noise = None
        self._handshake = None
        self._send_cipher = None
        self._receive_cipher = None
        self._buffer.clear()
        self._outgoing.clear()
