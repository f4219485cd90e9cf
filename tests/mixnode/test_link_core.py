"""`LinkCore`: the Noise XK handshake, fixed-size frames, interop with `noiseprotocol`'s own
transport, and bad input (every failure is a `LinkError`, after which the core is dead)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult_base

from mixnode.link import (
    HANDSHAKE_MESSAGE_SIZES,
    KEEPALIVE_FRAME,
    MAX_FRAME_BODY_SIZE,
    Frame,
    FrameKind,
    FrameReceived,
    HandshakeComplete,
    LinkCore,
    LinkError,
    decode_frame,
    encode_frame,
    generate_link_keypair,
    link_prologue,
    wire_frame_size,
)
from tests.mixnode.link_helpers import (
    ALICE,
    BOB,
    BODY_SIZE,
    MALLORY,
    core_pair,
    noise_peer,
    raw_plaintext,
)

WIRE = wire_frame_size(BODY_SIZE)
frames = st.builds(
    Frame,
    st.sampled_from([FrameKind.PACKET, FrameKind.CONTROL]),
    st.binary(max_size=BODY_SIZE),
) | st.just(KEEPALIVE_FRAME)


def _frames_of(events: Sequence[object]) -> list[Frame]:
    return [event.frame for event in events if isinstance(event, FrameReceived)]


# -- keys ------------------------------------------------------------------------------------


def test_keypair_is_x25519_and_comes_from_the_injected_rng() -> None:
    pair = generate_link_keypair(rng=random.Random(7).randbytes)
    assert pair == generate_link_keypair(rng=random.Random(7).randbytes)
    assert pair.public == crypto_scalarmult_base(pair.private)
    assert generate_link_keypair().private != generate_link_keypair().private


def test_no_key_material_in_reprs() -> None:
    initiator, responder = core_pair()
    event = HandshakeComplete(ALICE.public)
    texts = [repr(ALICE), repr(event), repr(initiator), repr(responder)]
    for text in texts:
        assert ALICE.private.hex() not in text and repr(ALICE.private) not in text
    assert repr(ALICE.public) not in repr(event)
    assert "secret" not in repr(Frame(FrameKind.PACKET, b"secret"))


# -- handshake -------------------------------------------------------------------------------


def test_handshake_then_frames_both_ways() -> None:
    initiator = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    assert responder.start() == b""
    message1 = initiator.start()
    assert len(message1) == HANDSHAKE_MESSAGE_SIZES[0]
    assert responder.receive_data(message1) == []
    message2 = responder.data_to_send()
    assert len(message2) == HANDSHAKE_MESSAGE_SIZES[1]
    assert initiator.receive_data(message2) == [HandshakeComplete(BOB.public)]
    message3 = initiator.data_to_send()
    assert len(message3) == HANDSHAKE_MESSAGE_SIZES[2]
    # The initiator may send frames right behind message 3, in the same write.
    first = initiator.send(Frame(FrameKind.PACKET, b"hello"))
    # The call that completes the handshake stops there: the caller can authorize the peer
    # before any of its frames is decrypted; the next call yields them.
    assert responder.receive_data(message3 + first) == [HandshakeComplete(ALICE.public)]
    assert responder.receive_data(b"") == [FrameReceived(Frame(FrameKind.PACKET, b"hello"))]
    assert responder.remote_static_key == ALICE.public
    reply = responder.send_many([Frame(FrameKind.CONTROL, b"c"), KEEPALIVE_FRAME])
    assert len(reply) == 2 * WIRE
    assert _frames_of(initiator.receive_data(reply)) == [
        Frame(FrameKind.CONTROL, b"c"),
        KEEPALIVE_FRAME,
    ]


def test_every_frame_has_the_same_size_on_the_wire() -> None:
    initiator, _ = core_pair()
    sizes = {
        len(initiator.send(frame))
        for frame in (
            KEEPALIVE_FRAME,
            Frame(FrameKind.PACKET, bytes(BODY_SIZE)),
            Frame(FrameKind.CONTROL, b"x"),
        )
    }
    assert sizes == {WIRE} and WIRE == 3 + BODY_SIZE + 16


def test_input_split_at_every_byte_is_reassembled() -> None:
    initiator = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    responder.start()
    events: list[object] = []
    for byte in initiator.start():
        events += responder.receive_data(bytes([byte]))
    for byte in responder.data_to_send():
        events += initiator.receive_data(bytes([byte]))
    stream = initiator.data_to_send() + initiator.send_many(
        [Frame(FrameKind.PACKET, b"a"), Frame(FrameKind.PACKET, b"b")]
    )
    for byte in stream:
        events += responder.receive_data(bytes([byte]))
    assert events == [
        HandshakeComplete(BOB.public),
        HandshakeComplete(ALICE.public),
        FrameReceived(Frame(FrameKind.PACKET, b"a")),
        FrameReceived(Frame(FrameKind.PACKET, b"b")),
    ]


def test_wrong_responder_key_fails_at_the_responder() -> None:
    initiator = LinkCore.initiator(ALICE.private, MALLORY.public, BODY_SIZE)
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    responder.start()
    with pytest.raises(LinkError, match="handshake failed"):
        responder.receive_data(initiator.start())
    assert responder.failed


@pytest.mark.parametrize("point", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_ephemeral_key_fails_the_handshake(point: bytes) -> None:
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    responder.start()
    with pytest.raises(LinkError, match="handshake failed"):
        responder.receive_data(point + bytes(16))


def test_other_frame_body_size_fails_the_handshake() -> None:
    initiator = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE + 1)
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    responder.start()
    with pytest.raises(LinkError):
        responder.receive_data(initiator.start())


def test_over_long_handshake_message_fails() -> None:
    initiator = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    responder.start()
    responder.receive_data(initiator.start() + b"\x00" * 16)
    initiator.receive_data(responder.data_to_send())
    with pytest.raises(LinkError):
        responder.receive_data(initiator.data_to_send())


def test_short_handshake_message_waits_for_the_rest() -> None:
    initiator = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    responder.start()
    message1 = initiator.start()
    assert responder.receive_data(message1[:-1]) == []
    assert responder.data_to_send() == b""
    assert not responder.established


def test_responder_reply_is_not_accepted_as_a_first_message() -> None:
    """An initiator fed zeros where the responder's reply belongs fails."""
    other = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    other.start()
    with pytest.raises(LinkError):
        other.receive_data(bytes(HANDSHAKE_MESSAGE_SIZES[1]))


