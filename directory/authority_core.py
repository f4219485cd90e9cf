"""`AuthorityCore`: what one directory authority decides, without any networking.

It accepts or rejects uploads (descriptors from nodes; votes, reveals and signature messages
from the other authorities), makes its vote and its reveal, takes in what the other
authorities relay, records equivocation, computes and signs the consensus, and publishes it
once t authorities signed. Time comes in as `now` (float seconds); documents go to and come
from an `AuthorityStore`. The Trio daemon (`directory.authority`) calls it at the phase
deadlines and the HTTP app (`directory.http_app`) on each request.

The windows (docs/SPEC.md §2.9), for the epoch e being built:

    votes from anyone              until relay_at
    relayed votes                  relay_at .. reveal_relay_at    (not relayed by their author)
    reveals from anyone            relay_at .. reveal_relay_at    (matching a held commitment)
    relayed reveals                reveal_relay_at .. compute_at  (not relayed by their author)

so every honest authority computes from the votes and reveals that any honest authority
held when the window closed, and an authority that shows two different votes is left out
by all of them.

Every rejection is a `Rejection` with an HTTP status, a short code and a reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from directory.compute import compute_consensus
from directory.consensus import (
    AuthoritySignature,
    Consensus,
    SignedConsensus,
    decode_consensus,
)
from directory.descriptor import Role, decode_descriptor
from directory.epoch import EpochClock, EpochSchedule, to_ms
from directory.errors import (
    ConfigError,
    ConsensusComputationError,
    DirectoryError,
    InsufficientSignaturesError,
    UnknownAuthorityError,
    UnsafeParametersError,
)
from directory.evidence import equivocation
from directory.parameters import ParameterRanges, Parameters
from directory.registration import SourceRateLimiter, address_problem
from directory.rejection import Rejection, rejection_for
from directory.relay import encode_relay_index
from directory.shared_random import (
    Reveal,
    decode_reveal,
    decode_reveal_set,
    encode_reveal_set,
    reveal_for,
)
from directory.signature_message import (
    SignatureMessage,
    decode_signature_message,
    sign_consensus_body,
)
from directory.signatures import (
    MAX_AUTHORITIES,
    PUBLIC_KEY_SIZE,
    SigningKey,
    authority_threshold,
    digest,
)
from directory.storage import AuthorityStore
from directory.verify import verify_consensus
from directory.vote import (
    MAX_DESCRIPTORS,
    Vote,
    VotePrefix,
    decode_vote,
    read_vote_prefix,
    sign_vote,
)
from sphinx_packets import Geometry

__all__ = ["AuthorityCore", "AuthorityPolicy", "Rejection", "rejection_for"]

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
PENDING = "pending"
"""A signature message kept until this authority has computed the consensus it is for."""
DEFAULT_UPLOADS_PER_SOURCE = 128
MAX_VOTE_VERSIONS = 2
"""Versions of one authority's vote kept per epoch: two are the evidence, more add nothing."""


