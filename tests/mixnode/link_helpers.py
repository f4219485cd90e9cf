"""Helpers shared by the link tests: fixed keys, a completed pair of cores, and a raw
`noiseprotocol` peer (the reference Noise implementation) for interop and bad-frame tests."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import trio
from noise.connection import Keypair, NoiseConnection  # type: ignore[import-untyped]

from mixnode.link import (
    FRAME_HEADER_SIZE,
    NOISE_PROTOCOL_NAME,
    LinkCore,
    LinkKeypair,
    generate_link_keypair,
    link_prologue,
)
from mixnode.link_driver import LINK_OUTCOMES, LinkConnection, LinkTimings

BODY_SIZE = 64
"""A small frame body for fast tests; the real one is the Sphinx packet size."""
HOST = "127.0.0.1"
LOOPBACK_TIMINGS = LinkTimings(idle_timeout=20.0, keepalive_interval=5.0, send_timeout=10.0)
"""Link timers for tests on real sockets, long enough for a loaded machine."""
TEST_DEADLINE = 30.0
"""The most a test on real sockets may take."""


def keypair(seed: int) -> LinkKeypair:
    return generate_link_keypair(rng=random.Random(seed).randbytes)


ALICE = keypair(1)
BOB = keypair(2)
MALLORY = keypair(3)


def core_pair(
    initiator_keys: LinkKeypair = ALICE,
    responder_keys: LinkKeypair = BOB,
    body_size: int = BODY_SIZE,
) -> tuple[LinkCore, LinkCore]:
    """An initiator and a responder core with the handshake completed between them."""
    initiator = LinkCore.initiator(initiator_keys.private, responder_keys.public, body_size)
    responder = LinkCore.responder(responder_keys.private, body_size)
    assert responder.start() == b""
    assert responder.receive_data(initiator.start()) == []
    initiator.receive_data(responder.data_to_send())
    responder.receive_data(initiator.data_to_send())
    assert initiator.established and responder.established
    return initiator, responder


def noise_peer(
    *, initiator: bool, local: LinkKeypair, remote_public: bytes | None, body_size: int = BODY_SIZE
) -> NoiseConnection:
    """A `noiseprotocol` connection set up exactly as the link specifies, handshake started."""
    connection = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
    connection.set_prologue(link_prologue(body_size))
    connection.set_keypair_from_private_bytes(Keypair.STATIC, local.private)
    if initiator:
        assert remote_public is not None
        connection.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote_public)
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.start_handshake()
    return connection


def raw_plaintext(
    kind: int, length: int, body: bytes, padding: bytes, body_size: int = BODY_SIZE
) -> bytes:
    """A frame plaintext built by hand (possibly malformed), padded to the frame size."""
    plaintext = bytes([kind]) + length.to_bytes(2, "big") + body + padding
    assert len(plaintext) <= FRAME_HEADER_SIZE + body_size
    return plaintext + bytes(FRAME_HEADER_SIZE + body_size - len(plaintext))


class Tally:
    """A `count` callable that records outcomes and checks they are documented names."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, outcome: str) -> None:
        assert outcome in LINK_OUTCOMES, outcome
        self.counts[outcome] += 1

    def __getitem__(self, outcome: str) -> int:
        return self.counts[outcome]


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `predicate` until it holds; fail the test after `timeout` seconds."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def echo(connection: LinkConnection) -> None:
    """A link handler that sends every frame back."""
    async for frame in connection:
        await connection.send(frame)


async def drip(stream: trio.abc.SendStream, data: bytes) -> None:
    """Send `data` one byte per second until done or the other side closes."""
    for byte in data:
        await trio.sleep(1)
        try:
            await stream.send_all(bytes([byte]))
        except trio.BrokenResourceError:
            return