def test_misuse_is_a_runtime_error() -> None:
    core = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    with pytest.raises(RuntimeError):
        core.receive_data(b"x")
    core.start()
    with pytest.raises(RuntimeError):
        core.start()
    with pytest.raises(RuntimeError):
        core.send(KEEPALIVE_FRAME)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        LinkCore.initiator(ALICE.private, BOB.public[:31], BODY_SIZE)
    with pytest.raises(ValueError):
        LinkCore.responder(ALICE.private[:31], BODY_SIZE)
    with pytest.raises(ValueError):
        LinkCore.responder(ALICE.private, MAX_FRAME_BODY_SIZE + 1)
    initiator, responder = core_pair()
    with pytest.raises(ValueError):
        initiator.send(Frame(FrameKind.PACKET, bytes(BODY_SIZE + 1)))
    with pytest.raises(ValueError):
        initiator.send(Frame(FrameKind.KEEPALIVE, b"x"))
    # A bad frame in a batch leaves the link usable: nothing was encrypted.
    with pytest.raises(ValueError):
        initiator.send_many([KEEPALIVE_FRAME, Frame(FrameKind.PACKET, bytes(BODY_SIZE + 1))])
    assert responder.receive_data(initiator.send(KEEPALIVE_FRAME)) == [
        FrameReceived(KEEPALIVE_FRAME)
    ]


# -- interop with noiseprotocol's own transport ----------------------------------------------


def test_interop_core_initiator_with_noiseprotocol_responder() -> None:
    core = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    reference = noise_peer(initiator=False, local=BOB, remote_public=None)
    reference.read_message(core.start())
    assert core.receive_data(bytes(reference.write_message())) == [HandshakeComplete(BOB.public)]
    reference.read_message(core.data_to_send())
    assert reference.handshake_finished
    for index in range(5):
        frame = Frame(FrameKind.PACKET, bytes([index]) * index)
        assert reference.decrypt(core.send(frame)) == encode_frame(frame, BODY_SIZE)
        sent = encode_frame(Frame(FrameKind.CONTROL, b"r" * index), BODY_SIZE)
        assert _frames_of(core.receive_data(reference.encrypt(sent))) == [
            decode_frame(sent, BODY_SIZE)
        ]


def test_interop_noiseprotocol_initiator_with_core_responder() -> None:
    reference = noise_peer(initiator=True, local=ALICE, remote_public=BOB.public)
    core = LinkCore.responder(BOB.private, BODY_SIZE)
    core.start()
    core.receive_data(bytes(reference.write_message()))
    reference.read_message(core.data_to_send())
    frame = Frame(FrameKind.PACKET, b"p" * BODY_SIZE)
    events = core.receive_data(
        bytes(reference.write_message()) + reference.encrypt(encode_frame(frame, BODY_SIZE))
    )
    assert events + core.receive_data(b"") == [
        HandshakeComplete(ALICE.public),
        FrameReceived(frame),
    ]
    for _ in range(3):
        assert reference.decrypt(core.send(KEEPALIVE_FRAME)) == encode_frame(
            KEEPALIVE_FRAME, BODY_SIZE
        )


# -- bad frames ------------------------------------------------------------------------------


def _established_with_reference() -> tuple[LinkCore, object]:
    reference = noise_peer(initiator=True, local=ALICE, remote_public=BOB.public)
    core = LinkCore.responder(BOB.private, BODY_SIZE)
    core.start()
    core.receive_data(bytes(reference.write_message()))
    reference.read_message(core.data_to_send())
    core.receive_data(bytes(reference.write_message()))
    return core, reference


