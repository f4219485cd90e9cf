"""What a mix node gets from `unwrap`: several keys, the replay check right after the MAC,
a delay cap, and the replay tag on every result and on every error raised after the MAC."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphinx_packets import (
    DelayTooLongError,
    Deliver,
    DeliverSurbReply,
    Forward,
    Geometry,
    InvalidArgumentError,
    InvalidCommandError,
    InvalidKeyError,
    InvalidMACError,
    NodeKeys,
    PayloadTagError,
    ReplayError,
    SphinxError,
    SphinxKey,
    create_packet,
    create_surb_reply,
    new_surb,
    unwrap,
    unwrap_header,
)
from sphinx_packets.primitives import replay_tag
from tests.sphinx_packets.helpers import (
    SMALL_GEOMETRY,
    forward_path,
    make_nodes,
    reseal,
    seeded_rng,
)

GEOMETRY = SMALL_GEOMETRY
NODES = make_nodes(3, seeded_rng(21), epoch=40)
RECIPIENT = b"\x05" * 32
PAYLOAD = bytes(GEOMETRY.user_payload_size)
DELAYS = [10, 5_000, 700]
PACKET = create_packet(
    GEOMETRY, forward_path(NODES, RECIPIENT, DELAYS), PAYLOAD, rng=seeded_rng(22)
)
TAG = replay_tag(PACKET[2:34])
OTHER_KEYS = (
    SphinxKey.generate(39, rng=seeded_rng(23)),
    SphinxKey.generate(41, rng=seeded_rng(24)),
)
NODE0_KEYS = NodeKeys((OTHER_KEYS[0], NODES[0].key, OTHER_KEYS[1]))


def _flip(packet: bytes, index: int) -> bytes:
    data = bytearray(packet)
    data[index] ^= 1
    return bytes(data)


class ReplayFilter:
    """The smallest real replay filter: a set of the tags seen."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.asked: list[bytes] = []

    def __call__(self, tag: bytes) -> bool:
        self.asked.append(tag)
        if tag in self.seen:
            return True
        self.seen.add(tag)
        return False


def test_is_replay_is_asked_once_with_the_tag_and_refuses_the_second_copy() -> None:
    replays = ReplayFilter()
    first = unwrap(GEOMETRY, NODE0_KEYS, PACKET, is_replay=replays)
    assert isinstance(first, Forward)
    assert replays.asked == [TAG] == [first.replay_tag]
    with pytest.raises(ReplayError) as caught:
        unwrap(GEOMETRY, NODE0_KEYS, PACKET, is_replay=replays)
    assert (caught.value.replay_tag, caught.value.key_epoch) == (TAG, 40)
    assert replays.asked == [TAG, TAG]


def test_is_replay_in_epoch_is_told_the_key_that_verified() -> None:
    asked: list[tuple[bytes, int | None]] = []
    copies: set[tuple[bytes, int | None]] = set()

    def in_epoch(tag: bytes, epoch: int | None) -> bool:
        asked.append((tag, epoch))
        if (tag, epoch) in copies:
            return True
        copies.add((tag, epoch))
        return False

    first = unwrap(GEOMETRY, NODE0_KEYS, PACKET, is_replay_in_epoch=in_epoch)
    assert asked == [(TAG, 40)] and first.key_epoch == 40
    with pytest.raises(ReplayError):
        unwrap(GEOMETRY, NODE0_KEYS, PACKET, is_replay_in_epoch=in_epoch)
    with pytest.raises(InvalidArgumentError):
        unwrap(GEOMETRY, NODE0_KEYS, PACKET, is_replay=ReplayFilter(), is_replay_in_epoch=in_epoch)


@pytest.mark.parametrize(
    ("index", "error"),
    [(40, InvalidMACError), (GEOMETRY.header_size - 1, InvalidMACError), (0, SphinxError)],
)
def test_is_replay_is_not_asked_before_the_mac_verifies(
    index: int, error: type[SphinxError]
) -> None:
    replays = ReplayFilter()
    with pytest.raises(error) as caught:
        unwrap(GEOMETRY, NODE0_KEYS, _flip(PACKET, index), is_replay=replays)
    assert replays.asked == []
    assert (caught.value.replay_tag, caught.value.key_epoch) == (None, None)


def test_a_low_order_alpha_is_refused_before_the_mac_under_every_key() -> None:
    replays = ReplayFilter()
    packet = PACKET[:2] + bytes(32) + PACKET[34:]
    with pytest.raises(InvalidKeyError) as caught:
        unwrap(GEOMETRY, NODE0_KEYS, packet, is_replay=replays)
    assert replays.asked == [] and caught.value.replay_tag is None


