"""`AuthorityCore`: upload decisions and one epoch's protocol among three authorities,
with real SQLite stores and injected time, without a network."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from dir_helpers import GEOMETRY, make_descriptor, make_vote, signing_key

from directory.authority_core import AuthorityCore, AuthorityPolicy, Rejection
from directory.canonical import pack
from directory.consensus import decode_signed_consensus
from directory.descriptor import MAX_DESCRIPTOR_SIZE, Role
from directory.epoch import EpochClock
from directory.errors import ConsensusComputationError, InsufficientSignaturesError
from directory.parameters import Parameters
from directory.signature_message import sign_consensus_body
from directory.storage import AuthorityStore
from directory.verify import verify_consensus

CLOCK = EpochClock(origin_ms=1_000_000, length_ms=60_000)
BUILDING = 5
SCHEDULE = CLOCK.schedule(BUILDING)
UPLOAD_TIME = CLOCK.start(BUILDING - 1) + 1
VOTE_TIME = SCHEDULE.vote_at / 1000
COMPUTE_TIME = SCHEDULE.compute_at / 1000
PUBLISH_TIME = SCHEDULE.publish_at / 1000


@pytest.fixture
def rng() -> random.Random:
    return random.Random(99)


@pytest.fixture
def cores(tmp_path: Path, rng: random.Random) -> Iterator[list[AuthorityCore]]:
    keys = [signing_key(rng) for _ in range(3)]
    policy = AuthorityPolicy(
        authorities=frozenset(k.public_key for k in keys),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
        max_descriptors_per_epoch=20,
    )
    stores = [AuthorityStore(tmp_path / f"a{i}" / "db.sqlite3") for i in range(3)]
    yield [AuthorityCore(k, policy, s) for k, s in zip(keys, stores, strict=True)]
    for store in stores:
        store.close()


def _rejection(call, *args) -> Rejection:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejection) as caught:
        call(*args)
    return caught.value


def _exchange_votes(
    voters: list[AuthorityCore], receivers: list[AuthorityCore] | None = None
) -> list[bytes]:
    """Each voter votes for BUILDING, and every receiver (by default the voters) takes all
    the votes; returns the votes."""
    votes = [core.make_vote(BUILDING) for core in voters]
    for core in voters if receivers is None else receivers:
        for vote in votes:
            core.accept_vote(vote, VOTE_TIME)
    return votes


def _run_epoch(cores: list[AuthorityCore], rng: random.Random, *, nodes: int = 4) -> None:
    for _ in range(nodes):
        data = make_descriptor(rng, BUILDING).to_bytes()
        for core in cores:
            assert core.accept_descriptor(data, UPLOAD_TIME) == "accepted"
    _exchange_votes(cores)
    signatures = [core.compute(BUILDING) for core in cores]
    for core in cores:
        for signature in signatures:
            core.accept_signature(signature, COMPUTE_TIME)


def test_descriptor_uploads(cores: list[AuthorityCore], rng: random.Random) -> None:
    core = cores[0]
    descriptor = make_descriptor(rng, BUILDING)
    data = descriptor.to_bytes()
    assert core.accept_descriptor(data, UPLOAD_TIME) == "accepted"
    assert core.accept_descriptor(data, UPLOAD_TIME) == "duplicate"

    stale = _rejection(core.accept_descriptor, make_descriptor(rng, BUILDING).to_bytes(), VOTE_TIME)
    assert (stale.status, stale.code) == (410, "stale")
    assert (
        core.accept_descriptor(make_descriptor(rng, BUILDING + 1).to_bytes(), VOTE_TIME)
        == "accepted"
    )
    early = _rejection(
        core.accept_descriptor, make_descriptor(rng, BUILDING + 2).to_bytes(), UPLOAD_TIME
    )
    assert (early.status, early.code) == (422, "too_early")

    forged = bytearray(make_descriptor(rng, BUILDING).to_bytes())
    forged[-3] ^= 0xFF
    assert _rejection(core.accept_descriptor, bytes(forged), UPLOAD_TIME).status == 401
    assert _rejection(core.accept_descriptor, b"\xc1", UPLOAD_TIME).code == "malformed"
    assert (
        _rejection(core.accept_descriptor, b"\x00" * (MAX_DESCRIPTOR_SIZE + 1), UPLOAD_TIME).code
        == "too_large"
    )
    non_canonical = b"\xdc\x00\x02" + data[1:]  # the outer array header as an array16
    assert _rejection(core.accept_descriptor, non_canonical, UPLOAD_TIME).code == "non_canonical"


def test_conflicting_descriptor_of_the_same_node(
    cores: list[AuthorityCore], rng: random.Random
) -> None:
    core = cores[0]
    key = signing_key(rng)
    first = make_descriptor(rng, BUILDING, key=key, port=1).to_bytes()
    second = make_descriptor(rng, BUILDING, key=key, port=2).to_bytes()
    assert core.accept_descriptor(first, UPLOAD_TIME) == "accepted"
    rejection = _rejection(core.accept_descriptor, second, UPLOAD_TIME)
    assert (rejection.status, rejection.code) == (409, "conflict")
    assert core.accept_descriptor(first, UPLOAD_TIME) == "duplicate"


def test_admission_list_and_capacity(tmp_path: Path, rng: random.Random) -> None:
    key = signing_key(rng)
    admitted = signing_key(rng)
    policy = AuthorityPolicy(
        authorities=frozenset({key.public_key}),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
        allowed_nodes=frozenset({admitted.public_key}),
        max_descriptors_per_epoch=1,
    )
    store = AuthorityStore(tmp_path / "db.sqlite3")
    try:
        core = AuthorityCore(key, policy, store)
        outsider = make_descriptor(rng, BUILDING).to_bytes()
        assert _rejection(core.accept_descriptor, outsider, UPLOAD_TIME).code == "node_not_allowed"
        assert (
            core.accept_descriptor(
                make_descriptor(rng, BUILDING, key=admitted).to_bytes(), UPLOAD_TIME
            )
            == "accepted"
        )
        open_policy = AuthorityPolicy(
            authorities=policy.authorities,
            clock=CLOCK,
            parameters=policy.parameters,
            geometry=GEOMETRY,
            max_descriptors_per_epoch=1,
        )
        full = AuthorityCore(key, open_policy, store)
        assert _rejection(full.accept_descriptor, outsider, UPLOAD_TIME).status == 429
    finally:
        store.close()


def test_one_epoch_among_three_authorities(cores: list[AuthorityCore], rng: random.Random) -> None:
    _run_epoch(cores, rng)
    bodies = {core.store.body(BUILDING) for core in cores}
    assert len(bodies) == 1  # every authority computed the same bytes
    pinned = cores[0].policy.authorities
    for core in cores:
        assert core.missing_signatures(BUILDING) == []
        document = core.publish(BUILDING)
        consensus = verify_consensus(document, pinned, BUILDING, GEOMETRY, now=PUBLISH_TIME)
        assert len(consensus.descriptors) == 4
        assert core.published(BUILDING) == document


def test_vote_rejections(cores: list[AuthorityCore], rng: random.Random) -> None:
    a, b, _ = cores
    vote = b.make_vote(BUILDING)
    assert a.accept_vote(vote, VOTE_TIME) == "accepted"
    assert a.accept_vote(vote, VOTE_TIME) == "duplicate"

    outsider = make_vote(signing_key(rng), BUILDING, []).to_bytes()
    assert _rejection(a.accept_vote, outsider, VOTE_TIME).code == "unknown_authority"

    second = make_vote(b.signing_key, BUILDING, [make_descriptor(rng, BUILDING)]).to_bytes()
    rejection = _rejection(a.accept_vote, second, VOTE_TIME)
    assert (rejection.status, rejection.code) == (409, "conflict")

    old = make_vote(cores[2].signing_key, BUILDING - 1, []).to_bytes()
    assert _rejection(a.accept_vote, old, VOTE_TIME).code == "stale"
    future = make_vote(cores[2].signing_key, BUILDING + 1, []).to_bytes()
    assert _rejection(a.accept_vote, future, VOTE_TIME).code == "too_early"

    forged = bytearray(cores[2].make_vote(BUILDING))
    forged[-1] ^= 1
    assert _rejection(a.accept_vote, bytes(forged), VOTE_TIME).code == "bad_signature"
    unsigned = pack([pack(["not a vote"]), b""])
    assert _rejection(a.accept_vote, unsigned, VOTE_TIME).status == 400

    a.make_vote(BUILDING)
    a.compute(BUILDING)
    late = _rejection(a.accept_vote, cores[2].make_vote(BUILDING), COMPUTE_TIME)
    assert (late.status, late.code) == (410, "stale")


def test_no_consensus_without_a_majority_of_votes(cores: list[AuthorityCore]) -> None:
    a = cores[0]
    a.make_vote(BUILDING)
    with pytest.raises(ConsensusComputationError, match="only 1 of 3"):
        a.compute(BUILDING)
    with pytest.raises(ConsensusComputationError, match="only 1 of 3"):
        a.publish(BUILDING)
    assert "only 1 of 3" in a.status(COMPUTE_TIME)["notes"][str(BUILDING)]


def test_byzantine_signature_over_another_document_is_refused(
    cores: list[AuthorityCore], rng: random.Random
) -> None:
    a, b, byzantine = cores
    for core in (a, b):
        data = make_descriptor(rng, BUILDING).to_bytes()
        core.accept_descriptor(data, UPLOAD_TIME)
    _exchange_votes([a, b])
    a_signature = a.compute(BUILDING)
    b.compute(BUILDING)

    forged_body = pack(["trimix-consensus-v1", "a document of the byzantine authority's making"])
    message = sign_consensus_body(byzantine.signing_key, epoch=BUILDING, consensus_body=forged_body)
    rejection = _rejection(a.accept_signature, message.to_bytes(), COMPUTE_TIME)
    assert (rejection.status, rejection.code) == (409, "different_document")

    # Alone, a's signature is not enough; with b's it is, and the byzantine one is not in.
    with pytest.raises(InsufficientSignaturesError, match="1 of 3 authorities signed"):
        a.publish(BUILDING)
    a.accept_signature(b.compute(BUILDING), COMPUTE_TIME)
    document = a.publish(BUILDING)
    verify_consensus(document, a.policy.authorities, BUILDING, GEOMETRY, now=PUBLISH_TIME)
    signers = {s.authority_key for s in decode_signed_consensus(document).signatures}
    assert signers == {a.key, b.key}
    assert b.accept_signature(a_signature, COMPUTE_TIME) == "accepted"


def test_signature_before_compute_is_pending(cores: list[AuthorityCore]) -> None:
    _exchange_votes(cores)
    early = cores[1].compute(BUILDING)
    assert cores[0].accept_signature(early, COMPUTE_TIME) == "pending"
    cores[0].compute(BUILDING)
    cores[0].publish(BUILDING)  # its own and the pending one: 2 of 3


def test_late_signature_is_added_to_the_published_document(cores: list[AuthorityCore]) -> None:
    _exchange_votes(cores)
    signatures = [core.compute(BUILDING) for core in cores]
    a = cores[0]
    a.accept_signature(signatures[1], COMPUTE_TIME)
    first = a.publish(BUILDING)
    assert a.accept_signature(signatures[2], PUBLISH_TIME + 1) == "accepted"
    assert a.published(BUILDING) != first
    assert len(decode_signed_consensus(a.published(BUILDING) or b"").signatures) == 3


def test_restarted_core_serves_what_it_published(tmp_path: Path, rng: random.Random) -> None:
    key = signing_key(rng)
    policy = AuthorityPolicy(
        authorities=frozenset({key.public_key}),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
    )
    store = AuthorityStore(tmp_path / "db.sqlite3")
    core = AuthorityCore(key, policy, store)
    core.accept_descriptor(
        make_descriptor(rng, BUILDING, role=Role.GATEWAY).to_bytes(), UPLOAD_TIME
    )
    core.make_vote(BUILDING)
    signature = core.compute(BUILDING)
    document = core.publish(BUILDING)
    store.close()

    store = AuthorityStore(tmp_path / "db.sqlite3")
    try:
        again = AuthorityCore(key, policy, store)
        assert again.published(BUILDING) == document
        assert again.compute(BUILDING) == signature
        assert again.publish(BUILDING) == document
    finally:
        store.close()


def test_late_signature_keeps_an_adopted_document(tmp_path: Path, rng: random.Random) -> None:
    """An authority that computed another body than the majority adopts the majority's
    document; a late signature of its own body, below the threshold, changes nothing."""
    keys = [signing_key(rng) for _ in range(5)]
    policy = AuthorityPolicy(
        authorities=frozenset(k.public_key for k in keys),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
    )
    stores = [AuthorityStore(tmp_path / f"a{i}.sqlite3") for i in range(5)]
    try:
        cores = [AuthorityCore(k, policy, s) for k, s in zip(keys, stores, strict=True)]
        late = cores[4]
        node = make_descriptor(rng, BUILDING).to_bytes()
        for core in cores[:3]:
            core.accept_descriptor(node, UPLOAD_TIME)
        votes = _exchange_votes(cores, cores[:4])
        for vote in votes[2:4]:  # the late one saw only three votes, one with the node
            late.accept_vote(vote, VOTE_TIME)
        signatures = [core.compute(BUILDING) for core in cores]
        assert late.store.body(BUILDING) != cores[0].store.body(BUILDING)
        for signature in signatures[1:3]:
            cores[0].accept_signature(signature, COMPUTE_TIME)
        majority = cores[0].publish(BUILDING)
        with pytest.raises(InsufficientSignaturesError):
            late.publish(BUILDING)
        late.adopt(BUILDING, majority, PUBLISH_TIME)
        assert late.published(BUILDING) == majority

        # One more signature of the late authority's own body (an equivocating peer's):
        # two of five, below the threshold, so the adopted document stays.
        equivocation = sign_consensus_body(
            keys[3], epoch=BUILDING, consensus_body=late.store.body(BUILDING) or b""
        )
        assert late.accept_signature(equivocation.to_bytes(), PUBLISH_TIME) == "accepted"
        assert late.published(BUILDING) == majority
    finally:
        for store in stores:
            store.close()
