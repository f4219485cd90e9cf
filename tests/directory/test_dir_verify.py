"""`verify_consensus`: what it accepts, and a distinct error for each way to be wrong."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from dir_helpers import GEOMETRY, make_consensus, signed_document, signing_key
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.canonical import pack
from directory.consensus import (
    AuthoritySignature,
    SignedConsensus,
    decode_signed_consensus,
)
from directory.epoch import EpochClock
from directory.errors import (
    BadSignatureError,
    ConfigError,
    DirectoryError,
    DuplicateSignatureError,
    ExpiredDocumentError,
    GeometryMismatchError,
    InsufficientSignaturesError,
    InvalidTimeError,
    MalformedDocumentError,
    UnknownAuthorityError,
    UnsafeParametersError,
    WrongEpochError,
)
from directory.parameters import check_safe_parameters
from directory.verify import verify_consensus
from sphinx_packets import Geometry

CLOCK = EpochClock(origin_ms=1_700_000_000_000, length_ms=60_000)
EPOCH = 40
RNG = random.Random(2024)
AUTHORITIES = [signing_key(RNG) for _ in range(3)]
PINNED = [k.public_key for k in AUTHORITIES]
CONSENSUS = make_consensus(RNG, AUTHORITIES, EPOCH, CLOCK)
NOW = CLOCK.start(EPOCH) + 1


def test_a_majority_of_pinned_signatures_is_accepted() -> None:
    for signers in (AUTHORITIES, AUTHORITIES[:2], AUTHORITIES[1:]):
        consensus = verify_consensus(
            signed_document(CONSENSUS, signers), PINNED, EPOCH, GEOMETRY, now=NOW
        )
        assert consensus == CONSENSUS


def test_the_next_epoch_can_be_verified_before_it_begins() -> None:
    document = signed_document(CONSENSUS, AUTHORITIES)
    assert verify_consensus(document, PINNED, EPOCH, GEOMETRY, now=CLOCK.start(EPOCH) - 5)


def test_a_minority_is_not_enough() -> None:
    with pytest.raises(
        InsufficientSignaturesError, match="1 valid signatures from pinned authorities, 2 needed"
    ):
        verify_consensus(
            signed_document(CONSENSUS, AUTHORITIES[:1]), PINNED, EPOCH, GEOMETRY, now=NOW
        )
    with pytest.raises(InsufficientSignaturesError):
        verify_consensus(signed_document(CONSENSUS, []), PINNED, EPOCH, GEOMETRY, now=NOW)


def test_one_byte_changed_breaks_the_signatures() -> None:
    document = bytearray(signed_document(CONSENSUS, AUTHORITIES))
    body = decode_signed_consensus(bytes(document)).body
    start = bytes(document).index(body)
    # Flip a byte inside a Sphinx key of a descriptor: still well-formed, no longer signed.
    key = CONSENSUS.descriptors[0].sphinx_keys[1]
    position = start + body.index(key) + 5
    document[position] ^= 0x01
    with pytest.raises(BadSignatureError, match=r"0 valid signatures.*3 invalid"):
        verify_consensus(bytes(document), PINNED, EPOCH, GEOMETRY, now=NOW)


def test_signatures_by_unknown_keys_do_not_count() -> None:
    strangers = [signing_key(RNG) for _ in range(3)]
    with pytest.raises(UnknownAuthorityError, match="3 by unknown keys"):
        verify_consensus(signed_document(CONSENSUS, strangers), PINNED, EPOCH, GEOMETRY, now=NOW)
    with pytest.raises(UnknownAuthorityError, match="1 valid"):
        verify_consensus(
            signed_document(CONSENSUS, [AUTHORITIES[0], strangers[0]]),
            PINNED,
            EPOCH,
            GEOMETRY,
            now=NOW,
        )
    # Extra signatures by unknown keys do not spoil a document a majority signed.
    assert verify_consensus(
        signed_document(CONSENSUS, AUTHORITIES[:2] + strangers), PINNED, EPOCH, GEOMETRY, now=NOW
    )


def test_a_pinned_key_signing_another_document_does_not_count() -> None:
    body = CONSENSUS.to_bytes()
    other = make_consensus(RNG, AUTHORITIES, EPOCH, CLOCK).to_bytes()
    signed = SignedConsensus(
        body,
        (
            AuthoritySignature(PINNED[0], AUTHORITIES[0].sign(body)),
            AuthoritySignature(PINNED[1], AUTHORITIES[1].sign(other)),
        ),
    )
    with pytest.raises(BadSignatureError, match="1 invalid"):
        verify_consensus(signed.to_bytes(), PINNED, EPOCH, GEOMETRY, now=NOW)


def test_duplicated_signatures_by_one_key_are_rejected() -> None:
    body = CONSENSUS.to_bytes()
    entry = [PINNED[0], AUTHORITIES[0].sign(body)]
    document = pack(["trimix-signed-consensus-v1", body, [entry, entry]])
    with pytest.raises(DuplicateSignatureError, match="same key"):
        verify_consensus(document, PINNED, EPOCH, GEOMETRY, now=NOW)


def test_pinning_a_key_twice_does_not_lower_the_threshold() -> None:
    document = signed_document(CONSENSUS, AUTHORITIES[:1])
    with pytest.raises(InsufficientSignaturesError):
        verify_consensus(document, PINNED + [PINNED[0]], EPOCH, GEOMETRY, now=NOW)


def test_wrong_epoch_is_rejected() -> None:
    document = signed_document(CONSENSUS, AUTHORITIES)
    with pytest.raises(WrongEpochError, match=f"for epoch {EPOCH}, expected {EPOCH + 1}"):
        verify_consensus(document, PINNED, EPOCH + 1, GEOMETRY, now=NOW)


def test_expired_consensus_is_rejected() -> None:
    document = signed_document(CONSENSUS, AUTHORITIES)
    expiry = CONSENSUS.valid_until_ms / 1000
    assert verify_consensus(document, PINNED, EPOCH, GEOMETRY, now=expiry - 0.01)
    with pytest.raises(ExpiredDocumentError, match="expired"):
        verify_consensus(document, PINNED, EPOCH, GEOMETRY, now=expiry)


def test_wrong_geometry_is_rejected() -> None:
    document = signed_document(CONSENSUS, AUTHORITIES)
    with pytest.raises(GeometryMismatchError, match="geometry"):
        verify_consensus(document, PINNED, EPOCH, Geometry(hops=4, user_payload_size=1000), now=NOW)


def test_byzantine_document_signed_by_one_authority_is_rejected() -> None:
    """An authority that signs a consensus of its own making gathers only its signature."""
    forged = make_consensus(RNG, AUTHORITIES[2:], EPOCH, CLOCK, mixes=3, gateways=1)
    with pytest.raises(InsufficientSignaturesError):
        verify_consensus(signed_document(forged, AUTHORITIES[2:]), PINNED, EPOCH, GEOMETRY, now=NOW)
    # Grafting the honest authorities' signatures onto it does not help either.
    honest_body = CONSENSUS.to_bytes()
    grafted = SignedConsensus(
        forged.to_bytes(),
        tuple(AuthoritySignature(k.public_key, k.sign(honest_body)) for k in AUTHORITIES[:2])
        + (AuthoritySignature(PINNED[2], AUTHORITIES[2].sign(forged.to_bytes())),),
    )
    with pytest.raises(BadSignatureError):
        verify_consensus(grafted.to_bytes(), PINNED, EPOCH, GEOMETRY, now=NOW)


def test_garbage_is_malformed() -> None:
    with pytest.raises(MalformedDocumentError):
        verify_consensus(b"\x93\x01\x02", PINNED, EPOCH, GEOMETRY, now=NOW)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0), flip=st.integers(1, 255))
def test_any_byte_flip_is_rejected(position: int, flip: int) -> None:
    document = bytearray(signed_document(CONSENSUS, AUTHORITIES[:2]))
    document[position % len(document)] ^= flip
    with pytest.raises(DirectoryError):
        verify_consensus(bytes(document), PINNED, EPOCH, GEOMETRY, now=NOW)


def test_a_configured_threshold_is_enforced_and_validated() -> None:
    two = signed_document(CONSENSUS, AUTHORITIES[:2])
    assert verify_consensus(two, PINNED, EPOCH, GEOMETRY, now=NOW, threshold=2) == CONSENSUS
    with pytest.raises(InsufficientSignaturesError, match="3 needed"):
        verify_consensus(two, PINNED, EPOCH, GEOMETRY, now=NOW, threshold=3)
    for threshold in (1, 4):  # below a majority, or more than there are authorities
        with pytest.raises(ConfigError, match="threshold must be in 2..3"):
            verify_consensus(two, PINNED, EPOCH, GEOMETRY, now=NOW, threshold=threshold)


@pytest.mark.parametrize(
    "change,field",
    [
        ({"lambda_p_mhz": 0}, "lambda_p_mhz"),
        ({"lambda_l_mhz": 0, "lambda_d_mhz": 0, "lambda_m_mhz": 0}, "lambda_l_mhz"),
        ({"mean_delay_ms": 3_600_000}, "mean_delay_ms"),
        ({"lambda_d_mhz": 1_000_000_000}, "lambda_d_mhz"),
    ],
)
def test_unsafe_parameters_are_refused_even_when_signed(
    change: dict,  # type: ignore[type-arg]
    field: str,
) -> None:
    """What one byzantine authority could make the low median of two votes: refused by
    every node and client, with a clear error, whatever signatures it carries."""
    unsafe = replace(CONSENSUS, parameters=replace(CONSENSUS.parameters, **change))
    document = signed_document(unsafe, AUTHORITIES)
    with pytest.raises(UnsafeParametersError, match=field):
        verify_consensus(document, PINNED, EPOCH, GEOMETRY, now=NOW)


def test_the_delay_cap_is_twenty_mean_delays() -> None:
    parameters = CONSENSUS.parameters
    assert parameters.max_delay_ms == 20 * parameters.mean_delay_ms
    assert math.exp(-parameters.max_delay_ms / parameters.mean_delay_ms) < 3e-9
    assert check_safe_parameters(parameters) is parameters


@pytest.mark.parametrize("now", [math.nan, math.inf])
def test_a_time_that_is_not_finite_is_refused(now: float) -> None:
    with pytest.raises(InvalidTimeError):
        verify_consensus(signed_document(CONSENSUS, AUTHORITIES), PINNED, EPOCH, GEOMETRY, now=now)