def test_the_replay_check_comes_before_the_commands_are_read() -> None:
    # A header whose MAC verifies but whose commands are garbage (unknown type 0x42).
    forged = reseal(GEOMETRY, NODES[0].private_key, PACKET, b"\x42" + bytes(81))
    forged_tag = replay_tag(forged[2:34])
    with pytest.raises(InvalidCommandError) as caught:
        unwrap(GEOMETRY, NODE0_KEYS, forged)
    assert (caught.value.replay_tag, caught.value.key_epoch) == (forged_tag, 40)
    with pytest.raises(ReplayError):
        unwrap(GEOMETRY, NODE0_KEYS, forged, is_replay=lambda tag: True)


def test_a_delay_above_the_cap_is_refused_with_the_tag() -> None:
    assert isinstance(unwrap(GEOMETRY, NODE0_KEYS, PACKET, max_delay_ms=10), Forward)
    second = unwrap(GEOMETRY, NODES[0].key, PACKET).packet  # type: ignore[union-attr]
    with pytest.raises(DelayTooLongError, match="5000 ms exceeds the maximum of 4999") as caught:
        unwrap(GEOMETRY, NODES[1].key, second, max_delay_ms=4_999)
    assert (caught.value.replay_tag, caught.value.key_epoch) == (replay_tag(second[2:34]), 40)
    result = unwrap(GEOMETRY, NODES[1].key, second, max_delay_ms=5_000)
    assert isinstance(result, Forward) and result.delay_ms == 5_000
    assert isinstance(unwrap(GEOMETRY, NODES[1].key, second), Forward)  # no cap given


def test_the_delay_cap_is_checked_before_the_payload_at_the_last_hop() -> None:
    packet = PACKET
    for node in NODES[:-1]:
        packet = unwrap(GEOMETRY, node.key, packet).packet  # type: ignore[union-attr]
    tampered = _flip(packet, GEOMETRY.header_size + 7)
    with pytest.raises(PayloadTagError) as caught:
        unwrap(GEOMETRY, NODES[2].key, tampered)
    assert caught.value.replay_tag == replay_tag(packet[2:34])
    with pytest.raises(DelayTooLongError):
        unwrap(GEOMETRY, NODES[2].key, tampered, max_delay_ms=699)
    delivered = unwrap(GEOMETRY, NODES[2].key, packet, max_delay_ms=700)
    assert isinstance(delivered, Deliver)
    assert (delivered.delay_ms, delivered.recipient_id, delivered.key_epoch) == (700, RECIPIENT, 40)


def test_surb_replies_carry_tag_epoch_and_delay() -> None:
    surb, keys = new_surb(GEOMETRY, forward_path(NODES, RECIPIENT, DELAYS), rng=seeded_rng(8))
    _, packet = create_surb_reply(GEOMETRY, surb, PAYLOAD)
    for node in NODES[:-1]:
        packet = unwrap(GEOMETRY, node.key, packet).packet  # type: ignore[union-attr]
    result = unwrap(GEOMETRY, NODES[2].key, packet)
    assert isinstance(result, DeliverSurbReply)
    assert result.surb_id == keys.surb_id
    assert (result.replay_tag, result.key_epoch, result.delay_ms) == (
        replay_tag(packet[2:34]),
        40,
        700,
    )


def test_no_matching_key_is_a_mac_error_without_a_tag() -> None:
    with pytest.raises(InvalidMACError, match="any of the 2 keys") as caught:
        unwrap(GEOMETRY, NodeKeys(OTHER_KEYS), PACKET)
    assert caught.value.replay_tag is None
    with pytest.raises(InvalidMACError):
        unwrap_header(GEOMETRY, OTHER_KEYS, PACKET[: GEOMETRY.header_size])


def test_unwrap_header_takes_the_same_keys_and_reports_the_epoch() -> None:
    header = unwrap_header(GEOMETRY, NODE0_KEYS, PACKET[: GEOMETRY.header_size])
    assert (header.key_epoch, header.replay_tag) == (40, TAG)
    bare = unwrap_header(GEOMETRY, NODES[0].private_key, PACKET[: GEOMETRY.header_size])
    assert bare.key_epoch is None and bare.next_header == header.next_header
    forged = reseal(GEOMETRY, NODES[0].private_key, PACKET, b"\x42" + bytes(81))
    with pytest.raises(InvalidCommandError) as caught:
        unwrap_header(GEOMETRY, NODE0_KEYS, forged[: GEOMETRY.header_size])
    assert caught.value.replay_tag == replay_tag(forged[2:34])


