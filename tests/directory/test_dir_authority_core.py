"""`AuthorityCore`: upload decisions and one epoch's protocol among three authorities
(votes, the relay, reveals, signatures), with real SQLite stores and injected time, without
a network."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from dir_helpers import GEOMETRY, make_descriptor, make_vote, reveals_of, signing_key

from directory.authority_core import AuthorityCore, AuthorityPolicy, Rejection
from directory.canonical import pack
from directory.compute import compute_consensus
from directory.consensus import (
    AuthoritySignature,
    SignedConsensus,
    decode_signed_consensus,
)
from directory.descriptor import MAX_DESCRIPTOR_SIZE, Role
from directory.epoch import EpochClock
from directory.errors import (
    ConfigError,
    ConsensusComputationError,
    DirectoryError,
    InsufficientSignaturesError,
    UnsafeParametersError,
)
from directory.evidence import decode_equivocation
from directory.parameters import ParameterRanges, Parameters
from directory.relay import decode_relay_index
from directory.shared_random import decode_reveal, encode_reveal_set
from directory.signature_message import sign_consensus_body
from directory.storage import AuthorityStore
from directory.verify import verify_consensus
from directory.vote import decode_vote

CLOCK = EpochClock(origin_ms=1_000_000, length_ms=60_000)
BUILDING = 5
SCHEDULE = CLOCK.schedule(BUILDING)
UPLOAD_TIME = CLOCK.start(BUILDING - 1) + 1
VOTE_TIME = SCHEDULE.vote_at / 1000
RELAY_TIME = SCHEDULE.relay_at / 1000
REVEAL_RELAY_TIME = SCHEDULE.reveal_relay_at / 1000
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
        open_registration=True,
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
    """Each voter votes for BUILDING, every receiver (by default the voters) takes all the
    votes, then the voters' reveals; returns the votes."""
    receivers = voters if receivers is None else receivers
    votes = [core.make_vote(BUILDING) for core in voters]
    for core in receivers:
        for vote in votes:
            core.accept_vote(vote, VOTE_TIME)
    _exchange_reveals(voters, receivers)
    return votes


def _exchange_reveals(revealers: list[AuthorityCore], receivers: list[AuthorityCore]) -> None:
    for revealer in revealers:
        reveal = revealer.reveal_bytes(BUILDING, RELAY_TIME)
        assert reveal is not None
        for core in receivers:
            if core is not revealer:
                core.accept_reveal(reveal, RELAY_TIME)


def _relay(receiver: AuthorityCore, relayer: AuthorityCore) -> None:
    """What the daemon's relay phase does between two authorities."""
    index = relayer.relay_index(BUILDING, RELAY_TIME)
    assert index is not None
    entries = decode_relay_index(index, BUILDING)
    for wanted in receiver.wanted_votes(BUILDING, entries, relayer.key):
        vote = relayer.held_vote(BUILDING, wanted)
        assert vote is not None
        with contextlib.suppress(Rejection):  # an equivocation is a 409, and is recorded
            receiver.accept_relayed_vote(vote, relayer.key, RELAY_TIME)


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
        allowed_nodes={admitted.public_key: Role.MIX},
        allow_loopback_addresses=True,
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
            open_registration=True,
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
    assert (rejection.status, rejection.code) == (409, "equivocation")
    assert a.evidence_keys(BUILDING) == [b.key]

    old = make_vote(cores[2].signing_key, BUILDING - 1, []).to_bytes()
    assert _rejection(a.accept_vote, old, VOTE_TIME).code == "stale"
    future = make_vote(cores[2].signing_key, BUILDING + 1, []).to_bytes()
    assert _rejection(a.accept_vote, future, VOTE_TIME).code == "too_early"

    forged = bytearray(cores[2].make_vote(BUILDING))
    forged[-1] ^= 1
    assert _rejection(a.accept_vote, bytes(forged), VOTE_TIME).code == "bad_signature"
    unsigned = pack([pack(["not a vote"]), b""])
    assert _rejection(a.accept_vote, unsigned, VOTE_TIME).status == 400

    late = _rejection(a.accept_vote, cores[2].make_vote(BUILDING), RELAY_TIME)
    assert (late.status, late.code) == (410, "stale")  # votes closed at relay_at


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
        open_registration=True,
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
        open_registration=True,
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
        _exchange_reveals(cores[2:4], [late])
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