@dataclass(frozen=True, slots=True)
class AuthorityPolicy:
    """What every authority of a network must agree on, and this one's own choices.

    Built from the TOML configuration (`directory.authority_config`) or directly, as a
    testnet does. Invalid combinations raise `ConfigError`."""

    authorities: frozenset[bytes]
    """The pinned authority keys, this one's included."""
    clock: EpochClock
    parameters: Parameters
    """This authority's proposal."""
    geometry: Geometry
    threshold: int | None = None
    """Signatures a consensus needs: ⌊n/2⌋ + 1 .. n; None for the default ⌊n/2⌋ + 1."""
    acceptable: ParameterRanges | None = None
    """The consensus parameters this authority signs; None for `ParameterRanges.around`
    its proposal."""
    allowed_nodes: Mapping[bytes, Role] = field(default_factory=dict, hash=False)
    """Identity key -> role of every node allowed to upload (closed registration)."""
    open_registration: bool = False
    """Admit any node key (testnets only)."""
    allow_loopback_addresses: bool = False
    """Admit loopback descriptor addresses without open registration (a local testnet)."""
    uploads_per_source_per_epoch: int = DEFAULT_UPLOADS_PER_SOURCE
    """Descriptor uploads one source address may make per epoch length (a token bucket)."""
    max_descriptors_per_epoch: int = MAX_DESCRIPTORS
    retain_published_epochs: int = 72

    def __post_init__(self) -> None:
        if not 1 <= len(self.authorities) <= MAX_AUTHORITIES:
            raise ConfigError(f"between 1 and {MAX_AUTHORITIES} authorities can be pinned")
        if any(type(k) is not bytes or len(k) != PUBLIC_KEY_SIZE for k in self.authorities):
            raise ConfigError("authority keys are 32-byte Ed25519 public keys")
        authority_threshold(len(self.authorities), self.threshold)
        if type(self.retain_published_epochs) is not int or self.retain_published_epochs < 1:
            raise ConfigError("retain_published_epochs must be at least 1")
        if not 1 <= self.max_descriptors_per_epoch <= MAX_DESCRIPTORS:
            raise ConfigError(f"max_descriptors_per_epoch must be in 1..{MAX_DESCRIPTORS}")
        if self.uploads_per_source_per_epoch < 1:
            raise ConfigError("uploads_per_source_per_epoch must be at least 1")
        allowed = {}
        for key, role in dict(self.allowed_nodes).items():
            if type(key) is not bytes or len(key) != PUBLIC_KEY_SIZE:
                raise ConfigError("allowed node keys are 32-byte Ed25519 public keys")
            allowed[key] = Role(role)
        object.__setattr__(self, "allowed_nodes", MappingProxyType(allowed))
        try:
            self.acceptable_ranges.check(self.parameters)
        except UnsafeParametersError as error:
            raise ConfigError(f"this authority's own proposal is refused: {error}") from None

    @property
    def signatures_needed(self) -> int:
        """t: the signatures a consensus needs."""
        return authority_threshold(len(self.authorities), self.threshold)

    @property
    def acceptable_ranges(self) -> ParameterRanges:
        return self.acceptable or ParameterRanges.around(self.parameters)


