"""The trimix directory: node descriptors, authority votes and the threshold-signed
consensus (a sans-I/O core), the authority daemon and the consensus fetcher (thin Trio
drivers around it).

Core modules (no Trio, no networking): `errors`, `canonical`, `signatures`, `epoch`,
`parameters`, `descriptor`, `vote`, `shared_random`, `relay`, `evidence`, `consensus`,
`compute`, `verify`, `signature_message`, `registration`, `rejection`, `authority_core`
(decisions, with `storage`). Drivers: `http_client`, `http_app`, `http_server`,
`authority`, `fetcher`, `upload` (`upload_descriptor`, for nodes).
The drivers are imported from their modules, so that the core does not pull in Trio.
"""

from directory.compute import compute_consensus, low_median
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
    InvalidTimeError,
    MalformedDocumentError,
    NonCanonicalEncodingError,
    SignatureError,
    StorageError,
    UnknownAuthorityError,
    UnsafeParametersError,
    WrongEpochError,
)
from directory.evidence import Equivocation, decode_equivocation
from directory.parameters import (
    SAFE_BOUNDS,
    ParameterRanges,
    Parameters,
    check_safe_parameters,
)
from directory.shared_random import Reveal, deal_layers, shared_random_value
from directory.signature_message import (
    SignatureMessage,
    decode_signature_message,
    sign_consensus_body,
)
from directory.signatures import (
    SigningKey,
    authority_threshold,
    node_id,
    verify_signature,
)
from directory.verify import verify_consensus
from directory.vote import Vote, decode_vote, sign_vote

__all__ = [
    "SAFE_BOUNDS",
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
    "Equivocation",
    "ExpiredDocumentError",
    "GeometryMismatchError",
    "InsufficientSignaturesError",
    "InvalidTimeError",
    "MalformedDocumentError",
    "NodeDescriptor",
    "NonCanonicalEncodingError",
    "ParameterRanges",
    "Parameters",
    "Reveal",
    "Role",
    "SignatureError",
    "SignatureMessage",
    "SignedConsensus",
    "SigningKey",
    "StorageError",
    "UnknownAuthorityError",
    "UnsafeParametersError",
    "Vote",
    "WrongEpochError",
    "authority_threshold",
    "check_safe_parameters",
    "compute_consensus",
    "deal_layers",
    "decode_consensus",
    "decode_descriptor",
    "decode_equivocation",
    "decode_signature_message",
    "decode_signed_consensus",
    "decode_vote",
    "low_median",
    "node_id",
    "shared_random_value",
    "sign_consensus_body",
    "sign_descriptor",
    "sign_vote",
    "verify_consensus",
    "verify_signature",
]