# Finding 1: split views. One authority sends a different vote to each of the others.


def _documents_that_verify(
    bodies: set[bytes], signers: dict[bytes, list[AuthorityCore]], byzantine: AuthorityCore
) -> list[bytes]:
    """Every body the byzantine authority can get to verify: it signs each one itself, and
    each honest authority signs the one body it computed."""
    pinned = byzantine.policy.authorities
    verifying = []
    for body in bodies:
        keys = [byzantine.signing_key, *(c.signing_key for c in signers.get(body, []))]
        document = SignedConsensus(
            body, tuple(AuthoritySignature(k.public_key, k.sign(body)) for k in keys)
        ).to_bytes()
        with contextlib.suppress(DirectoryError):
            verify_consensus(document, pinned, BUILDING, GEOMETRY, now=PUBLISH_TIME)
            verifying.append(body)
    return verifying


def test_an_equivocating_authority_cannot_make_two_documents_that_verify(
    cores: list[AuthorityCore], rng: random.Random
) -> None:
    a, b, byzantine = cores
    nodes = [make_descriptor(rng, BUILDING) for _ in range(4)]
    for core in (a, b):
        for node in nodes[:3]:
            core.accept_descriptor(node.to_bytes(), UPLOAD_TIME)
    a.accept_descriptor(nodes[3].to_bytes(), UPLOAD_TIME)  # the last node reached a only
    votes = [a.make_vote(BUILDING), b.make_vote(BUILDING)]
    for core in (a, b):
        for vote in votes:
            core.accept_vote(vote, VOTE_TIME)
    # Two votes by the byzantine authority, one for each: with and without the last node.
    to_a = make_vote(byzantine.signing_key, BUILDING, nodes).to_bytes()
    to_b = make_vote(byzantine.signing_key, BUILDING, nodes[:3]).to_bytes()
    assert a.accept_vote(to_a, VOTE_TIME) == "accepted"
    assert b.accept_vote(to_b, VOTE_TIME) == "accepted"

    # Without the relay, a and b would compute two bodies, and with the byzantine signature
    # each would verify: the split view of the issue.
    unrelayed = set()
    for byzantine_vote in (to_a, to_b):
        held = [decode_vote(v) for v in (*votes, byzantine_vote)]
        unrelayed.add(
            compute_consensus(
                held,
                epoch=BUILDING,
                authorities=a.policy.authorities,
                clock=CLOCK,
                reveals=reveals_of([a.signing_key, b.signing_key, byzantine.signing_key], BUILDING),
            ).to_bytes()
        )
    assert len(unrelayed) == 2

    # The relay: each fetches the votes the other held when votes closed.
    _relay(a, b)
    _relay(b, a)
    _relay(a, byzantine)  # the byzantine index holds nothing that counts from it
    for core in (a, b):
        assert core.evidence_keys(BUILDING) == [byzantine.key]
        evidence = decode_equivocation(
            core.evidence(BUILDING, byzantine.key) or b"", authorities=core.policy.authorities
        )
        assert {evidence.first, evidence.second} == {to_a, to_b}
    _exchange_reveals([a, b], [a, b])
    for core in (a, b):
        _exchange_reveals_from(byzantine.signing_key, core)
    a.compute(BUILDING)
    b.compute(BUILDING)
    honest_body = a.store.body(BUILDING)
    assert honest_body is not None and honest_body == b.store.body(BUILDING)
    assert [len(layer) for layer in (a.consensus(BUILDING) or _none()).layers] == [1, 1, 1]

    # Whatever the byzantine authority signs, only the honest body verifies.
    candidates = unrelayed | {honest_body}
    assert _documents_that_verify(candidates, {honest_body: [a, b]}, byzantine) == [honest_body]


