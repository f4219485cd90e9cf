"""Encodings of every directory document: canonical round trips, and decoders that raise
only `DirectoryError` subclasses on any input."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import msgpack
import pytest
from dir_helpers import GEOMETRY, make_descriptor, make_vote, signing_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directory.canonical import MAX_EPOCH, pack, unpack
from directory.consensus import (
    AuthoritySignature,
    Consensus,
    SignedConsensus,
    decode_consensus,
    decode_signed_consensus,
)
from directory.descriptor import (
    MAX_DESCRIPTOR_SIZE,
    Address,
    NodeDescriptor,
    Role,
    decode_descriptor,
    sign_descriptor,
)
from directory.errors import (
    BadSignatureError,
    DirectoryError,
    DocumentTooLargeError,
    DuplicateSignatureError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
    UnknownAuthorityError,
)
from directory.evidence import decode_equivocation, equivocation
from directory.parameters import Parameters
from directory.relay import decode_relay_index, encode_relay_index
from directory.shared_random import (
    Reveal,
    deal_layers,
    decode_reveal,
    decode_reveal_set,
    encode_reveal_set,
)
from directory.signature_message import decode_signature_message, sign_consensus_body
from directory.signatures import SigningKey, node_id
from directory.vote import MAX_VOTE_SIZE, decode_vote, read_vote_prefix, sign_vote

EPOCHS = st.integers(0, MAX_EPOCH)
KEYS = st.binary(min_size=32, max_size=32).map(SigningKey.from_seed)
NAMES = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
HOSTS = st.from_regex(r"[A-Za-z0-9.:\[\]-]{1,40}", fullmatch=True)
VERSIONS = st.from_regex(r"[A-Za-z0-9.+_-]{1,32}", fullmatch=True)
PARAMETERS = st.builds(
    Parameters,
    mean_delay_ms=st.integers(1, 3_600_000),
    lambda_p_mhz=st.integers(0, 1_000_000_000),
    lambda_l_mhz=st.integers(0, 1_000_000_000),
    lambda_d_mhz=st.integers(0, 1_000_000_000),
    lambda_m_mhz=st.integers(0, 1_000_000_000),
    layers=st.integers(1, 16),
)
ROBUST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def descriptors(draw: st.DrawFn, epoch: int | None = None) -> NodeDescriptor:
    role = draw(st.sampled_from(Role))
    return sign_descriptor(
        draw(KEYS),
        epoch=draw(EPOCHS) if epoch is None else epoch,
        name=draw(NAMES),
        role=role,
        link_key=draw(st.binary(min_size=32, max_size=32)),
        sphinx_keys=tuple(draw(st.binary(min_size=32, max_size=32)) for _ in range(3)),
        addresses=tuple(
            draw(
                st.lists(
                    st.builds(Address, HOSTS, st.integers(1, 65535)),
                    min_size=1,
                    max_size=8,
                    unique=True,
                )
            )
        ),
        version=draw(VERSIONS),
    )


@st.composite
def votes(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    epoch = draw(EPOCHS)
    nodes = draw(st.lists(descriptors(epoch=epoch), max_size=6, unique_by=lambda d: d.identity_key))
    return sign_vote(
        draw(KEYS),
        epoch=epoch,
        parameters=draw(PARAMETERS),
        geometry_hash=draw(st.binary(min_size=32, max_size=32)),
        commitment=draw(st.binary(min_size=32, max_size=32)),
        descriptors=nodes,
    )


@st.composite
def consensuses(draw: st.DrawFn) -> Consensus:
    epoch = draw(EPOCHS)
    parameters = draw(PARAMETERS)
    nodes = draw(st.lists(descriptors(epoch=epoch), max_size=8, unique_by=lambda d: d.identity_key))
    nodes.sort(key=lambda d: d.node_id)
    valid_after = draw(st.integers(0, 1 << 50))
    fresh_until = valid_after + draw(st.integers(1, 1 << 40))
    shared = draw(st.binary(min_size=32, max_size=32))
    return Consensus(
        epoch=epoch,
        valid_after_ms=valid_after,
        fresh_until_ms=fresh_until,
        valid_until_ms=fresh_until + draw(st.integers(0, 1 << 40)),
        parameters=parameters,
        geometry_hash=draw(st.binary(min_size=32, max_size=32)),
        shared_random=shared,
        layers=deal_layers(
            shared, [d.node_id for d in nodes if d.role is Role.MIX], parameters.layers
        ),
        gateways=tuple(d.node_id for d in nodes if d.role is Role.GATEWAY),
        descriptors=tuple(nodes),
    )


@st.composite
def signed_consensuses(draw: st.DrawFn) -> SignedConsensus:
    body = draw(consensuses()).to_bytes()
    signers = draw(st.lists(KEYS, max_size=5, unique_by=lambda k: k.public_key))
    return SignedConsensus(
        body, tuple(AuthoritySignature(k.public_key, k.sign(body)) for k in signers)
    )


# Round trips: encode, decode, encode again gives the same bytes.


@ROBUST
@given(descriptors())
def test_descriptor_round_trip(descriptor: NodeDescriptor) -> None:
    data = descriptor.to_bytes()
    decoded = decode_descriptor(data)
    assert decoded == descriptor
    assert decoded.to_bytes() == data
    assert decoded.node_id == node_id(descriptor.identity_key)


@ROBUST
@given(votes())
def test_vote_round_trip(vote) -> None:  # type: ignore[no-untyped-def]
    data = vote.to_bytes()
    decoded = decode_vote(data)
    assert decoded == vote
    assert decoded.to_bytes() == data


@ROBUST
@given(consensuses())
def test_consensus_round_trip(consensus: Consensus) -> None:
    data = consensus.to_bytes()
    decoded = decode_consensus(data)
    assert decoded == consensus
    assert decoded.to_bytes() == data


@ROBUST
@given(signed_consensuses())
def test_signed_consensus_round_trip(signed: SignedConsensus) -> None:
    data = signed.to_bytes()
    decoded = decode_signed_consensus(data)
    assert decoded == signed
    assert decoded.to_bytes() == data


@ROBUST
@given(KEYS, EPOCHS, st.binary(max_size=200))
def test_signature_message_round_trip(key: SigningKey, epoch: int, body: bytes) -> None:
    message = sign_consensus_body(key, epoch=epoch, consensus_body=body)
    data = message.to_bytes()
    decoded = decode_signature_message(data)
    assert decoded == message
    assert decoded.to_bytes() == data
    assert decoded.signs(body)
    assert not decoded.signs(body + b"x")


# Decoders on hostile input raise DirectoryError subclasses and nothing else.

DECODERS = [
    decode_descriptor,
    decode_vote,
    decode_reveal,
    decode_equivocation,
    decode_consensus,
    decode_signed_consensus,
    decode_signature_message,
]


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.__name__)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_directory_errors(decoder: Any, data: bytes) -> None:
    with contextlib.suppress(DirectoryError):
        decoder(data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


def _replace_leaf(tree: Any, path: list[int], value: Any) -> Any:
    if not path or type(tree) is not list or not tree:
        return value
    index = path[0] % len(tree)
    copy = list(tree)
    copy[index] = _replace_leaf(tree[index], path[1:], value)
    return copy


def _sample_documents() -> list[tuple[Any, bytes]]:
    rng = random.Random(7)
    keys = [signing_key(rng) for _ in range(3)]
    nodes = [make_descriptor(rng, 3), make_descriptor(rng, 3, role=Role.GATEWAY)]
    from dir_helpers import make_consensus, signed_document

    from directory.epoch import EpochClock

    consensus = make_consensus(rng, keys, 3, EpochClock(), mixes=3, gateways=1)
    return [
        (decode_descriptor, nodes[0].to_bytes()),
        (decode_vote, make_vote(keys[0], 3, nodes).to_bytes()),
        (decode_consensus, consensus.to_bytes()),
        (decode_signed_consensus, signed_document(consensus, keys)),
        (
            decode_signature_message,
            sign_consensus_body(keys[0], epoch=3, consensus_body=b"x").to_bytes(),
        ),
    ]


SAMPLES = _sample_documents()


@pytest.mark.parametrize("decoder,data", SAMPLES, ids=lambda x: getattr(x, "__name__", "doc"))
@settings(max_examples=200, deadline=None)
@given(path=st.lists(st.integers(0, 20), max_size=5), value=msgpack_values)
def test_structured_mutations_raise_directory_errors(
    decoder: Any, data: bytes, path: list[int], value: Any
) -> None:
    tree = msgpack.unpackb(data, raw=False)
    mutated = msgpack.packb(_replace_leaf(tree, path, value), use_bin_type=True)
    with contextlib.suppress(DirectoryError):
        decoder(mutated)


@pytest.mark.parametrize("decoder,data", SAMPLES, ids=lambda x: getattr(x, "__name__", "doc"))
@settings(max_examples=200, deadline=None)
@given(position=st.integers(0), flip=st.integers(1, 255))
def test_byte_flips_raise_directory_errors(
    decoder: Any, data: bytes, position: int, flip: int
) -> None:
    mutated = bytearray(data)
    mutated[position % len(data)] ^= flip
    with contextlib.suppress(DirectoryError):
        decoder(bytes(mutated))


# Specific rejections.


def test_descriptor_forged_signature_is_rejected() -> None:
    rng = random.Random(1)
    data = bytearray(make_descriptor(rng, 5).to_bytes())
    data[-1] ^= 1
    with pytest.raises(BadSignatureError, match="signature does not verify"):
        decode_descriptor(bytes(data))
    decode_descriptor(bytes(data), verify=False)  # well-formed all the same


def test_descriptor_signed_by_another_key_is_rejected() -> None:
    rng = random.Random(2)
    descriptor = make_descriptor(rng, 5)
    impostor = signing_key(rng)
    forged = pack([descriptor.body(), impostor.sign(descriptor.signed_bytes())])
    with pytest.raises(BadSignatureError):
        decode_descriptor(forged)


def test_non_canonical_integer_is_rejected() -> None:
    # 5 as a uint16 (cd 00 05) instead of a positive fixint (05)
    with pytest.raises(NonCanonicalEncodingError):
        unpack(b"\x91\xcd\x00\x05", what="test", max_size=100)
    assert unpack(b"\x91\x05", what="test", max_size=100) == [5]


def test_maps_and_floats_are_not_canonical_documents() -> None:
    with pytest.raises(MalformedDocumentError):
        decode_descriptor(msgpack.packb({"a": 1}))
    with pytest.raises(MalformedDocumentError):
        decode_descriptor(msgpack.packb([1.5, b"x"], use_single_float=True))


def test_oversized_descriptor_is_rejected() -> None:
    with pytest.raises(DocumentTooLargeError):
        decode_descriptor(b"\x00" * (MAX_DESCRIPTOR_SIZE + 1))


def test_a_descriptor_states_no_layer_preference() -> None:
    """Version 2 has no layer preference: a version-1 body (with one) is refused."""
    rng = random.Random(3)
    descriptor = make_descriptor(rng, 1)
    body = descriptor.body()
    assert len(body) == 9 and body[0] == "trimix-descriptor-v2"
    old = ["trimix-descriptor-v1", *body[1:4], 2, *body[4:]]
    key = signing_key(rng)
    old[5] = key.public_key
    with pytest.raises(MalformedDocumentError, match="expected 9 elements"):
        decode_descriptor(pack([old, key.sign(pack(old))]))


def test_an_address_listed_twice_is_refused() -> None:
    rng = random.Random(31)
    with pytest.raises(MalformedDocumentError, match="twice"):
        sign_descriptor(
            signing_key(rng),
            epoch=1,
            name="node",
            role=Role.MIX,
            link_key=b"l" * 32,
            sphinx_keys=(b"s" * 32,) * 3,
            addresses=(Address("192.0.2.1", 1), Address("192.0.2.1", 1)),
            version="0.1",
        )


def test_epochs_beyond_two_to_the_63_are_refused() -> None:
    rng = random.Random(32)
    descriptor = make_descriptor(rng, 1)
    body = descriptor.body()
    key = signing_key(rng)
    body[1], body[4] = 1 << 63, key.public_key
    with pytest.raises(MalformedDocumentError, match="epoch"):
        decode_descriptor(pack([body, key.sign(pack(body))]))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("name", "bad name", "name"),
        ("name", "", "name"),
        ("version", "1.0 beta", "version"),
        ("addresses", (), "addresses"),
        ("addresses", (Address("host", 0),), "port"),
        ("addresses", (Address("host name", 1),), "host"),
        ("sphinx_keys", (b"k" * 32,) * 2, "Sphinx keys"),
        ("link_key", b"short", "link key"),
    ],
)
def test_invalid_descriptor_fields_are_named(field: str, value: Any, message: str) -> None:
    rng = random.Random(4)
    arguments: dict[str, Any] = dict(
        epoch=1,
        name="node",
        role=Role.MIX,
        link_key=b"l" * 32,
        sphinx_keys=(b"s" * 32,) * 3,
        addresses=(Address("127.0.0.1", 1),),
        version="0.1",
    )
    arguments[field] = value
    with pytest.raises(MalformedDocumentError, match=message):
        sign_descriptor(signing_key(rng), **arguments)


def test_vote_descriptors_must_be_in_node_id_order() -> None:
    rng = random.Random(5)
    key = signing_key(rng)
    vote = make_vote(key, 2, [make_descriptor(rng, 2) for _ in range(3)])
    body = vote.body()
    body[6] = list(reversed(body[6]))
    with pytest.raises(MalformedDocumentError, match="order"):
        decode_vote(pack([body, key.sign(pack(body))]))


def test_vote_with_a_descriptor_of_another_epoch_is_rejected() -> None:
    rng = random.Random(6)
    with pytest.raises(MalformedDocumentError, match="another epoch"):
        make_vote(signing_key(rng), 2, [make_descriptor(rng, 3)])


def test_vote_forged_signature_is_rejected() -> None:
    rng = random.Random(8)
    vote = make_vote(signing_key(rng), 2, [make_descriptor(rng, 2)])
    body = vote.body()
    forged = pack([body, signing_key(rng).sign(pack(body))])
    with pytest.raises(BadSignatureError):
        decode_vote(forged)


def test_duplicate_signatures_are_a_decode_error() -> None:
    rng = random.Random(9)
    key = signing_key(rng)
    body = b"body"
    entry = [key.public_key, key.sign(body)]
    data = pack(["trimix-signed-consensus-v1", body, [entry, entry]])
    with pytest.raises(DuplicateSignatureError):
        decode_signed_consensus(data)


def test_consensus_layers_must_hold_every_mix_once() -> None:
    rng = random.Random(10)
    keys = [signing_key(rng) for _ in range(3)]
    from dir_helpers import make_consensus

    from directory.epoch import EpochClock

    consensus = make_consensus(rng, keys, 4, EpochClock(), mixes=4, gateways=1)
    body = consensus.body()
    body[8] = [body[8][0], body[8][0], body[8][2]]  # a mix twice, another missing
    with pytest.raises(MalformedDocumentError, match="layers"):
        decode_consensus(pack(body))


def test_geometry_is_in_votes() -> None:
    rng = random.Random(11)
    vote = make_vote(signing_key(rng), 2, [])
    assert vote.geometry_hash == GEOMETRY.hash()


def test_signed_consensus_must_be_canonical_around_its_body() -> None:
    key = signing_key(random.Random(12))
    body = b"b" * 300
    canonical = SignedConsensus(
        body, (AuthoritySignature(key.public_key, key.sign(body)),)
    ).to_bytes()
    assert decode_signed_consensus(canonical).body == body
    tag = pack("trimix-signed-consensus-v1")
    assert canonical.startswith(b"\x93" + tag + b"\xc5\x01\x2c")  # bin16 for 300 bytes
    as_bin32 = canonical.replace(b"\xc5\x01\x2c", b"\xc6\x00\x00\x01\x2c", 1)
    with pytest.raises(NonCanonicalEncodingError):
        decode_signed_consensus(as_bin32)
    as_array16 = b"\xdc\x00\x03" + canonical[1:]
    with pytest.raises(MalformedDocumentError):
        decode_signed_consensus(as_array16)
    trailing = canonical + b"\x00"
    with pytest.raises(MalformedDocumentError):
        decode_signed_consensus(trailing)


# Bounded decoding: what an unauthenticated peer sends costs no more than its own bytes.


def test_a_vote_prefix_names_its_signer_and_epoch() -> None:
    rng = random.Random(13)
    key = signing_key(rng)
    data = make_vote(key, 7, [make_descriptor(rng, 7)]).to_bytes()
    for cut in range(40):
        assert read_vote_prefix(data[:cut]) is None
    prefix = read_vote_prefix(data[:64])
    assert prefix is not None and (prefix.epoch, prefix.authority_key) == (7, key.public_key)
    with pytest.raises(MalformedDocumentError):
        read_vote_prefix(b"\x90" * 64)


def test_an_unpinned_signer_is_refused_before_the_rest_is_looked_at() -> None:
    """The memory bomb: a vote envelope whose body is 16 MiB of empty arrays. Refused from
    its first bytes (unpinned signer), or at the signature (pinned key, forged), never
    unpacked."""
    rng = random.Random(14)
    stranger, pinned = signing_key(rng), signing_key(rng)
    for signer in (stranger, pinned):
        head = b"\x92\x97" + pack("trimix-vote-v2") + pack(5) + pack(signer.public_key)
        bomb = head + b"\x90" * (MAX_VOTE_SIZE - len(head) - 70) + b"\xc4\x40" + bytes(64)
        with pytest.raises(DirectoryError) as caught:
            decode_vote(bomb, authorities={pinned.public_key})
        expected = UnknownAuthorityError if signer is stranger else BadSignatureError
        assert type(caught.value) is expected


def test_a_signed_vote_cannot_hide_a_bomb_in_a_descriptor() -> None:
    """Even a pinned authority's valid signature does not let one descriptor entry grow past
    the descriptor limit: each entry is unpacked within a window of that size."""
    key = signing_key(random.Random(15))
    bomb = [[[]] * 16] * 16 * 16 * 16  # 65,536 empty arrays in one "descriptor"
    body = [
        "trimix-vote-v2",
        3,
        key.public_key,
        Parameters.default().to_array(),
        GEOMETRY.hash(),
        bytes(32),
        [bomb],
    ]
    data = pack([body, key.sign(pack(body))])
    with pytest.raises(MalformedDocumentError, match="larger than the limit|not valid"):
        decode_vote(data)


def test_a_signed_consensus_envelope_is_taken_apart_without_unpacking_its_body() -> None:
    key = signing_key(random.Random(16))
    body = b"\x90" * 1_000_000
    document = SignedConsensus(
        body, (AuthoritySignature(key.public_key, key.sign(body)),)
    ).to_bytes()
    assert decode_signed_consensus(document).body == body
    long_list = document + b"\x00" * 10_000
    with pytest.raises(MalformedDocumentError, match="too long"):
        decode_signed_consensus(long_list)


def test_reveals_relay_indexes_and_evidence_round_trip() -> None:
    rng = random.Random(17)
    keys = [signing_key(rng) for _ in range(3)]
    reveal = Reveal(4, keys[0].public_key, rng.randbytes(32))
    assert decode_reveal(reveal.to_bytes()) == reveal
    data = encode_reveal_set(4, [reveal])
    assert decode_reveal_set(data, 4) == [reveal]
    with pytest.raises(MalformedDocumentError, match="epoch 5"):
        decode_reveal_set(data, 5)
    entries = [(k.public_key, rng.randbytes(32)) for k in keys]
    assert decode_relay_index(encode_relay_index(4, entries), 4) == sorted(entries)
    one = make_vote(keys[1], 4, [])
    other = make_vote(keys[1], 4, [make_descriptor(rng, 4)])
    evidence = equivocation(one.to_bytes(), other.to_bytes())
    assert evidence.authority_key == keys[1].public_key
    pinned = {k.public_key for k in keys}
    assert decode_equivocation(evidence.to_bytes(), authorities=pinned) == evidence
    with pytest.raises(MalformedDocumentError):
        equivocation(one.to_bytes(), make_vote(keys[2], 4, []).to_bytes())
    with pytest.raises(MalformedDocumentError):
        equivocation(one.to_bytes(), one.to_bytes())