class AuthorityCore:
    """One authority's decisions. Not thread-safe; call it from one task at a time."""

    def __init__(self, signing_key: SigningKey, policy: AuthorityPolicy, store: AuthorityStore):
        if signing_key.public_key not in policy.authorities:
            raise UnknownAuthorityError("this authority's key is not among the pinned authorities")
        self.signing_key = signing_key
        self.policy = policy
        self.store = store
        self.notes: dict[int, str] = {}
        """Per epoch being built, what went wrong (shown on the health endpoint)."""
        burst = policy.uploads_per_source_per_epoch
        self.upload_limiter = SourceRateLimiter(
            burst=burst, per_second=burst * 1000 / policy.clock.length_ms
        )

    @property
    def key(self) -> bytes:
        return self.signing_key.public_key

    @property
    def clock(self) -> EpochClock:
        return self.policy.clock

    def building_epoch(self, now: float) -> int:
        """The epoch whose consensus is built during the current one."""
        return self.clock.epoch_at(now) + 1

    # uploads from nodes

    def accept_descriptor(self, data: bytes, now: float, *, source: str | None = None) -> str:
        """Take a node's descriptor. `source` (the uploader's address, never stored or
        logged) is rate-limited so that no single source fills the authority."""
        now_ms = to_ms(now)
        if source is not None and not self.upload_limiter.allow(source, now):
            raise Rejection(429, "rate_limited", "too many uploads from this source; retry later")
        try:
            descriptor = decode_descriptor(data, verify=False)
        except DirectoryError as error:
            raise rejection_for(error) from None
        current = self.clock.epoch_at(now)
        first_open = current + 1
        if now_ms >= self.clock.schedule(current + 1).vote_at:
            first_open = current + 2
        window = f"uploads are open for epochs {first_open} to {current + 2}"
        if descriptor.epoch < first_open:
            raise Rejection(410, "stale", f"descriptor for epoch {descriptor.epoch}: {window}")
        if descriptor.epoch > current + 2:
            raise Rejection(422, "too_early", f"descriptor for epoch {descriptor.epoch}: {window}")
        policy = self.policy
        if not policy.open_registration:
            role = policy.allowed_nodes.get(descriptor.identity_key)
            if role is None:
                raise Rejection(
                    403, "node_not_allowed", "this node is not admitted by the authority"
                )
            if role is not descriptor.role:
                admitted = f"this node is admitted as a {role.name.lower()}"
                raise Rejection(403, "wrong_role", admitted)
        problem = address_problem(
            descriptor.addresses,
            open_registration=policy.open_registration,
            allow_loopback=policy.allow_loopback_addresses,
        )
        if problem is not None:
            raise Rejection(400, "bad_address", problem)
        if not descriptor.has_valid_signature():
            raise Rejection(401, "bad_signature", "the identity key's signature does not verify")
        known = self.store.descriptor(descriptor.epoch, descriptor.node_id)
        if known is not None:
            if known == data:
                return DUPLICATE
            raise Rejection(
                409,
                "conflict",
                f"another descriptor of this node for epoch {descriptor.epoch} was accepted",
            )
        if self.store.descriptor_count(descriptor.epoch) >= policy.max_descriptors_per_epoch:
            raise Rejection(429, "capacity", "the authority holds its maximum of descriptors")
        self.store.put_descriptor(descriptor.epoch, descriptor.node_id, data)
        return ACCEPTED

    # votes

    def make_vote(self, epoch: int) -> bytes:
        """This authority's vote for `epoch` (made once, then the stored one)."""
        stored = self.store.vote(epoch, self.key)
        if stored is not None:
            return stored
        descriptors = [decode_descriptor(b, verify=False) for b in self.store.descriptors(epoch)]
        vote = sign_vote(
            self.signing_key,
            epoch=epoch,
            parameters=self.policy.parameters,
            geometry_hash=self.policy.geometry.hash(),
            commitment=Reveal(epoch, self.key, reveal_for(self.signing_key, epoch)).commitment(),
            descriptors=descriptors,
        )
        data = vote.to_bytes()
        self.store.put_vote(epoch, self.key, digest(data), vote.commitment, data, relayed=False)
        return data

    def vote_bytes(self, epoch: int) -> bytes | None:
        return self.store.vote(epoch, self.key)

    def screen_vote(self, head: bytes, now: float) -> VotePrefix | None:
        """Judge a vote upload by its first bytes, before the rest is read: its signer and
        epoch once `head` holds enough to let it through (None: more bytes are needed); a
        `Rejection` for an unpinned signer or an epoch whose vote window is not open."""
        try:
            prefix = read_vote_prefix(head)
        except DirectoryError as error:
            raise rejection_for(error) from None
        if prefix is None:
            return None
        if prefix.authority_key not in self.policy.authorities:
            raise Rejection(403, "unknown_authority", "vote: not by a pinned authority")
        self._check_vote_window(prefix.epoch, now)
        return prefix

    def _check_vote_window(self, epoch: int, now: float) -> EpochSchedule:
        building = self.building_epoch(now)
        if epoch < building:
            raise Rejection(410, "stale", f"vote for epoch {epoch}, now building {building}")
        if epoch > building:
            raise Rejection(422, "too_early", f"vote for epoch {epoch}, now building {building}")
        schedule = self.clock.schedule(epoch)
        if to_ms(now) >= schedule.relay_at:
            raise Rejection(410, "stale", f"votes for epoch {epoch} are closed")
        return schedule

    def accept_vote(self, data: bytes, now: float) -> str:
        """A vote handed over (or pulled from its author) before votes close."""
        vote = self._decode_vote(data)
        self._check_vote_window(vote.epoch, now)
        return self._store_vote(vote, data, relayed=False)

    def accept_relayed_vote(self, data: bytes, relayer: bytes, now: float) -> str:
        """A vote another authority (`relayer`) held when votes closed, fetched during the
        relay window. A vote relayed by its own author is refused: it would be a late vote,
        shown to some authorities and not to others."""
        vote = self._decode_vote(data)
        if vote.authority_key == relayer:
            raise Rejection(403, "own_vote", "an authority does not relay its own vote")
        self._open_window(vote.epoch, now, "relayed votes", "relay_at", "reveal_relay_at")
        return self._store_vote(vote, data, relayed=True)

    def _decode_vote(self, data: bytes) -> Vote:
        try:
            return decode_vote(data, authorities=self.policy.authorities)
        except DirectoryError as error:
            raise rejection_for(error) from None

    def _store_vote(self, vote: Vote, data: bytes, *, relayed: bool) -> str:
        vote_digest = digest(data)
        held = self.store.vote_digests(vote.epoch, vote.authority_key)
        if vote_digest in held:
            return DUPLICATE
        if held:
            if len(held) < MAX_VOTE_VERSIONS:
                first = self.store.vote_by_digest(vote.epoch, held[0]) or b""
                evidence = equivocation(first, data)
                self._put_vote(vote, vote_digest, data, relayed=relayed)
                self.store.put_evidence(vote.epoch, vote.authority_key, evidence.to_bytes())
            raise Rejection(
                409,
                "equivocation",
                f"this authority cast another vote for epoch {vote.epoch}: it is left out",
            )
        self._put_vote(vote, vote_digest, data, relayed=relayed)
        return ACCEPTED

    def _put_vote(self, vote: Vote, vote_digest: bytes, data: bytes, *, relayed: bool) -> None:
        self.store.put_vote(
            vote.epoch, vote.authority_key, vote_digest, vote.commitment, data, relayed=relayed
        )

    def missing_votes(self, epoch: int) -> list[bytes]:
        """Keys of the authorities whose vote for `epoch` this one lacks."""
        return sorted(self.policy.authorities - set(self.store.vote_keys(epoch)))

    def relay_index(self, epoch: int, now: float) -> bytes | None:
        """The index of the votes held when votes closed; None before they close."""
        if epoch < 1 or to_ms(now) < self.clock.schedule(epoch).relay_at:
            return None
        return encode_relay_index(epoch, self.store.vote_index(epoch))

    def held_vote(self, epoch: int, vote_digest: bytes) -> bytes | None:
        """A vote this authority holds, by digest (what the relay fetches)."""
        return self.store.vote_by_digest(epoch, vote_digest)

    def wanted_votes(
        self, epoch: int, index: list[tuple[bytes, bytes]], relayer: bytes
    ) -> list[bytes]:
        """Digests in a peer's relay index worth fetching: votes of pinned authorities other
        than the relayer that this one does not hold, while it holds fewer than two versions."""
        wanted = []
        for author, vote_digest in index:
            if author == relayer or author not in self.policy.authorities:
                continue
            held = self.store.vote_digests(epoch, author)
            if vote_digest not in held and len(held) < MAX_VOTE_VERSIONS:
                wanted.append(vote_digest)
        return wanted

    def evidence_keys(self, epoch: int) -> list[bytes]:
        """The authorities this one caught equivocating in `epoch`."""
        return self.store.evidence_keys(epoch)

    def evidence(self, epoch: int, authority_key: bytes) -> bytes | None:
        return self.store.evidence(epoch, authority_key)

    # reveals

    def reveal_bytes(self, epoch: int, now: float) -> bytes | None:
        """This authority's reveal for `epoch`, once votes closed and if it voted."""
        if epoch < 1 or to_ms(now) < self.clock.schedule(epoch).relay_at:
            return None
        if self.store.vote(epoch, self.key) is None:
            return None
        return Reveal(epoch, self.key, reveal_for(self.signing_key, epoch)).to_bytes()

    def accept_reveal(self, data: bytes, now: float) -> str:
        """A reveal, between the close of votes and the close of reveals; it must match
        the commitment in a vote held from its author."""
        try:
            reveal = decode_reveal(data)
        except DirectoryError as error:
            raise rejection_for(error) from None
        if reveal.authority_key not in self.policy.authorities:
            raise Rejection(403, "unknown_authority", "reveal: not by a pinned authority")
        self._open_window(reveal.epoch, now, "reveals", "relay_at", "reveal_relay_at")
        return self._store_reveal(reveal, relayed=False)

    def accept_relayed_reveals(self, data: bytes, relayer: bytes, now: float) -> int:
        """The reveals another authority held when reveals closed; those by the relayer
        itself are ignored. Returns how many were new."""
        epoch = self.building_epoch(now)
        try:
            reveals = decode_reveal_set(data, epoch)
        except DirectoryError as error:
            raise rejection_for(error) from None
        self._open_window(epoch, now, "the reveal relay", "reveal_relay_at", "compute_at")
        new = 0
        for reveal in reveals:
            author = reveal.authority_key
            if author in (relayer, self.key) or author not in self.policy.authorities:
                continue
            with contextlib.suppress(Rejection):
                new += self._store_reveal(reveal, relayed=True) == ACCEPTED
        return new

    def _open_window(
        self, epoch: int, now: float, what: str, opens: str, closes: str
    ) -> EpochSchedule:
        building = self.building_epoch(now)
        if epoch < building:
            raise Rejection(410, "stale", f"{what} for epoch {epoch}: now building {building}")
        if epoch > building:
            raise Rejection(422, "too_early", f"{what} for epoch {epoch}: now building {building}")
        schedule = self.clock.schedule(epoch)
        now_ms = to_ms(now)
        if now_ms < getattr(schedule, opens):
            raise Rejection(422, "too_early", f"{what} for epoch {epoch} are not open yet")
        if now_ms >= getattr(schedule, closes):
            raise Rejection(410, "stale", f"{what} for epoch {epoch} are closed")
        return schedule

    def _store_reveal(self, reveal: Reveal, *, relayed: bool) -> str:
        held = dict(self.store.reveals(reveal.epoch))
        if held.get(reveal.authority_key) == reveal.reveal:
            return DUPLICATE
        commitments = self.store.vote_commitments(reveal.epoch, reveal.authority_key)
        if not commitments:
            raise Rejection(409, "no_commitment", "no vote of this authority is held")
        if not any(reveal.matches(c) for c in commitments):
            raise Rejection(400, "bad_reveal", "the reveal does not match the commitment")
        self.store.put_reveal(reveal.epoch, reveal.authority_key, reveal.reveal, relayed=relayed)
        return ACCEPTED

    def missing_reveals(self, epoch: int) -> list[bytes]:
        """Authorities with a vote held but no reveal."""
        revealed = {key for key, _ in self.store.reveals(epoch)}
        return sorted(set(self.store.vote_keys(epoch)) - revealed - {self.key})

    def reveal_set(self, epoch: int, now: float) -> bytes | None:
        """The reveals held when reveals closed (for the reveal relay); None before."""
        if epoch < 1 or to_ms(now) < self.clock.schedule(epoch).reveal_relay_at:
            return None
        held = [Reveal(epoch, k, r) for k, r in self.store.reveals(epoch, relayed=False)]
        own = self.reveal_bytes(epoch, now)
        if own is not None:
            held.append(decode_reveal(own))
        return encode_reveal_set(epoch, {r.authority_key: r for r in held}.values())

    # the consensus

    def compute(self, epoch: int) -> bytes:
        """Compute and sign the consensus of `epoch` from the votes and reveals held (once;
        then the stored result); returns this authority's signature message. Raises
        `ConsensusComputationError` if there is no consensus and `UnsafeParametersError` if
        its parameters are outside this authority's acceptable ranges (it signs nothing)."""
        body = self.store.body(epoch)
        if body is None:
            votes: list[Vote] = [decode_vote(b) for b in self.store.votes(epoch)]
            reveals = [Reveal(epoch, key, value) for key, value in self.store.reveals(epoch)]
            own = self.store.vote(epoch, self.key)
            if own is not None:
                reveals.append(Reveal(epoch, self.key, reveal_for(self.signing_key, epoch)))
            try:
                consensus = compute_consensus(
                    votes,
                    epoch=epoch,
                    authorities=self.policy.authorities,
                    clock=self.clock,
                    reveals=reveals,
                    threshold=self.policy.threshold,
                )
                self.policy.acceptable_ranges.check(consensus.parameters)
            except (ConsensusComputationError, UnsafeParametersError) as error:
                self.notes[epoch] = f"no consensus for epoch {epoch}: {error}"
                raise
            body = consensus.to_bytes()
            self.store.put_body(epoch, body)
        own_signature = self.store.signature(epoch, self.key)
        if own_signature is None:
            message = sign_consensus_body(self.signing_key, epoch=epoch, consensus_body=body)
            own_signature = message.to_bytes()
            self.store.put_signature(epoch, self.key, own_signature)
        return own_signature

    def has_computed(self, epoch: int) -> bool:
        return self.store.body(epoch) is not None

    def consensus(self, epoch: int) -> Consensus | None:
        """The consensus this authority computed for `epoch`, if any."""
        body = self.store.body(epoch)
        return None if body is None else decode_consensus(body)

    def signature_bytes(self, epoch: int) -> bytes | None:
        """This authority's signature message for `epoch`, once it computed the consensus."""
        if self.store.body(epoch) is None:
            return None
        return self.store.signature(epoch, self.key)

    def accept_signature(self, data: bytes, now: float) -> str:
        try:
            message = decode_signature_message(data)
        except DirectoryError as error:
            raise rejection_for(error) from None
        if message.authority_key not in self.policy.authorities:
            raise Rejection(403, "unknown_authority", "the signature is not by a pinned authority")
        current = self.clock.epoch_at(now)
        if message.epoch < current:
            raise Rejection(410, "stale", f"signature for epoch {message.epoch}, now {current}")
        if message.epoch > current + 1:
            raise Rejection(
                422, "too_early", f"signature for epoch {message.epoch}, now building {current + 1}"
            )
        body = self.store.body(message.epoch)
        if body is not None:
            self._check_signs(message, body)
        known = self.store.signature(message.epoch, message.authority_key)
        if known is not None:
            if known == data:
                return DUPLICATE
            raise Rejection(
                409,
                "conflict",
                f"this authority already sent another signature for epoch {message.epoch}",
            )
        self.store.put_signature(message.epoch, message.authority_key, data)
        if body is None:
            return PENDING
        if self.store.published(message.epoch) is not None:
            # Republish with the late signature. Below the threshold (the document served
            # was adopted from another authority) the served document stays as it is.
            with contextlib.suppress(InsufficientSignaturesError):
                self.publish(message.epoch)
        return ACCEPTED

    def _check_signs(self, message: SignatureMessage, body: bytes) -> None:
        if message.consensus_digest != digest(body):
            raise Rejection(
                409,
                "different_document",
                f"the signature is for another consensus document of epoch {message.epoch} "
                "than the one this authority computed",
            )
        if not message.signs(body):
            raise Rejection(
                401, "bad_signature", "the consensus signature does not verify over the document"
            )

    def missing_signatures(self, epoch: int) -> list[bytes]:
        """Keys of the authorities without a valid signature of this one's body for `epoch`."""
        body = self.store.body(epoch)
        if body is None:
            return sorted(self.policy.authorities - {self.key})
        have = {s.authority_key for s in self._valid_signatures(epoch, body)}
        return sorted(self.policy.authorities - have)

    def _valid_signatures(self, epoch: int, body: bytes) -> list[AuthoritySignature]:
        wanted = digest(body)
        found = []
        for data in self.store.signatures(epoch):
            message = decode_signature_message(data)
            if message.consensus_digest == wanted and message.signs(body):
                found.append(AuthoritySignature(message.authority_key, message.consensus_signature))
        return found

    def publish(self, epoch: int) -> bytes:
        """Publish the consensus of `epoch` with every valid signature held; raises
        `InsufficientSignaturesError` below the threshold."""
        body = self.store.body(epoch)
        if body is None:
            note = self.notes.get(epoch, f"no consensus computed for epoch {epoch}")
            raise ConsensusComputationError(note)
        signatures = self._valid_signatures(epoch, body)
        needed = self.policy.signatures_needed
        if len(signatures) < needed:
            note = (
                f"no consensus for epoch {epoch}: {len(signatures)} of "
                f"{len(self.policy.authorities)} authorities signed, {needed} needed"
            )
            self.notes[epoch] = note
            raise InsufficientSignaturesError(note)
        data = SignedConsensus(body, tuple(signatures)).to_bytes()
        self.store.put_published(epoch, data)
        self.notes.pop(epoch, None)
        return data

    def adopt(self, epoch: int, data: bytes, now: float) -> None:
        """Serve a consensus another authority published for `epoch`, if it verifies and
        its parameters are within this authority's acceptable ranges (a `DirectoryError`
        otherwise); for an authority that could not publish its own."""
        consensus = verify_consensus(
            data,
            self.policy.authorities,
            epoch,
            self.policy.geometry,
            now=now,
            threshold=self.policy.threshold,
        )
        self.policy.acceptable_ranges.check(consensus.parameters)
        self.store.put_published(epoch, data)
        self.notes.pop(epoch, None)

    def published(self, epoch: int) -> bytes | None:
        return self.store.published(epoch)

    # housekeeping and status

    def note(self, epoch: int, text: str) -> None:
        """Record that a phase of `epoch` failed (the health endpoint shows it)."""
        self.notes[epoch] = text

    def prune(self, now: float) -> None:
        current = self.clock.epoch_at(now)
        self.store.prune(
            documents_before=current - 2,
            published_before=current - self.policy.retain_published_epochs,
        )
        for epoch in [e for e in self.notes if e < current - 2]:
            del self.notes[epoch]

    def status(self, now: float) -> dict[str, Any]:
        """A summary for the health endpoint: epochs and counts, no node ids or addresses.
        `status` is "degraded" while a phase of the current or the building epoch failed."""
        current = self.clock.epoch_at(now)
        building = current + 1
        failing = {e: n for e, n in self.notes.items() if e in (current, building)}
        return {
            "status": "degraded" if failing else "ok",
            "authority_key": self.key.hex(),
            "current_epoch": current,
            "building_epoch": building,
            "descriptors": self.store.descriptor_count(building),
            "votes": len(self.store.vote_keys(building)),
            "equivocations": len(self.store.evidence_keys(building)),
            "reveals": len(self.store.reveals(building)),
            "computed": self.store.body(building) is not None,
            "signatures": len(self.store.signature_keys(building)),
            "current_published": self.store.published(current) is not None,
            "latest_published_epoch": self.store.latest_published_epoch(),
            "notes": {str(e): n for e, n in sorted(self.notes.items())},
        }
