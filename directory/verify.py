"""`verify_consensus`: what a client or node runs before trusting a consensus.

The checks, in order: the envelope decodes and no key signs twice; at least t (default
⌊n/2⌋ + 1) of the n distinct pinned authority keys have a valid signature over the body
bytes; the body decodes; it is for the expected epoch; it has not expired; it carries the
expected geometry hash; its parameters lie within the documented safe bounds. Signatures
by keys that are not pinned, and invalid signatures, are ignored as long as the threshold
is met (verification stops once it is); when it is not, the error names what was found.

Only the authorities' signatures are checked, not the signature of each included
descriptor: the authorities verified those before voting and signing, and their signatures
cover every byte of the body, descriptors included. This keeps verification of a
1,000-node consensus to a few milliseconds.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from directory.consensus import Consensus, decode_consensus, decode_signed_consensus
from directory.epoch import to_ms
from directory.errors import (
    BadSignatureError,
    ExpiredDocumentError,
    GeometryMismatchError,
    InsufficientSignaturesError,
    UnknownAuthorityError,
    WrongEpochError,
)
from directory.parameters import check_safe_parameters
from directory.signatures import authority_threshold, verify_signature
from sphinx_packets import Geometry


def verify_consensus(
    doc_bytes: bytes,
    pinned_authority_keys: Collection[bytes],
    epoch: int,
    geometry: Geometry,
    *,
    now: float,
    threshold: int | None = None,
) -> Consensus:
    """The consensus in `doc_bytes` if it is valid for `epoch` at `now` (float seconds);
    otherwise a `DirectoryError` subclass saying what was wrong. `threshold` is the number
    of pinned signatures required (default ⌊n/2⌋ + 1; a `ConfigError` outside ⌊n/2⌋ + 1..n);
    parameters outside the safe bounds raise `UnsafeParametersError`."""
    now_ms = to_ms(now)
    pinned = frozenset(pinned_authority_keys)
    needed = authority_threshold(len(pinned), threshold)
    signed = decode_signed_consensus(doc_bytes)
    valid = 0
    invalid = 0
    unknown = 0
    for entry in signed.signatures:
        if entry.authority_key not in pinned:
            unknown += 1
        elif verify_signature(entry.authority_key, entry.signature, signed.body):
            valid += 1
            if valid == needed:
                break  # more valid signatures would not change the outcome
        else:
            invalid += 1
    if valid < needed:
        summary = (
            f"{valid} valid signatures from pinned authorities, {needed} needed "
            f"({invalid} invalid, {unknown} by unknown keys)"
        )
        if invalid:
            raise BadSignatureError(f"consensus: {summary}")
        if unknown:
            raise UnknownAuthorityError(f"consensus: {summary}")
        raise InsufficientSignaturesError(f"consensus: {summary}")

    consensus = decode_consensus(signed.body)
    if consensus.epoch != epoch:
        raise WrongEpochError(f"consensus: for epoch {consensus.epoch}, expected {epoch}")
    late_ms = now_ms - consensus.valid_until_ms
    if late_ms >= 0:
        raise ExpiredDocumentError(f"consensus: epoch {consensus.epoch} expired {late_ms} ms ago")
    if not hmac.compare_digest(consensus.geometry_hash, geometry.hash()):
        raise GeometryMismatchError(
            "consensus: its geometry hash is not the hash of the expected geometry"
        )
    check_safe_parameters(consensus.parameters)
    return consensus
