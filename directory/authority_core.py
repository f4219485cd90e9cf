"""`AuthorityCore`: what one directory authority decides, without any networking.

It accepts or rejects uploads (descriptors from nodes, votes and signature messages from
the other authorities), makes its own vote, computes and signs the consensus, and publishes
it once a majority signed. Time comes in as `now` (float seconds); documents go to and come
from an `AuthorityStore`. The Trio daemon (`directory.authority`) calls it at the phase
deadlines and the HTTP app (`directory.http_app`) on each request.

Every rejection is a `Rejection` with an HTTP status, a short code and a reason.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from directory.compute import compute_consensus
from directory.consensus import (
    AuthoritySignature,
    Consensus,
    SignedConsensus,
    decode_consensus,
)
from directory.descriptor import decode_descriptor
from directory.epoch import EpochClock, to_ms
from directory.errors import (
    BadSignatureError,
    ConsensusComputationError,
    DirectoryError,
    DocumentTooLargeError,
    InsufficientSignaturesError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
    UnknownAuthorityError,
)
from directory.parameters import Parameters
from directory.signature_message import (
    SignatureMessage,
    decode_signature_message,
    sign_consensus_body,
)
from directory.signatures import SigningKey, authority_threshold, digest
from directory.storage import AuthorityStore
from directory.verify import verify_consensus
from directory.vote import MAX_DESCRIPTORS, Vote, decode_vote, sign_vote
from sphinx_packets import Geometry

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
PENDING = "pending"
"""A signature message kept until this authority has computed the consensus it is for."""


class Rejection(DirectoryError):
    """An upload refused: `status` is the HTTP status, `code` a stable short name."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def rejection_for(error: DirectoryError) -> Rejection:
    """The HTTP answer to a document that failed to decode or verify."""
    if isinstance(error, Rejection):
        return error
    if isinstance(error, DocumentTooLargeError):
        return Rejection(413, "too_large", str(error))
    if isinstance(error, NonCanonicalEncodingError):
        return Rejection(400, "non_canonical", str(error))
    if isinstance(error, MalformedDocumentError):
        return Rejection(400, "malformed", str(error))
    if isinstance(error, BadSignatureError):
        return Rejection(401, "bad_signature", str(error))
    if isinstance(error, UnknownAuthorityError):
        return Rejection(403, "unknown_authority", str(error))
    return Rejection(400, "invalid", str(error))


