"""`SignatureMessage`: how an authority hands its detached consensus signature to the others.

Encoding (docs/SPEC.md §2): `[body, signature]` where `body` is the fixed-order array

    ["trimix-consensus-signature-v1", epoch, authority_key, consensus_digest, consensus_signature]

`consensus_digest` is BLAKE2b-256 of the consensus body bytes the authority computed and
`consensus_signature` its Ed25519 signature of those body bytes; `signature` is the same
authority's signature of the canonical bytes of `body`, so a receiver can tell a forged
message (bad outer signature) from a signature over another document (other digest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from directory.canonical import (
    field_array,
    field_bytes,
    field_epoch,
    field_tag,
    pack,
    unpack,
)
from directory.errors import BadSignatureError
from directory.signatures import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    digest,
    verify_signature,
)

SIGNATURE_MESSAGE_TAG = "trimix-consensus-signature-v1"
DIGEST_SIZE = 32
MAX_SIGNATURE_MESSAGE_SIZE = 512


@dataclass(frozen=True, slots=True)
class SignatureMessage:
    """An authority's signature of its consensus body for `epoch`, itself signed."""

    epoch: int
    authority_key: bytes
    consensus_digest: bytes
    consensus_signature: bytes
    signature: bytes

    def body(self) -> list[Any]:
        return [
            SIGNATURE_MESSAGE_TAG,
            self.epoch,
            self.authority_key,
            self.consensus_digest,
            self.consensus_signature,
        ]

    def to_bytes(self) -> bytes:
        return pack([self.body(), self.signature])

    def signs(self, consensus_body: bytes) -> bool:
        """Whether this is a valid signature of exactly `consensus_body`."""
        return verify_signature(self.authority_key, self.consensus_signature, consensus_body)


def sign_consensus_body(
    signing_key: SigningKey, *, epoch: int, consensus_body: bytes
) -> SignatureMessage:
    """Sign a consensus body and wrap the signature for the other authorities."""
    consensus_signature = signing_key.sign(consensus_body)
    body = [
        SIGNATURE_MESSAGE_TAG,
        epoch,
        signing_key.public_key,
        digest(consensus_body),
        consensus_signature,
    ]
    return SignatureMessage(
        epoch=epoch,
        authority_key=signing_key.public_key,
        consensus_digest=digest(consensus_body),
        consensus_signature=consensus_signature,
        signature=signing_key.sign(pack(body)),
    )


def decode_signature_message(data: bytes) -> SignatureMessage:
    """Decode a signature message and check its outer signature (`BadSignatureError`).
    Whether the key is a pinned authority's, and whether the consensus signature holds
    over the receiver's own body, are the receiver's questions."""
    outer = unpack(data, what="signature message", max_size=MAX_SIGNATURE_MESSAGE_SIZE)
    field_array(outer, "signature message", 2)
    body, signature = outer
    field_array(body, "signature message", 5)
    field_tag(body[0], "signature message", SIGNATURE_MESSAGE_TAG)
    message = SignatureMessage(
        epoch=field_epoch(body[1], "signature message epoch"),
        authority_key=field_bytes(body[2], "signature message key", PUBLIC_KEY_SIZE),
        consensus_digest=field_bytes(body[3], "signature message digest", DIGEST_SIZE),
        consensus_signature=field_bytes(
            body[4], "signature message consensus signature", SIGNATURE_SIZE
        ),
        signature=field_bytes(signature, "signature message signature", SIGNATURE_SIZE),
    )
    if not verify_signature(message.authority_key, message.signature, pack(body)):
        raise BadSignatureError("signature message: the authority's signature does not verify")
    return message