command_slots = st.one_of(
    st.binary(min_size=82, max_size=82),
    st.lists(
        st.sampled_from(
            [b"\x01" + bytes(64), b"\x02" + bytes(32), b"\x03" + bytes(16), b"\x80\x00\x00\x01\x00"]
        ),
        max_size=4,
    ).map(lambda parts: (b"".join(parts) + bytes(82))[:82]),
)


@settings(max_examples=150, deadline=None)
@given(command_slots, st.booleans())
def test_any_commands_behind_a_valid_mac_give_a_result_or_a_tagged_error(
    slot: bytes, capped: bool
) -> None:
    forged = reseal(GEOMETRY, NODES[0].private_key, PACKET, slot)
    try:
        result = unwrap(GEOMETRY, NODE0_KEYS, forged, max_delay_ms=100 if capped else None)
    except SphinxError as error:
        assert (error.replay_tag, error.key_epoch) == (replay_tag(forged[2:34]), 40)
        return
    assert (result.replay_tag, result.key_epoch) == (replay_tag(forged[2:34]), 40)
    # A forged delivery at the first hop never passes the zero tag (the payload is still
    # under two more layers); only a SURB reply, which its creator checks, gets through.
    assert isinstance(result, Forward | DeliverSurbReply)


def test_the_forged_delivery_of_a_forward_payload_is_caught_by_the_zero_tag() -> None:
    slot = b"\x02" + RECIPIENT + bytes(49)
    forged = reseal(GEOMETRY, NODES[0].private_key, PACKET, slot)
    with pytest.raises(PayloadTagError):  # the payload is still under two more layers
        unwrap(GEOMETRY, NODE0_KEYS, forged)


@pytest.mark.parametrize("cap", ["10", -1, True, 1.5, 1 << 32])
def test_a_bad_delay_cap_is_an_argument_error(cap: object) -> None:
    with pytest.raises(InvalidArgumentError):
        unwrap(GEOMETRY, NODE0_KEYS, PACKET, max_delay_ms=cap)  # type: ignore[arg-type]


def test_a_non_callable_is_replay_is_an_argument_error() -> None:
    with pytest.raises(InvalidArgumentError):
        unwrap(GEOMETRY, NODE0_KEYS, PACKET, is_replay="yes")  # type: ignore[arg-type]


def test_sphinx_keys_are_checked() -> None:
    key = SphinxKey.generate(3, rng=seeded_rng(1))
    assert key == SphinxKey.generate(3, rng=seeded_rng(1))
    assert SphinxKey.from_private_key(3, key.private_key) == key
    with pytest.raises(InvalidKeyError, match="not the private key's"):
        SphinxKey(3, key.private_key, OTHER_KEYS[0].public_key)
    for epoch in (-1, 1 << 64, None, "3", 3.0, True):
        with pytest.raises(InvalidKeyError):
            SphinxKey(epoch, key.private_key, key.public_key)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        SphinxKey(3, key.private_key[:31], key.public_key)


def test_node_keys_are_checked() -> None:
    assert NodeKeys([NODES[0].key]).epochs == (40,)  # type: ignore[arg-type]
    assert list(NODE0_KEYS) == [OTHER_KEYS[0], NODES[0].key, OTHER_KEYS[1]]
    assert len(NODE0_KEYS) == 3
    many = [SphinxKey.generate(e, rng=seeded_rng(e)) for e in range(9)]
    for bad in ((), many, (NODES[0].key, NODES[1].key), (NODES[0].key, b"k" * 32), NODES[0].key):
        with pytest.raises(InvalidKeyError):
            NodeKeys(bad)  # type: ignore[arg-type]
    for bad_keys in (None, "key", 7, b"short", [b"k" * 32]):
        with pytest.raises(InvalidKeyError):
            unwrap(GEOMETRY, bad_keys, PACKET)  # type: ignore[arg-type]


def test_a_geometry_mismatch_is_refused_before_any_work() -> None:
    other = Geometry(hops=5, user_payload_size=GEOMETRY.user_payload_size + 1)
    replays = ReplayFilter()
    with pytest.raises(SphinxError) as caught:
        unwrap(other, NODE0_KEYS, PACKET, is_replay=replays)
    assert replays.asked == [] and caught.value.replay_tag is None
