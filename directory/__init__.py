"""The trimix directory: node descriptors, authority votes and the threshold-signed
consensus (a sans-I/O core), the authority daemon and the consensus fetcher (thin Trio
drivers around it).

Core modules (no Trio, no networking): `errors`, `canonical`, `signatures`, `epoch`,
`parameters`, `descriptor`, `vote`, `consensus`, `compute`, `verify`, `signature_message`.
Drivers: `authority_core` (decisions, with `storage`), `http_app`, `authority`, `fetcher`.
The drivers are imported from their modules, so that the core does not pull in Trio.
"""

from directory.compute import assign_layers, compute_consensus, low_median
from directory.consensus import (
    AuthoritySignature,
    Consensus,
    SignedConsensus,
    decode_consensus,
    decode_signed_consensus,
)
from directory.descriptor import (
    Address,
    NodeDescriptor,
    Role,
    decode_descriptor,
    sign_descriptor,
)
from directory.endpoints import AuthorityEndpoint
from directory.epoch import EpochClock, EpochSchedule
from directory.errors import (
    BadSignatureError,
    ConfigError,
    ConsensusComputationError,
    ConsensusUnavailableError,
    DirectoryError,
    DocumentTooLargeError,
    DuplicateSignatureError,
    ExpiredDocumentError,
    GeometryMismatchError,
    InsufficientSignaturesError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
    SignatureError,
    UnknownAuthorityError,
    WrongEpochError,
)
from directory.parameters import Parameters
from directory.signature_message import (
    SignatureMessage,
    decode_signature_message,
    sign_consensus_body,
)
from directory.signatures import SigningKey, authority_threshold, node_id, verify_signature
from directory.verify import verify_consensus
from directory.vote import Vote, decode_vote, sign_vote

__all__ = [
    "Address",
    "AuthorityEndpoint",
    "AuthoritySignature",
    "BadSignatureError",
    "ConfigError",
    "Consensus",
    "ConsensusComputationError",
    "ConsensusUnavailableError",
    "DirectoryError",
    "DocumentTooLargeError",
    "DuplicateSignatureError",
    "EpochClock",
    "EpochSchedule",
    "ExpiredDocumentError",
    "GeometryMismatchError",
    "InsufficientSignaturesError",
    "MalformedDocumentError",
    "NodeDescriptor",
    "NonCanonicalEncodingError",
    "Parameters",
    "Role",
    "SignatureError",
    "SignatureMessage",
    "SignedConsensus",
    "SigningKey",
    "UnknownAuthorityError",
    "Vote",
    "WrongEpochError",
    "assign_layers",
    "authority_threshold",
    "compute_consensus",
    "decode_consensus",
    "decode_descriptor",
    "decode_signature_message",
    "decode_signed_consensus",
    "decode_vote",
    "low_median",
    "node_id",
    "sign_consensus_body",
    "sign_descriptor",
    "sign_vote",
    "verify_consensus",
    "verify_signature",
]