@dataclass(frozen=True, slots=True)
class AuthorityPolicy:
    """What every authority of a network must agree on, and this one's limits."""

    authorities: frozenset[bytes]
    """The pinned authority keys, this one's included."""
    clock: EpochClock
    parameters: Parameters
    geometry: Geometry
    allowed_nodes: frozenset[bytes] | None = None
    """Identity keys of the nodes allowed to upload; None admits any node."""
    max_descriptors_per_epoch: int = MAX_DESCRIPTORS
    retain_published_epochs: int = 72

    @property
    def threshold(self) -> int:
        return authority_threshold(len(self.authorities))


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

    def accept_descriptor(self, data: bytes, now: float) -> str:
        try:
            descriptor = decode_descriptor(data)
        except DirectoryError as error:
            raise rejection_for(error) from None
        allowed = self.policy.allowed_nodes
        if allowed is not None and descriptor.identity_key not in allowed:
            raise Rejection(403, "node_not_allowed", "this node is not admitted by the authority")
        current = self.clock.epoch_at(now)
        first_open = current + 1
        if to_ms(now) >= self.clock.schedule(current + 1).vote_at:
            first_open = current + 2
        if descriptor.epoch < first_open:
            raise Rejection(
                410,
                "stale",
                f"descriptor for epoch {descriptor.epoch}: uploads are open for epochs "
                f"{first_open} to {current + 2}",
            )
        if descriptor.epoch > current + 2:
            raise Rejection(
                422,
                "too_early",
                f"descriptor for epoch {descriptor.epoch}: uploads are open for epochs "
                f"{first_open} to {current + 2}",
            )
        known = self.store.descriptor(descriptor.epoch, descriptor.node_id)
        if known is not None:
            if known == data:
                return DUPLICATE
            raise Rejection(
                409,
                "conflict",
                f"another descriptor of this node for epoch {descriptor.epoch} was accepted",
            )
        if self.store.descriptor_count(descriptor.epoch) >= self.policy.max_descriptors_per_epoch:
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
            descriptors=descriptors,
        )
        data = vote.to_bytes()
        self.store.put_vote(epoch, self.key, data)
        return data

    def vote_bytes(self, epoch: int) -> bytes | None:
        return self.store.vote(epoch, self.key)

    def accept_vote(self, data: bytes, now: float) -> str:
        try:
            vote = decode_vote(data, authorities=self.policy.authorities)
        except DirectoryError as error:
            raise rejection_for(error) from None
        known = self.store.vote(vote.epoch, vote.authority_key)
        if known is not None:
            if known == data:
                return DUPLICATE
            raise Rejection(
                409, "conflict", f"this authority already cast another vote for epoch {vote.epoch}"
            )
        building = self.building_epoch(now)
        if vote.epoch < building:
            raise Rejection(410, "stale", f"vote for epoch {vote.epoch}, now building {building}")
        if vote.epoch > building:
            raise Rejection(
                422, "too_early", f"vote for epoch {vote.epoch}, now building {building}"
            )
        if self.store.body(vote.epoch) is not None:
            raise Rejection(
                410, "stale", f"the consensus for epoch {vote.epoch} is already computed"
            )
        self.store.put_vote(vote.epoch, vote.authority_key, data)
        return ACCEPTED

    def missing_votes(self, epoch: int) -> list[bytes]:
        """Keys of the authorities whose vote for `epoch` this one lacks."""
        return sorted(self.policy.authorities - set(self.store.vote_keys(epoch)))

    # the consensus

    def compute(self, epoch: int) -> bytes:
        """Compute and sign the consensus of `epoch` from the votes held (once; then the
        stored result); returns this authority's signature message. Raises
        `ConsensusComputationError` if there is no consensus."""
        body = self.store.body(epoch)
        if body is None:
            votes: list[Vote] = [decode_vote(b) for b in self.store.votes(epoch)]
            try:
                consensus = compute_consensus(
                    votes, epoch=epoch, authorities=self.policy.authorities, clock=self.clock
                )
            except ConsensusComputationError as error:
                self.notes[epoch] = f"no consensus for epoch {epoch}: {error}"
                raise
            body = consensus.to_bytes()
            self.store.put_body(epoch, body)
        own = self.store.signature(epoch, self.key)
        if own is None:
            message = sign_consensus_body(self.signing_key, epoch=epoch, consensus_body=body)
            own = message.to_bytes()
            self.store.put_signature(epoch, self.key, own)
        return own

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
        if len(signatures) < self.policy.threshold:
            note = (
                f"no consensus for epoch {epoch}: {len(signatures)} of "
                f"{len(self.policy.authorities)} authorities signed, {self.policy.threshold} needed"
            )
            self.notes[epoch] = note
            raise InsufficientSignaturesError(note)
        data = SignedConsensus(body, tuple(signatures)).to_bytes()
        self.store.put_published(epoch, data)
        self.notes.pop(epoch, None)
        return data

    def adopt(self, epoch: int, data: bytes, now: float) -> None:
        """Serve a consensus another authority published for `epoch`, if it verifies
        (a `DirectoryError` otherwise); for an authority that could not publish its own."""
        verify_consensus(data, self.policy.authorities, epoch, self.policy.geometry, now=now)
        self.store.put_published(epoch, data)
        self.notes.pop(epoch, None)

    def published(self, epoch: int) -> bytes | None:
        return self.store.published(epoch)

    # housekeeping and status

    def prune(self, now: float) -> None:
        current = self.clock.epoch_at(now)
        self.store.prune(
            documents_before=current - 2,
            published_before=current - self.policy.retain_published_epochs,
        )
        for epoch in [e for e in self.notes if e < current - 2]:
            del self.notes[epoch]

    def status(self, now: float) -> dict[str, Any]:
        """A summary for the health endpoint: epochs and counts, no node ids or addresses."""
        current = self.clock.epoch_at(now)
        building = current + 1
        return {
            "authority_key": self.key.hex(),
            "current_epoch": current,
            "building_epoch": building,
            "descriptors": self.store.descriptor_count(building),
            "votes": len(self.store.vote_keys(building)),
            "computed": self.store.body(building) is not None,
            "signatures": len(self.store.signature_keys(building)),
            "current_published": self.store.published(current) is not None,
            "latest_published_epoch": self.store.latest_published_epoch(),
            "notes": {str(e): n for e, n in sorted(self.notes.items())},
        }