def _none():  # type: ignore[no-untyped-def]
    raise AssertionError("no consensus")


def test_a_vote_relayed_by_its_own_author_or_late_does_not_count(
    cores: list[AuthorityCore], rng: random.Random
) -> None:
    """The byzantine authority votes to nobody before votes close, then serves its vote in
    the relay to one authority only: refused, so both compute without it."""
    a, b, byzantine = cores
    votes = [a.make_vote(BUILDING), b.make_vote(BUILDING)]
    for core in (a, b):
        for vote in votes:
            core.accept_vote(vote, VOTE_TIME)
    late = byzantine.make_vote(BUILDING)
    assert _rejection(a.accept_relayed_vote, late, byzantine.key, RELAY_TIME).code == "own_vote"
    assert _rejection(a.accept_vote, late, RELAY_TIME).code == "stale"
    # Relayed by another authority: only inside the relay window.
    assert _rejection(a.accept_relayed_vote, late, b.key, VOTE_TIME).code == "too_early"
    assert _rejection(a.accept_relayed_vote, late, b.key, REVEAL_RELAY_TIME).code == "stale"
    # The relay index and the reveals are not served before votes close.
    assert a.relay_index(BUILDING, VOTE_TIME) is None
    assert a.reveal_bytes(BUILDING, VOTE_TIME) is None
    assert a.relay_index(BUILDING, RELAY_TIME) is not None
    _exchange_reveals([a, b], [a, b])
    a.compute(BUILDING)
    b.compute(BUILDING)
    assert a.store.body(BUILDING) == b.store.body(BUILDING)


def test_reveals_are_relayed_so_that_every_authority_has_the_same_set(
    cores: list[AuthorityCore],
) -> None:
    """The byzantine authority reveals to a only, before reveals close; a relays it to b.
    The byzantine authority relaying its own reveal after reveals closed counts for nobody."""
    a, b, byzantine = cores
    votes = [core.make_vote(BUILDING) for core in cores]
    for core in (a, b):
        for vote in votes:
            core.accept_vote(vote, VOTE_TIME)
    _exchange_reveals([a, b], [a, b])
    assert a.reveal_set(BUILDING, RELAY_TIME) is None  # not before reveals close
    own = byzantine.reveal_bytes(BUILDING, RELAY_TIME) or b""
    assert a.accept_reveal(own, RELAY_TIME) == "accepted"
    assert _rejection(b.accept_reveal, own, REVEAL_RELAY_TIME).code == "stale"
    from_itself = encode_reveal_set(BUILDING, [decode_reveal(own)])
    assert b.accept_relayed_reveals(from_itself, byzantine.key, REVEAL_RELAY_TIME) == 0
    assert b.missing_reveals(BUILDING) == [byzantine.key]
    from_a = a.reveal_set(BUILDING, REVEAL_RELAY_TIME) or b""
    assert b.accept_relayed_reveals(from_a, a.key, REVEAL_RELAY_TIME) == 1
    with pytest.raises(Rejection, match="closed"):
        b.accept_relayed_reveals(from_a, a.key, COMPUTE_TIME)
    a.compute(BUILDING)
    b.compute(BUILDING)
    assert a.store.body(BUILDING) == b.store.body(BUILDING)


def test_a_reveal_must_match_the_commitment(cores: list[AuthorityCore]) -> None:
    a, b, _ = cores
    _exchange_votes([a, b], [a])
    forged = pack(["trimix-reveal-v1", BUILDING, b.key, bytes(32)])
    assert _rejection(a.accept_reveal, forged, RELAY_TIME).code == "bad_reveal"
    early = b.reveal_bytes(BUILDING, RELAY_TIME) or b""
    assert _rejection(a.accept_reveal, early, VOTE_TIME).code == "too_early"


