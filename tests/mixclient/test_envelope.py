"""The envelope: round trips for every kind, and malformed bytes refused with EnvelopeError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixclient.address import ClientAddress
from mixclient.e2e import E2ESuite
from mixclient.envelope import Envelope, EnvelopeError, EnvelopeKind

SURB_SIZE = 556

addresses = st.builds(
    ClientAddress,
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.just(E2ESuite.X25519),
    st.binary(min_size=32, max_size=32),
)
conversations = st.binary(min_size=16, max_size=16)
envelopes = st.one_of(
    st.builds(
        lambda data, sender: Envelope(EnvelopeKind.DIRECT, data, sender=sender),
        st.binary(max_size=300), addresses,
    ),
    st.builds(
        lambda data, c, epoch, n: Envelope(
            EnvelopeKind.ANONYMOUS, data, conversation=c, surb_epoch=epoch,
            surbs=tuple(bytes([i]) * SURB_SIZE for i in range(n)),
        ),
        st.binary(max_size=300), conversations, st.integers(0, 2**64 - 1), st.integers(0, 4),
    ),
    st.builds(
        lambda data, c: Envelope(EnvelopeKind.REPLY, data, conversation=c),
        st.binary(max_size=300), conversations,
    ),
)


@given(envelopes)
def test_every_envelope_round_trips(envelope: Envelope) -> None:
    encoded = envelope.to_bytes(SURB_SIZE)
    assert Envelope.from_bytes(encoded, SURB_SIZE) == envelope
    assert Envelope.from_bytes(encoded, SURB_SIZE).to_bytes(SURB_SIZE) == encoded


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_decode_or_raise_envelope_error(data: bytes) -> None:
    try:
        Envelope.from_bytes(data, SURB_SIZE)
    except EnvelopeError:
        pass


@given(envelopes, st.data())
def test_a_truncated_envelope_is_refused_or_shorter(envelope: Envelope, data: st.DataObject) -> None:
    encoded = envelope.to_bytes(SURB_SIZE)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    try:
        decoded = Envelope.from_bytes(encoded[:cut], SURB_SIZE)
    except EnvelopeError:
        return
    assert len(decoded.data) < len(envelope.data) or decoded != envelope


def test_inconsistent_envelopes_are_refused() -> None:
    with pytest.raises(EnvelopeError):
        Envelope(EnvelopeKind.DIRECT, b"x")  # no sender
    with pytest.raises(EnvelopeError):
        Envelope(EnvelopeKind.REPLY, b"x", conversation=bytes(16), surbs=(bytes(SURB_SIZE),))
    with pytest.raises(EnvelopeError):
        Envelope(EnvelopeKind.ANONYMOUS, b"x", conversation=bytes(15))
    with pytest.raises(EnvelopeError, match="version"):
        Envelope.from_bytes(b"\x02\x03" + bytes(16), SURB_SIZE)
    with pytest.raises(EnvelopeError, match="kind"):
        Envelope.from_bytes(b"\x01\x09", SURB_SIZE)