@pytest.mark.parametrize(
    ("plaintext", "message"),
    [
        (raw_plaintext(0, 0, b"", b""), "unknown frame kind"),
        (raw_plaintext(4, 0, b"", b""), "unknown frame kind"),
        (raw_plaintext(1, BODY_SIZE + 1, b"", b""), "length"),
        (raw_plaintext(1, 0xFFFF, b"", b""), "length"),
        (raw_plaintext(1, 1, b"a", b"\x00\x01"), "padding"),
        (raw_plaintext(3, 0, b"", b"\x80"), "padding"),
        (raw_plaintext(2, 1, b"a", b""), "keep-alive"),
    ],
)
def test_wrong_frames_are_link_errors(plaintext: bytes, message: str) -> None:
    core, reference = _established_with_reference()
    with pytest.raises(LinkError, match=message):
        core.receive_data(reference.encrypt(plaintext))  # type: ignore[attr-defined]
    assert core.failed
    with pytest.raises(LinkError):
        core.receive_data(b"")
    with pytest.raises(LinkError):
        core.send(KEEPALIVE_FRAME)


def test_a_frame_of_the_wrong_size_is_a_link_error() -> None:
    core, reference = _established_with_reference()
    short = reference.encrypt(raw_plaintext(1, 0, b"", b"")[:-1])  # type: ignore[attr-defined]
    with pytest.raises(LinkError, match="authentication"):
        core.receive_data(short + bytes(1))


@pytest.mark.parametrize("case", ["tampered", "reordered", "replayed"])
def test_tampered_reordered_and_replayed_frames_fail_authentication(case: str) -> None:
    initiator, responder = core_pair()
    first = initiator.send(Frame(FrameKind.PACKET, b"1"))
    second = initiator.send(Frame(FrameKind.PACKET, b"2"))
    data = {
        "tampered": first[:-1] + bytes([first[-1] ^ 1]),
        "reordered": second + first,
        "replayed": first + first,
    }[case]
    with pytest.raises(LinkError, match="authentication"):
        responder.receive_data(data)


def test_frames_before_a_bad_one_in_the_same_input_are_dropped_with_the_link() -> None:
    initiator, responder = core_pair()
    good = initiator.send(Frame(FrameKind.PACKET, b"ok"))
    with pytest.raises(LinkError):
        responder.receive_data(good + bytes(WIRE))


# -- properties ------------------------------------------------------------------------------


@given(frame=frames, body_size=st.integers(min_value=BODY_SIZE, max_value=4 * BODY_SIZE))
def test_encode_decode_round_trip(frame: Frame, body_size: int) -> None:
    plaintext = encode_frame(frame, body_size)
    assert len(plaintext) == 3 + body_size
    assert decode_frame(plaintext, body_size) == frame


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.lists(frames, max_size=5), max_size=5),
    chunk=st.integers(min_value=1, max_value=3 * WIRE),
)
def test_frames_round_trip_through_both_cores(batches: list[list[Frame]], chunk: int) -> None:
    initiator, responder = core_pair()
    for sender, receiver in ((initiator, responder), (responder, initiator)):
        stream = b"".join(sender.send_many(batch) for batch in batches)
        received: list[Frame] = []
        for start in range(0, len(stream), chunk):
            received += _frames_of(receiver.receive_data(stream[start : start + chunk]))
        assert received == [frame for batch in batches for frame in batch]


@settings(max_examples=200, deadline=None)
@given(
    stage=st.sampled_from(["message1", "message3", "established"]),
    data=st.binary(max_size=3 * WIRE),
)
def test_random_input_raises_only_link_error(stage: str, data: bytes) -> None:
    initiator = LinkCore.initiator(ALICE.private, BOB.public, BODY_SIZE)
    responder = LinkCore.responder(BOB.private, BODY_SIZE)
    responder.start()
    message1 = initiator.start()
    target = responder
    if stage != "message1":
        responder.receive_data(message1)
        if stage == "established":
            initiator.receive_data(responder.data_to_send())
            responder.receive_data(initiator.data_to_send())
            target = initiator
    try:
        events = target.receive_data(data)
    except LinkError:
        assert target.failed
    else:
        assert events == []  # random bytes never complete a handshake or form a frame


@settings(max_examples=50, deadline=None)
@given(data=st.binary(min_size=1, max_size=2 * WIRE), position=st.integers(min_value=0))
def test_random_input_after_frames_raises_only_link_error(data: bytes, position: int) -> None:
    initiator, responder = core_pair()
    stream = initiator.send(Frame(FrameKind.PACKET, b"x"))
    cut = position % (len(stream) + 1)
    try:
        responder.receive_data(stream[:cut] + data)
    except LinkError:
        pass


def test_prologue_carries_the_frame_body_size() -> None:
    assert link_prologue(3148) == b"trimix-link-v1" + (3148).to_bytes(4, "big")