# Finding 3: parameters that one vote can set.


def test_an_honest_authority_signs_no_unsafe_or_unacceptable_parameters(
    tmp_path: Path, rng: random.Random
) -> None:
    keys = [signing_key(rng) for _ in range(3)]
    policy = AuthorityPolicy(
        authorities=frozenset(k.public_key for k in keys),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
        open_registration=True,
    )
    store = AuthorityStore(tmp_path / "db.sqlite3")
    try:
        honest = AuthorityCore(keys[0], policy, store)
        honest.accept_vote(honest.make_vote(BUILDING), VOTE_TIME)
        # With two votes of three, the low median is the smaller value: the byzantine vote.
        unsafe = replace(
            Parameters.default(), mean_delay_ms=1, lambda_l_mhz=0, lambda_d_mhz=0, lambda_m_mhz=0
        )
        honest.accept_vote(
            make_vote(keys[1], BUILDING, [], parameters=unsafe).to_bytes(), VOTE_TIME
        )
        _exchange_reveals_from(keys[1], honest)
        with pytest.raises(UnsafeParametersError, match="lambda_l_mhz = 0"):
            honest.compute(BUILDING)
        assert "unsafe parameters" in honest.status(COMPUTE_TIME)["notes"][str(BUILDING)]
        assert honest.status(COMPUTE_TIME)["status"] == "degraded"
        assert honest.signature_bytes(BUILDING) is None
    finally:
        store.close()


def test_safe_parameters_outside_the_acceptable_ranges_are_not_signed(
    tmp_path: Path, rng: random.Random
) -> None:
    keys = [signing_key(rng) for _ in range(3)]
    ranges = replace(ParameterRanges.around(Parameters.default()), mean_delay_ms=(40, 60))
    policy = AuthorityPolicy(
        authorities=frozenset(k.public_key for k in keys),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
        acceptable=ranges,
    )
    store = AuthorityStore(tmp_path / "db.sqlite3")
    try:
        honest = AuthorityCore(keys[0], policy, store)
        honest.accept_vote(honest.make_vote(BUILDING), VOTE_TIME)
        fast = replace(Parameters.default(), mean_delay_ms=20)
        honest.accept_vote(make_vote(keys[1], BUILDING, [], parameters=fast).to_bytes(), VOTE_TIME)
        _exchange_reveals_from(keys[1], honest)
        with pytest.raises(UnsafeParametersError, match="acceptable ranges: mean_delay_ms = 20"):
            honest.compute(BUILDING)
    finally:
        store.close()


def _exchange_reveals_from(key, core: AuthorityCore) -> None:  # type: ignore[no-untyped-def]
    (reveal,) = reveals_of([key], BUILDING)
    core.accept_reveal(reveal.to_bytes(), RELAY_TIME)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"retain_published_epochs": 0}, "retain_published_epochs"),
        ({"threshold": 1}, "threshold must be in 2..3"),
        ({"threshold": 4}, "threshold must be in 2..3"),
        ({"parameters": replace(Parameters.default(), lambda_p_mhz=0)}, "own proposal"),
        (
            {"acceptable": replace(ParameterRanges.around(Parameters.default()), layers=(4, 5))},
            "own proposal",
        ),
    ],
)
def test_invalid_policies_are_config_errors(
    changes: dict, message: str, rng: random.Random  # type: ignore[type-arg]
) -> None:
    arguments = {
        "authorities": frozenset(signing_key(rng).public_key for _ in range(3)),
        "clock": CLOCK,
        "parameters": Parameters.default(),
        "geometry": GEOMETRY,
    }
    with pytest.raises(ConfigError, match=message):
        AuthorityPolicy(**(arguments | changes))  # type: ignore[arg-type]


# Finding 5: closed registration.


def test_registration_is_closed_by_default(tmp_path: Path, rng: random.Random) -> None:
    key = signing_key(rng)
    mix, gateway = signing_key(rng), signing_key(rng)
    policy = AuthorityPolicy(
        authorities=frozenset({key.public_key}),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
        allowed_nodes={mix.public_key: Role.MIX, gateway.public_key: Role.GATEWAY},
    )
    store = AuthorityStore(tmp_path / "db.sqlite3")
    try:
        core = AuthorityCore(key, policy, store)
        public = {"host": "192.0.2.7"}
        stranger = make_descriptor(rng, BUILDING, **public).to_bytes()  # type: ignore[arg-type]
        assert _rejection(core.accept_descriptor, stranger, UPLOAD_TIME).code == "node_not_allowed"
        as_gateway = make_descriptor(rng, BUILDING, key=mix, role=Role.GATEWAY, host="192.0.2.7")
        rejection = _rejection(core.accept_descriptor, as_gateway.to_bytes(), UPLOAD_TIME)
        assert (rejection.status, rejection.code) == (403, "wrong_role")
        for host in ("127.0.0.1", "::1", "[::1]", "localhost", "0.0.0.0", "169.254.1.1", "fe80::1"):
            descriptor = make_descriptor(rng, BUILDING, key=mix, host=host)
            rejection = _rejection(core.accept_descriptor, descriptor.to_bytes(), UPLOAD_TIME)
            assert rejection.code == "bad_address", host
        good = make_descriptor(rng, BUILDING, key=mix, host="192.0.2.7")
        assert core.accept_descriptor(good.to_bytes(), UPLOAD_TIME) == "accepted"
        named = make_descriptor(rng, BUILDING, key=gateway, role=Role.GATEWAY, host="gw.example")
        assert core.accept_descriptor(named.to_bytes(), UPLOAD_TIME) == "accepted"

        loopback = AuthorityCore(key, replace(policy, allow_loopback_addresses=True), store)
        local = make_descriptor(rng, BUILDING + 1, key=mix, host="127.0.0.1")
        assert loopback.accept_descriptor(local.to_bytes(), UPLOAD_TIME) == "accepted"
        unspecified = make_descriptor(rng, BUILDING + 1, key=gateway, host="0.0.0.0")
        assert (
            _rejection(loopback.accept_descriptor, unspecified.to_bytes(), UPLOAD_TIME).code
            == "wrong_role"
        )
    finally:
        store.close()


def test_no_single_source_can_exhaust_the_capacity(tmp_path: Path, rng: random.Random) -> None:
    """Open registration (a testnet): 10,000 Sybil descriptors from one source address stop
    at the per-source limit; an honest node from another source is still accepted."""
    key = signing_key(rng)
    policy = AuthorityPolicy(
        authorities=frozenset({key.public_key}),
        clock=CLOCK,
        parameters=Parameters.default(),
        geometry=GEOMETRY,
        open_registration=True,
        uploads_per_source_per_epoch=50,
        max_descriptors_per_epoch=200,
    )
    store = AuthorityStore(tmp_path / "db.sqlite3")
    try:
        core = AuthorityCore(key, policy, store)
        sybil = make_descriptor(rng, BUILDING).to_bytes()
        outcomes: dict[str, int] = {}
        for _ in range(10_000):
            try:
                outcome = core.accept_descriptor(sybil, UPLOAD_TIME, source="198.51.100.9")
            except Rejection as rejection:
                outcome = rejection.code
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert outcomes == {"accepted": 1, "duplicate": 49, "rate_limited": 9_950}
        honest = make_descriptor(rng, BUILDING).to_bytes()
        assert core.accept_descriptor(honest, UPLOAD_TIME, source="203.0.113.5") == "accepted"
        # The bucket refills over an epoch.
        later = UPLOAD_TIME + 20  # 20 s of 60: a third of the bucket back
        assert core.accept_descriptor(sybil, later, source="198.51.100.9") == "duplicate"
    finally:
        store.close()
